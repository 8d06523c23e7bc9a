"""What a run returns: its output and a RunReport saying where and how it ran."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import msgspec

Mode = Literal["full", "hybrid", "fallback"]
Status = Literal["done", "interrupted"]


class Offloaded(msgspec.Struct, frozen=True, kw_only=True):
    """What a hybrid run's ``@offload`` calls did: how many ran in interpreters, which ones,
    the time spent computing inside them, and the rest of their wall time (queueing for an
    interpreter, encoding and decoding arguments and results)."""

    calls: int
    interpreter_ids: tuple[int, ...]
    interp_s: float
    transfer_s: float


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """Where a run executed and what it cost.

    ``mode`` is ``"full"`` when the whole workflow ran in the requested tier, ``"hybrid"`` when
    the graph ran on a host worker thread and offloaded nodes ran in subinterpreters, and
    ``"fallback"`` when the tier was unavailable and another ran. ``reason`` says why this mode:
    in hybrid mode what kept the graph out of an interpreter (and which ``strict=False``
    offloads ran in place), in fallback mode why no interpreter ran - which
    ``fallback_reason`` also carries, in fallback mode only. ``offloaded`` counts a hybrid
    run's offloaded calls (None when it made none).
    ``status`` is ``"interrupted"`` when the graph paused - an ``interrupt()`` (its payloads are
    in ``RunResult.interrupts``) or a static breakpoint - and ``"done"`` otherwise.

    Identity and time: ``run_id`` (LangGraph's ``config["run_id"]`` when the caller gave one,
    else generated at submit; every log record of the run carries it), ``thread_id``
    (LangGraph's ``config.configurable.thread_id``, None without one), ``queue_wait_s`` (from
    submit to the start of execution), ``duration_s`` (execution, in the worker),
    ``started_at``/``finished_at`` (wall clock, ``time.time()``). Where it ran: ``pid``,
    ``os_thread_id`` (``threading.get_ident()`` of the thread that ran it), ``interpreter_id``,
    ``loop_id``. The ``*_s`` transfer fields are zero for tiers that do not cross a boundary.
    """

    tier: str
    mode: Mode = "full"
    status: Status = "done"
    reason: str | None = None
    fallback_reason: str | None = None
    run_id: str = ""
    thread_id: str | None = None
    pid: int
    os_thread_id: int
    interpreter_id: int | None = None
    loop_id: int | None = None
    queue_wait_s: float = 0.0
    duration_s: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    encode_s: float = 0.0
    transfer_s: float = 0.0
    decode_s: float = 0.0
    selected_by: str | None = None
    offloaded: Offloaded | None = None


class RunResult(NamedTuple):
    """``(output, report)``; unpack it or use the attributes."""

    output: Any
    report: RunReport

    @property
    def interrupts(self) -> tuple[Any, ...]:
        """The ``langgraph.types.Interrupt`` objects the run paused on (empty when none)."""
        output = self.output
        if isinstance(output, dict):
            return tuple(output.get("__interrupt__") or ())
        return ()
