"""``python -m subiso.serve.describe TARGET XRAY``: a graph's drawing and JSON schemas, printed
as one JSON document - run in a child process, so that the server never imports the graph.

What ``/assistants/{id}/graph`` and ``/assistants/{id}/schemas`` return comes from the compiled
graph itself (``get_graph(xray).to_json()``, ``get_input_jsonschema()``, ...). Importing a
graph runs its module's code; the server keeps that off its own process the way it keeps runs
off it: the child imports the target, answers and exits (its answer is cached per graph).
"""

from __future__ import annotations

import sys
from typing import Any


def _schema(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _state_schema(graph: Any) -> Any:
    from typing import Any as AnyType

    from pydantic import create_model

    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = getattr(graph.channels[key], "UpdateType", AnyType)
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:
            fields[key] = (AnyType, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


def describe(target: str, xray: int | bool) -> dict[str, Any]:
    """The drawing and the schemas of the graph at ``target`` ("pkg.mod:attr")."""
    from subiso.runtime.targets import TargetCache

    resolved = TargetCache().get(target)
    if resolved.kind == "function":
        raise SystemExit(f"{target} is a workflow function, not a LangGraph graph")
    graph = resolved.default_graph
    drawing = graph.get_graph(xray=xray).to_json()
    for node in drawing.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    schemas = {
        "input_schema": _schema(graph.get_input_jsonschema),
        "output_schema": _schema(graph.get_output_jsonschema),
        "state_schema": _schema(lambda: _state_schema(graph)),
        "config_schema": _schema(lambda: _configurable_schema(graph)),
        "context_schema": _schema(graph.get_context_jsonschema),
    }
    return {"graph": drawing, "schemas": schemas}


def _configurable_schema(graph: Any) -> Any:
    schema = graph.get_config_jsonschema()
    configurable = (schema.get("properties") or {}).get("configurable")
    if not configurable:
        return {}
    if "$ref" in configurable:
        name = configurable["$ref"].rsplit("/", 1)[-1]
        configurable = schema.get("$defs", {}).get(name, {})
    for key in ("thread_id", "checkpoint_id", "checkpoint_ns"):
        (configurable.get("properties") or {}).pop(key, None)
    return configurable


def main() -> None:
    from subiso.serve.encode import dumps

    target, xray_text = sys.argv[1], sys.argv[2]
    xray: int | bool = xray_text == "true" or (int(xray_text) if xray_text.isdigit() else False)
    if xray_text.isdigit() and int(xray_text) == 0:
        xray = False
    sys.stdout.buffer.write(dumps(describe(target, xray)))


if __name__ == "__main__":
    main()
