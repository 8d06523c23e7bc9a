"""What a run returns: its output and a RunReport saying where and how it ran."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import msgspec

Mode = Literal["full", "hybrid", "fallback"]
Status = Literal["done", "interrupted"]


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """Where a run executed and what it cost.

    ``mode`` is ``"full"`` when the whole workflow ran in the requested tier, ``"hybrid"`` when
    the graph ran on a host worker thread and offloaded nodes ran in subinterpreters, and
    ``"fallback"`` when the tier was unavailable and ``fallback_reason`` says why another ran.
    ``status`` is ``"interrupted"`` when the graph paused - an ``interrupt()`` (its payloads are
    in ``RunResult.interrupts``) or a static breakpoint - and ``"done"`` otherwise.
    The ``*_s`` transfer fields are zero for tiers that do not cross a boundary.
    """

    tier: str
    mode: Mode = "full"
    status: Status = "done"
    fallback_reason: str | None = None
    pid: int
    thread_id: int
    interpreter_id: int | None = None
    loop_id: int | None = None
    duration_s: float = 0.0
    encode_s: float = 0.0
    transfer_s: float = 0.0
    decode_s: float = 0.0
    selected_by: str | None = None


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
