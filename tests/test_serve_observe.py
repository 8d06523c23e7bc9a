"""``subiso serve`` keeps runs visible: a run's id is its subiso run id (its log records carry
it, on the process tier too), requests are logged, the client's trace (W3C ``traceparent``,
LangSmith's headers from ``RemoteGraph(distributed_tracing=True)``) reaches the nodes, and
``/metrics`` carries the executor's numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("langgraph_sdk")

from tests.serve_server import APP, Server
from tests.services import langsmith_sink

OBSERVE = APP / "observe.json"


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with langsmith_sink() as sink:
        env = {"LANGSMITH_ENDPOINT": sink.url, "LANGSMITH_API_KEY": "lsv2-test-key"}
        srv = Server(
            tmp_path / "data", "-e", "process", "--log-format", "json", config=OBSERVE, env=env
        )
        try:
            yield srv
        finally:
            srv.kill()


def log_lines(server: Server) -> list[dict[str, Any]]:
    lines = server.log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_served_runs_records_carry_its_id_and_requests_are_logged(server: Server) -> None:
    client = server.client()
    thread = client.threads.create()
    run = client.runs.create(thread["thread_id"], "chatty", input={"x": 1})
    client.runs.join(thread["thread_id"], run["run_id"])
    lines = log_lines(server)
    node = [line for line in lines if line["logger"] == "tests.observe.node"]
    assert [line["run_id"] for line in node] == [run["run_id"]]
    assert node[0]["tier"] == "process" and node[0]["thread_id"] == thread["thread_id"]
    done = [
        line for line in lines if line["logger"] == "subiso.process" and "done" in line["message"]
    ]
    assert [line["run_id"] for line in done] == [run["run_id"]]
    access = [line for line in lines if line["logger"] == "subiso.serve.http"]
    assert any(line["path"].endswith("/runs") and line["status"] == 200 for line in access)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'subiso_runs_completed_total{tier="process",outcome="done"} 1' in metrics


def test_the_clients_w3c_trace_reaches_the_node(server: Server) -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    client = server.client(headers={"traceparent": f"00-{trace_id}-{span_id}-01"})
    out = client.runs.wait(None, "probe", input={"x": 1})
    assert out["seen"]["otel_trace_id"] == trace_id and out["seen"]["otel_span_id"] == span_id
    untraced = server.client().runs.wait(None, "probe", input={"x": 1})
    assert untraced["seen"]["otel_trace_id"] is None


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="a served run is streamed (astream); LangChain's run tree reaches a node of an "
    "async run only from Python 3.11 (asyncio tasks take a context there)",
)
def test_remote_graph_distributed_tracing_reaches_the_node(server: Server) -> None:
    from langgraph.pregel.remote import RemoteGraph
    from langsmith import Client
    from langsmith.run_helpers import trace, tracing_context

    remote = RemoteGraph("probe", url=server.url, distributed_tracing=True)
    with langsmith_sink() as sink:
        client = Client(api_url=sink.url, api_key="lsv2-test-key")
        with tracing_context(enabled=True, client=client), trace("caller") as caller:
            out = remote.invoke({"x": 1})
        client.flush()
    assert out["seen"]["ls_trace_id"] == str(caller.trace_id)
    assert out["seen"]["ls_dotted_order"].startswith(caller.dotted_order + ".")
