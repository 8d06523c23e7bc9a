"""Targets for ``tests/test_contract.py``, and the plugin tier it checks alongside the built-ins.

Stdlib only at import time, so this module loads inside an isolated subinterpreter: the
subinterpreter tier runs its workflow functions whole there (``mode="full"``), which is the
path that tier exists for. (LangGraph graphs come from ``tests.workloads``; they run hybrid.)
The plugin tier class needs ``subiso.executors.base`` (msgspec, which refuses to load in a
subinterpreter), so it is defined on first access (PEP 562 ``__getattr__``), on the host only.

Synchronisation with the test is by events: a run says it started by writing to a FIFO the
test reads (opening a FIFO blocks until both ends are open), and waits to be released on a
``threading.Event`` registered in ``GATES`` (in-process tiers) or, across a process or
interpreter boundary, for a file to exist (polled with a short sleep inside the workload).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

#: Upper bound for every wait here: a lost release turns into a failure, never a hang.
WAIT_BOUND_S = 60.0
_POLL_S = 0.005

#: release path -> Event, for runs executing in the test's own process and interpreter.
GATES: dict[str, threading.Event] = {}


class ContractError(Exception):
    """A workflow's own exception type: it must reach the caller as itself."""


# -- plain workflow functions ------------------------------------------------------------------
def square(value: int) -> int:
    return value * value


async def asquare(value: int) -> int:
    await asyncio.sleep(0)
    return value * value


def where(tag: Any) -> dict[str, Any]:
    return {"tag": tag, "pid": os.getpid(), "thread": threading.get_ident()}


async def awhere(tag: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"tag": tag, "pid": os.getpid(), "thread": threading.get_ident()}


def boom(_: Any) -> None:
    raise ValueError("boom")


async def aboom(_: Any) -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


def custom_fail(message: str) -> None:
    raise ContractError(message)


async def sleep_long(_: Any) -> str:
    await asyncio.sleep(30)
    return "woke"


def mark(args: dict[str, Any]) -> Any:
    """Leave a trace that it ran (a cancelled run must never leave one)."""
    with open(args["marker"], "w") as f:
        f.write("ran")
    return args["value"]


# -- runs the test holds until it releases them -------------------------------------------------
def _say_started(path: str | None, word: str = "started") -> None:
    if path is None:
        return
    try:  # the test holds the read end open while it listens; never block on a gone reader
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody listens any more (the test ended)
        return
    try:
        os.write(fd, word.encode())
    finally:
        os.close(fd)


def _released(path: str) -> bool:
    gate = GATES.get(path)
    if gate is not None:
        return gate.wait(WAIT_BOUND_S)
    end = time.monotonic() + WAIT_BOUND_S
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        time.sleep(_POLL_S)
    return True


def _finish(args: dict[str, Any], released: bool) -> Any:
    if not released:
        raise TimeoutError(f"never released: {args['release']}")
    if args.get("marker"):
        with open(args["marker"], "w") as f:
            f.write("finished")
    return args.get("value")


def hold(args: dict[str, Any]) -> Any:
    """Sync: occupies its worker (thread, process main thread, interpreter) until released."""
    _say_started(args.get("started"))
    return _finish(args, _released(args["release"]))


async def ahold(args: dict[str, Any]) -> Any:
    """Async: says it started, then awaits its release; cancellable at every await, and says
    so when it is cancelled."""
    try:
        return await _ahold(args)
    except asyncio.CancelledError:
        _say_started(args.get("cancelled"), "cancelled")
        raise


async def _ahold(args: dict[str, Any]) -> Any:
    await asyncio.to_thread(_say_started, args.get("started"))
    gate = GATES.get(args["release"])
    end = time.monotonic() + WAIT_BOUND_S
    if gate is not None:
        while not gate.is_set() and time.monotonic() < end:  # noqa: ASYNC110 (a thread's gate)
            await asyncio.sleep(_POLL_S)
        return _finish(args, gate.is_set())
    # another process or interpreter releases it: a file is what crosses every boundary
    while not os.path.exists(args["release"]) and time.monotonic() < end:  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(_POLL_S)
    return _finish(args, os.path.exists(args["release"]))  # noqa: ASYNC240


# -- the plugin tier ---------------------------------------------------------------------------
def _define_plugin() -> type:
    import concurrent.futures as cf

    from subiso.executors.base import Executor
    from subiso.report import RunResult

    try:
        from subiso.runtime import WorkerRuntime  # type: ignore[attr-defined]
    except ImportError:  # subiso.runtime has no package exports (yet)
        from subiso.runtime.execute import WorkerRuntime

    class PluginExecutor(Executor):
        """A third-party tier: implements ``start``, ``shutdown`` and ``cancel_running`` only,
        and gets every call style, context manager and ``close`` from ``Executor``.

        Each run executes on a ``ThreadPoolExecutor`` thread with a one-shot ``WorkerRuntime``.
        A thread cannot be stopped, so ``cancel_running`` only records the request (the test
        checks that the base class asks for it).
        """

        tier = "plugin"

        def __init__(self, *, max_workers: int = 2, **options: Any) -> None:
            super().__init__(**options)
            self.max_workers = max_workers
            self.cancel_requests: list[cf.Future[RunResult]] = []
            self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix="subiso-plugin")

        def start(self, call: Any, events: Any = None) -> cf.Future[RunResult]:
            """``call``: the prepared work (a ``GraphConfig``, or a ``Call`` wrapping one);
            this tier streams no events (``events`` is accepted and left unused)."""
            return self._pool.submit(self._run, call)

        def _run(self, call: Any) -> RunResult:
            return WorkerRuntime(self.tier, selected_by=self.selected_by).run_once(call)

        def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_pending)

        def cancel_running(self, future: cf.Future[RunResult]) -> None:
            self.cancel_requests.append(future)

    return PluginExecutor


def __getattr__(name: str) -> Any:
    if name == "PluginExecutor":
        cls = _define_plugin()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def exits(code: int) -> None:
    """Calls sys.exit: must reach its caller as RunAborted, ending neither worker nor host."""
    raise SystemExit(code)


def interrupted(_: object) -> None:
    raise KeyboardInterrupt


async def ahog(args: dict[str, Any]) -> Any:
    """An async node that never yields: it holds its loop (a blocking wait, not an await)
    until released, so no cancellation on that loop can reach it before then."""
    _say_started(args.get("started"))
    return _finish(args, _released(args["release"]))  # blocking on purpose


def hog(args: dict[str, Any]) -> Any:
    """A sync node that cannot be interrupted until released."""
    _say_started(args.get("started"))
    return _finish(args, _released(args["release"]))
