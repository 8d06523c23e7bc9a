"""Values on their way to the client: JSON as the Agent Server writes it.

LangGraph's values are plain data, LangChain messages (pydantic models), dataclasses
(``Interrupt``, ``Send``), named tuples and, in snapshots, ``StateSnapshot`` /
``PregelTask``. They are written the way LangGraph's own server writes them - a model by its
``model_dump()``, a named tuple as an object, a ``Send`` as ``{"node", "args"}``, an exception
as ``{"error": type name, "message": text}`` - so the official client and ``RemoteGraph`` read
them back unchanged.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

_ENCODER: msgspec.json.Encoder | None = None


def _default(obj: Any) -> Any:
    """msgspec's enc_hook: the types msgspec does not write natively."""
    if isinstance(obj, BaseException):
        return error_payload(obj)
    if type(obj).__name__ == "Send" and hasattr(obj, "node") and hasattr(obj, "arg"):
        return {"node": obj.node, "args": obj.arg}
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump()
    as_dict = getattr(obj, "_asdict", None)  # named tuples (StateSnapshot, PregelTask)
    if callable(as_dict) and not isinstance(obj, type):
        return as_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """``obj`` as JSON bytes; tuples are lists, named tuples objects (see the module docstring)."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = msgspec.json.Encoder(enc_hook=_default, decimal_format="number")
    return _ENCODER.encode(_plain(obj))


def _plain(obj: Any) -> Any:
    """Named tuples become objects before msgspec sees them (it writes any tuple as a list)."""
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: _plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def loads(raw: bytes | str) -> Any:
    return msgspec.json.decode(raw)


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON-able builtins (for rows stored as JSON text)."""
    return loads(dumps(obj))


def error_payload(exc: BaseException) -> dict[str, str]:
    """An error as LangGraph's server writes it: ``{"error": type name, "message": text}``."""
    return {"error": type(exc).__name__, "message": str(exc)}


# -- snapshots ----------------------------------------------------------------------------------
def checkpoint_of(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A RunnableConfig's ``configurable`` as the API's Checkpoint object (None without one)."""
    if not config:
        return None
    configurable = config.get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    checkpoint = {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns") or "",
        "checkpoint_id": configurable["checkpoint_id"],
    }
    if "checkpoint_map" in configurable:
        checkpoint["checkpoint_map"] = configurable["checkpoint_map"]
    return checkpoint


def interrupt_of(interrupt: Any) -> dict[str, Any]:
    """``langgraph.types.Interrupt`` as ``{"value", "id"}``."""
    if isinstance(interrupt, Mapping):
        return {"value": interrupt.get("value"), "id": interrupt.get("id")}
    return {"value": interrupt.value, "id": getattr(interrupt, "id", None)}


def thread_state(snapshot: Any) -> dict[str, Any]:
    """A ``StateSnapshot`` as the API's ThreadState (what ``RemoteGraph`` turns back into one)."""
    tasks = []
    for task in snapshot.tasks:
        sub = task.state
        nested = sub is not None and hasattr(sub, "tasks") and hasattr(sub, "values")
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": None if task.error is None else str(task.error),
                "interrupts": [interrupt_of(i) for i in task.interrupts],
                "checkpoint": (sub or {}).get("configurable") if sub and not nested else None,
                "state": thread_state(sub) if nested else None,
                "result": getattr(task, "result", None),
            }
        )
    config = snapshot.config
    parent = snapshot.parent_config
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint_of(config),
        "parent_checkpoint": checkpoint_of(parent),
        "interrupts": [interrupt_of(i) for i in getattr(snapshot, "interrupts", ())],
        "checkpoint_id": (config or {}).get("configurable", {}).get("checkpoint_id"),
        "parent_checkpoint_id": (parent or {}).get("configurable", {}).get("checkpoint_id"),
    }
