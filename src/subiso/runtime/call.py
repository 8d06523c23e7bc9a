"""What a worker is asked to do with a GraphConfig: one :class:`Call`, the unit every tier hands
to its workers (and the process tier sends over its pipe).

``op`` is one of LangGraph's own operations on a compiled graph:

* ``"invoke"`` - run to the end or to an interrupt (``graph.ainvoke``); with an event sink,
  the same run through ``graph.astream(stream_mode=["updates", "values"])``, each update
  emitted as it happens, the output assembled exactly as ``ainvoke`` does;
* ``"stream"`` - ``graph.astream(input, stream_mode=..., subgraphs=...)``, every chunk emitted;
* ``"get_state"``, ``"get_state_history"``, ``"update_state"`` - the checkpoint API, run on
  the worker that owns the checkpointer's loop.

``run`` is the call's identity and the caller's trace context
(:class:`~subiso.observe.runs.RunInfo`), made on the caller's side when it is submitted; the
worker reports, logs and traces the call under it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from subiso.config import GraphConfig
from subiso.errors import ConfigError
from subiso.observe.runs import RunInfo

Op = Literal["invoke", "stream", "get_state", "get_state_history", "update_state"]
StreamMode = Literal["values", "updates", "messages", "custom", "debug", "checkpoints", "tasks"]


class Call(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One operation on ``cfg``'s graph; see the module docstring."""

    cfg: GraphConfig
    op: Op = "invoke"
    stream_mode: StreamMode | list[StreamMode] = "updates"  # stream
    subgraphs: bool = False  # stream, get_state
    limit: int | None = None  # get_state_history
    values: Any = None  # update_state
    as_node: str | None = None  # update_state
    run: RunInfo | None = None  # made at submit (None: the worker makes one)
    #: Asked by an async caller (``arun``/``aexecute``): the run goes through LangGraph's async
    #: API (``ainvoke``), never the sync fast path, so that async callbacks, step timeouts and
    #: cancellation behave as under the caller's own ``await graph.ainvoke(...)``.
    aio: bool = False

    @property
    def is_run(self) -> bool:
        """An invoke or a stream (a run, counted and logged as one), not a state operation."""
        return self.op == "invoke" or self.op == "stream"

    def __post_init__(self) -> None:
        if self.op in _STATE_OPS and self.cfg.thread_id is None:
            # LangGraph would fail deep in its checkpointer with KeyError: 'configurable'
            raise ConfigError(
                f"{self.op}: GraphConfig.config names no thread (configurable.thread_id): a "
                "graph's state belongs to a thread; pass config={'configurable': "
                "{'thread_id': ...}}, the thread_id its runs used"
            )


#: The operations on a thread's checkpoints: each needs ``configurable.thread_id``.
_STATE_OPS = frozenset({"get_state", "get_state_history", "update_state"})


def invoke(cfg: GraphConfig) -> Call:
    return Call(cfg=cfg)
