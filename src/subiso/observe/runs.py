"""A run's identity, from the caller's submit to the worker that runs it.

:class:`RunInfo` is made on the caller's thread when a run is submitted (``Executor`` does it
for every entry point) and travels with the run's :class:`~subiso.runtime.call.Call` - through
a thread hand-off, a process pipe, a Celery task - as plain data: the run id, when it was
submitted (wall clock, so a worker process on the same machine can tell the run's queue wait)
and the caller's trace context (:class:`TraceCarrier`, strings only).

Where the run executes it becomes a :class:`RunTag`, held in :data:`CURRENT_RUN` for the run's
duration. The variable is set in the run's own context, which LangGraph copies into every node
thread and task, so every log record a node emits, and every task it spawns, is known to
belong to the run (:mod:`subiso.observe.log`, :mod:`subiso.observe.loop_health`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import msgspec


class TraceCarrier(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The caller's tracing context as strings (see :mod:`subiso.observe.trace`).

    ``langsmith``: LangSmith's distributed-tracing headers of the caller's run tree
    (``langsmith-trace``, ``baggage``) plus the ``tracing_context`` settings it had
    (``enabled``, ``project``, ``tags``/``metadata`` as JSON). ``otel``: what OpenTelemetry's
    global propagator injects (W3C ``traceparent``, ``tracestate``, ``baggage``).
    """

    langsmith: dict[str, str] = {}
    otel: dict[str, str] = {}


class RunInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a run carries for observability; see the module docstring."""

    run_id: str
    submitted_at: float  # time.time() when the caller submitted the run
    trace: TraceCarrier | None = None


def new_run_id() -> str:
    """A random UUID4 string (as LangGraph's own run ids), without ``uuid.UUID``'s cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


#: RFC 4122 variant bits over a random hex digit: 10xx.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def run_info(config: dict[str, Any], trace: TraceCarrier | None = None) -> RunInfo:
    """A new run's identity: LangGraph's ``config["run_id"]`` when the caller set one."""
    given = config.get("run_id") if config else None
    run_id = new_run_id() if given is None else str(given)
    return RunInfo(run_id=run_id, submitted_at=time.time(), trace=trace)


class RunTag:
    """A run where it executes: its identity, where it runs, and whether it has ended.

    The value of :data:`CURRENT_RUN` while the run executes; log records and tasks created
    meanwhile are attributed to it. ``ended`` turns True when the run is over, so a task still
    holding it afterwards was left behind by the run.
    """

    __slots__ = (
        "ended",
        "graph",
        "interpreter_id",
        "run_id",
        "started",
        "started_at",
        "submitted_at",
        "thread_id",
        "tier",
    )

    def __init__(
        self,
        run_id: str,
        tier: str,
        *,
        thread_id: str | None = None,
        graph: str = "",
        submitted_at: float | None = None,
        interpreter_id: int = 0,
    ) -> None:
        self.run_id = run_id
        self.tier = tier
        self.thread_id = thread_id
        self.graph = graph
        self.interpreter_id = interpreter_id
        self.started_at = time.time()  # wall clock, for reports and queue wait
        self.started = time.perf_counter()  # for the run's duration
        self.submitted_at = self.started_at if submitted_at is None else submitted_at
        self.ended = False

    def mark_started(self, interpreter_id: int | None = None) -> None:
        """The run starts now (a tag made at submit, for a run that waited in a queue)."""
        self.started_at = time.time()
        self.started = time.perf_counter()
        if interpreter_id is not None:
            self.interpreter_id = interpreter_id

    @property
    def queue_wait_s(self) -> float:
        """Seconds from submit to start (0 when the clocks disagree by a hair)."""
        return max(0.0, self.started_at - self.submitted_at)

    def attributes(self) -> dict[str, Any]:
        """What log records of this run carry (see :mod:`subiso.observe.log`)."""
        return {
            "run_id": self.run_id,
            "tier": self.tier,
            "thread_id": self.thread_id,
            "interpreter_id": self.interpreter_id,
        }

    def __repr__(self) -> str:
        return f"<RunTag {self.run_id} {self.tier} {self.graph}>"


#: The run executing in this context (None outside runs).
CURRENT_RUN: ContextVar[RunTag | None] = ContextVar("subiso_current_run", default=None)


@contextlib.contextmanager
def outside_run() -> Iterator[None]:
    """Code in this block (and the tasks it creates) belongs to no run: for what a worker
    opens during a run on behalf of every later run too - a checkpointer's connection pool, a
    store's batch task, ``worker_init`` - whose tasks live on and are no run's leftovers."""
    token = CURRENT_RUN.set(None)
    try:
        yield
    finally:
        CURRENT_RUN.reset(token)
