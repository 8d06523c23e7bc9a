"""The one Executor contract, checked the same way on every tier: the five built-ins and a plugin.

``tier`` runs each test on ``inline``, ``context``, ``thread``, ``subinterpreter``, ``process``
and ``plugin`` (``tests.contract_workloads.PluginExecutor``: subclasses ``Executor`` and
implements only ``start``, ``shutdown`` and ``cancel_running``). Where a tier really differs,
the test says so with an explicit ``pytest.skip`` naming the reason.

No mocks, no sleeps as synchronisation: runs say they started by writing to a FIFO the test
reads (with a bound, so a lost signal fails instead of hanging) and are released by an Event
(in-process tiers) or a file (across a process or interpreter boundary). Outputs are exact.

Note on cancelling a *running sync* run: ``Executor.submit`` relays into a fresh future that is
never marked running, so ``submit(...).cancel()`` returns True on every worker tier even while a
sync run goes on to complete (its thread cannot be stopped). Only async runs are checked here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import select
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import ConfigError, ExecutorClosed, GraphConfig, RunReport, RunResult, RunTimeout
from subiso.errors import RemoteTraceback
from tests import contract_workloads as cw
from tests.conftest import BACKEND, list_all_interpreters
from tests.workloads import expected

pytestmark = pytest.mark.timeout(60)

CW = "tests.contract_workloads"
W = "tests.workloads"
TIERS = ("inline", "context", "thread", "subinterpreter", "process", "plugin")
#: Tiers that run a sync caller's work on the caller's own thread: nothing is ever queued.
IN_CALLER = ("inline", "context")
#: Bound on every wait for a run's signal (a failure, not a hang, if it never comes).
SIGNAL_BOUND_S = 30.0


# -- executors -----------------------------------------------------------------------------------
@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def new(tier: str, make_executor: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``new(**options)``: an executor of ``tier``, 2 workers where it has workers, closed at
    teardown (before conftest's leaked-thread check)."""
    plugins: list[Any] = []

    def build(**options: Any) -> Any:
        if tier == "plugin":
            executor = cw.PluginExecutor(max_workers=2, **options)
            plugins.append(executor)
            return executor
        if tier not in IN_CALLER:
            options.setdefault("max_workers", 2)
        return make_executor(tier, **options)

    yield build
    for executor in plugins:
        executor.close()


@pytest.fixture
def ex(new: Callable[..., Any]) -> Any:
    return new()


def ran_tier(ex: Any, tier: str) -> str:
    """The tier whose workers run the work (the subinterpreter tier may fall back)."""
    return getattr(ex, "fallback_tier", None) or tier


def fell_back(ex: Any) -> bool:
    return getattr(ex, "fallback_tier", None) is not None


def out_of_process(ex: Any, tier: str) -> bool:
    return ran_tier(ex, tier) == "process"


def crosses_boundary(ex: Any, tier: str) -> bool:
    """Runs of ``tests.contract_workloads`` functions execute beyond a process or interpreter
    boundary (process; subinterpreter in full mode, or fallen back to process)."""
    return ran_tier(ex, tier) in ("process", "subinterpreter")


def cfg(graph: str, value: Any = None, **extra: Any) -> GraphConfig:
    return GraphConfig(graph=graph, input=value, **extra)


# -- holding runs --------------------------------------------------------------------------------
class Gate:
    """A run the test holds: it says it started through a FIFO, waits for ``open()``."""

    _count = 0

    def __init__(self, tmp_path: Path, *, signal: bool = True) -> None:
        Gate._count += 1
        base = tmp_path / f"gate{Gate._count}"
        self.release = f"{base}.release"
        self.marker = f"{base}.marker"
        self.fifos: dict[str, str] = {}
        self.fds: dict[str, int] = {}
        for word in ("started", "cancelled") if signal else ():
            # the read end is open before the run starts: its writes never block
            self.fifos[word] = f"{base}.{word}"
            os.mkfifo(self.fifos[word])
            self.fds[word] = os.open(self.fifos[word], os.O_RDONLY | os.O_NONBLOCK)
        self.event = cw.GATES[self.release] = threading.Event()

    def args(self, value: Any) -> dict[str, Any]:
        return {**self.fifos, "release": self.release, "marker": self.marker, "value": value}

    def wait_for(self, word: str, bound: float = SIGNAL_BOUND_S) -> None:
        """Block until the run wrote ``word`` to its FIFO (bounded: a lost run fails)."""
        fd = self.fds[word]
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        data = b""
        while len(data) < len(word):
            assert poller.poll(bound * 1000), f"the run never said {word!r} within {bound}s"
            chunk = os.read(fd, 64)
            assert chunk, f"the run closed its {word!r} FIFO without a word"
            data += chunk
        assert data == word.encode()

    def wait_started(self) -> None:
        self.wait_for("started")

    async def await_started(self) -> None:
        await asyncio.to_thread(self.wait_started)

    def open(self) -> None:
        Path(self.release).touch()
        self.event.set()

    def finished(self) -> bool:
        return os.path.exists(self.marker)

    def close(self) -> None:
        cw.GATES.pop(self.release, None)
        for fd in self.fds.values():
            os.close(fd)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    made: list[Gate] = []

    def gate(**kw: Any) -> Gate:
        made.append(Gate(tmp_path, **kw))
        return made[-1]

    yield gate
    for g in made:  # never leave a run waiting: release everything, then forget the events
        g.open()
        g.close()


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (reaped; a zombie would still answer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- every call style, every kind of target ---------------------------------------------------
TARGETS = [
    pytest.param(f"{CW}:square", lambda i: i, lambda i: i * i, id="sync-function"),
    pytest.param(f"{CW}:asquare", lambda i: i, lambda i: i * i, id="async-function"),
    pytest.param(
        f"{W}:sync_graph", lambda i: {"x": i}, lambda i: {"x": expected(i)}, id="sync-graph"
    ),
    pytest.param(
        f"{W}:async_graph", lambda i: {"x": i}, lambda i: {"x": expected(i)}, id="async-graph"
    ),
]


@pytest.mark.parametrize(("path", "make_in", "want"), TARGETS)
def test_every_call_style(
    ex: Any, path: str, make_in: Callable[[int], Any], want: Callable[[int], Any]
) -> None:
    assert ex.run(cfg(path, make_in(3))) == want(3)
    assert ex.run({"graph": path, "input": make_in(4)}) == want(4)  # a mapping works too

    result = ex.execute(cfg(path, make_in(5)))
    assert isinstance(result, RunResult) and isinstance(result.report, RunReport)
    assert result.output == want(5)

    future = ex.submit(cfg(path, make_in(6)))
    assert isinstance(future, cf.Future)
    assert future.result(timeout=SIGNAL_BOUND_S) == want(6)
    executed = ex.submit_execute(cfg(path, make_in(7))).result(timeout=SIGNAL_BOUND_S)
    assert isinstance(executed, RunResult) and executed.output == want(7)

    # map starts every run at once and yields in submission order
    inputs = [9, 1, 8, 2, 7, 3]
    assert list(ex.map(cfg(path, make_in(i)) for i in inputs)) == [want(i) for i in inputs]

    async def host() -> list[Any]:
        before = asyncio.all_tasks()
        outs = [await ex.arun(cfg(path, make_in(10)))]
        aout, areport = await ex.aexecute(cfg(path, make_in(11)))
        outs += [aout, isinstance(areport, RunReport)]
        outs += await asyncio.gather(*(ex.arun(cfg(path, make_in(i))) for i in range(4)))
        # the sync API straight from the loop's thread: never nests (or deadlocks on) a loop
        outs.append(ex.run(cfg(path, make_in(12))))
        outs.append(ex.submit(cfg(path, make_in(13))).result(timeout=SIGNAL_BOUND_S))
        assert asyncio.all_tasks() == before
        return outs

    assert asyncio.run(host()) == [want(10), want(11), True, *map(want, range(4)), want(12),
                                   want(13)]  # fmt: skip


def test_eight_threads_call_run_at_once(ex: Any) -> None:
    start = threading.Barrier(8, timeout=SIGNAL_BOUND_S)

    def caller(k: int) -> list[Any]:
        start.wait()
        outs = []
        for i in range(5):
            n = k * 10 + i
            if i % 3 == 0:
                outs.append(ex.run(cfg(f"{CW}:square", n)))
            elif i % 3 == 1:
                outs.append(ex.run(cfg(f"{CW}:asquare", n)))
            else:
                outs.append(ex.run(cfg(f"{W}:sync_graph", {"x": n})))
        return outs

    def want(k: int) -> list[Any]:
        return [(k * 10 + i) ** 2 if i % 3 != 2 else {"x": expected(k * 10 + i)} for i in range(5)]

    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(caller, k) for k in range(8)]
        assert [f.result(timeout=SIGNAL_BOUND_S) for f in futures] == [want(k) for k in range(8)]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_checkpointers_with_a_thread_id(ex: Any, kind: str, tmp_path: Path) -> None:
    spec = "memory" if kind == "memory" else f"sqlite:///{tmp_path / 'contract.db'}"

    def run_cfg(graph: str, value: Any, thread: str) -> GraphConfig:
        return cfg(graph, value, checkpointer=spec, config={"configurable": {"thread_id": thread}})

    assert ex.run(run_cfg(f"{W}:sync_graph", {"x": 2}, "sync")) == {"x": expected(2)}
    assert ex.run(run_cfg(f"{W}:async_graph", {"x": 3}, "async")) == {"x": expected(3)}
    assert ex.run(run_cfg(f"{W}:log_builder", {"entries": []}, "log-a")) == {"entries": ["run-0"]}

    async def host() -> Any:
        return await ex.arun(run_cfg(f"{W}:async_graph", {"x": 4}, "async-2"))

    assert asyncio.run(host()) == {"x": expected(4)}
    if kind == "memory":
        return  # a memory saver lives per worker (or per run): history across runs is not shared
    # sqlite: the thread's history persists across runs, whichever worker runs each
    log = run_cfg(f"{W}:log_builder", {"entries": []}, "log-b")
    assert ex.run(log) == {"entries": ["run-0"]}
    assert ex.run(log) == {"entries": ["run-0", "run-1"]}

    async def again() -> Any:
        return await ex.arun(log)

    assert asyncio.run(again()) == {"entries": ["run-0", "run-1", "run-2"]}


# -- errors and timeouts -------------------------------------------------------------------------
def check_origin(ex: Any, tier: str, exc: BaseException, function: str) -> None:
    """The worker's traceback reaches ``function``: as RemoteTraceback text across a boundary,
    as real frames in-process."""
    if crosses_boundary(ex, tier):
        cause = exc.__cause__
        assert isinstance(cause, RemoteTraceback), repr(cause)
        assert f"in {function}" in cause.tb and "contract_workloads.py" in cause.tb, cause.tb
    else:
        frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        assert function in frames, frames


def test_exits_and_interrupts_raised_by_a_run_end_neither_worker_nor_host(
    ex: Any, tier: str
) -> None:
    """sys.exit() in a run (or a target like "sys:exit") reaches its caller as RunAborted; a
    KeyboardInterrupt too, except in the caller's own thread (inline, context), where it is the
    caller's. The executor keeps working."""
    with pytest.raises(subiso.RunAborted, match=r"SystemExit\(3\)") as info:
        ex.run(cfg(f"{CW}:exits", 3))
    cause = info.value.__cause__  # across a boundary: the worker's traceback, naming it
    assert isinstance(cause, SystemExit) or "SystemExit" in str(cause)
    with pytest.raises(ConfigError, match="sys:exit"):
        ex.run(cfg("sys:exit", 3))
    expected_error = KeyboardInterrupt if tier in IN_CALLER else subiso.RunAborted
    with pytest.raises(expected_error):
        ex.run(cfg(f"{CW}:interrupted"))
    assert ex.run(cfg(f"{CW}:square", 4)) == 16


def test_workflow_error_keeps_type_message_and_traceback(ex: Any, tier: str) -> None:
    for fn in ("boom", "aboom"):
        with pytest.raises(ValueError, match=r"^boom$") as info:
            ex.run(cfg(f"{CW}:{fn}"))
        assert type(info.value) is ValueError
        check_origin(ex, tier, info.value, fn)
        with pytest.raises(ValueError, match=r"^boom$") as info:
            ex.submit(cfg(f"{CW}:{fn}")).result(timeout=SIGNAL_BOUND_S)
        check_origin(ex, tier, info.value, fn)

    with pytest.raises(cw.ContractError, match=r"^custom 7$") as custom:
        ex.run(cfg(f"{CW}:custom_fail", "custom 7"))
    assert type(custom.value) is cw.ContractError
    check_origin(ex, tier, custom.value, "custom_fail")

    async def host() -> Any:
        with pytest.raises(ValueError, match=r"^boom$") as ainfo:
            await ex.arun(cfg(f"{CW}:aboom"))
        check_origin(ex, tier, ainfo.value, "aboom")
        with pytest.raises(cw.ContractError, match=r"^from arun$"):
            await ex.arun(cfg(f"{CW}:custom_fail", "from arun"))
        return await ex.arun(cfg(f"{CW}:asquare", 5))

    assert asyncio.run(host()) == 25
    assert ex.run(cfg(f"{CW}:square", 6)) == 36


def test_timeout_raises_run_timeout_and_the_executor_survives(ex: Any) -> None:
    slow = cfg(f"{CW}:sleep_long", timeout=0.5)
    with pytest.raises(RunTimeout) as info:
        ex.run(slow)
    assert isinstance(info.value, TimeoutError)
    assert ex.run(cfg(f"{CW}:square", 3)) == 9

    with pytest.raises(RunTimeout):
        ex.submit(slow).result(timeout=SIGNAL_BOUND_S)

    async def host() -> Any:
        with pytest.raises(RunTimeout):
            await ex.arun(slow)
        return await ex.arun(cfg(f"{CW}:asquare", 4))

    assert asyncio.run(host()) == 16
    assert ex.run(cfg(f"{W}:async_graph", {"x": 1})) == {"x": expected(1)}


# -- cancellation --------------------------------------------------------------------------------
SUBINTERP_FULL_CANCEL_BUG = (
    "SubinterpreterExecutor.cancel_running() cannot reach a full-mode call that already runs "
    "inside an interpreter (the pool's host thread waits on it synchronously; only the call's "
    "timeout ends it there), so a cancelled arun's coroutine runs on to its end"
)


def test_cancelling_arun_cancels_the_run(
    ex: Any, tier: str, gates: Callable[..., Gate], request: pytest.FixtureRequest
) -> None:
    # known broken: no need to wait long for a cancellation that never comes
    bound = SIGNAL_BOUND_S
    if tier == "subinterpreter" and not fell_back(ex):
        request.applymarker(pytest.mark.xfail(strict=True, reason=SUBINTERP_FULL_CANCEL_BUG))
        bound = 2.0
    gate = gates()

    async def host() -> Any:
        before = asyncio.all_tasks()
        task = asyncio.create_task(ex.arun(cfg(f"{CW}:ahold", gate.args("late"))))
        await gate.await_started()  # the run executes now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert asyncio.all_tasks() == before
        if tier != "plugin":  # the run itself sees the cancellation (it lands asynchronously)
            await asyncio.to_thread(gate.wait_for, "cancelled", bound)
        gate.open()  # a run that was not stopped now finishes and leaves its marker
        return await ex.arun(cfg(f"{CW}:asquare", 9))

    assert asyncio.run(host()) == 81
    assert ex.run(cfg(f"{CW}:square", 2)) == 4
    if tier == "plugin":
        # a pool thread cannot be stopped: the base class asked the tier, which is all it can do
        assert len(ex.cancel_requests) == 1
        return
    ex.close(wait=True)  # drains: a run still going would finish (and leave its marker) here
    assert not gate.finished(), "the cancelled run kept running to completion"


def skip_unless_saturable(ex: Any, tier: str) -> None:
    if tier == "subinterpreter" and fell_back(ex) and ex.fallback_tier == "process":
        pytest.skip("fell back to the process tier, whose workers start lazily and take runs as "
                    "soon as one is ready: occupying both needs prestart=True, which "
                    "SubinterpreterExecutor does not pass on (the [process] case covers it)")  # fmt: skip


def test_cancelling_a_queued_submit(new: Callable[..., Any], tier: str, gates: Any) -> None:
    if tier in IN_CALLER:
        pytest.skip(f"{tier} runs a sync caller's work on the caller's thread: submit() returns a "
                    "done future, nothing is ever queued")  # fmt: skip
    # prestart: process dispatch sends a run to a ready worker at once, so both holds must
    # find one ready worker each to occupy both
    ex = new(prestart=True) if tier == "process" else new()
    skip_unless_saturable(ex, tier)
    held = [gates() for _ in range(2)]
    held_futures = [ex.submit(cfg(f"{CW}:hold", g.args(f"held-{i}"))) for i, g in enumerate(held)]
    for g in held:
        g.wait_started()  # both workers are busy now
    victim, control = gates(signal=False), gates(signal=False)
    cancelled = ex.submit(cfg(f"{CW}:mark", {"marker": victim.marker, "value": "victim"}))
    kept = ex.submit(cfg(f"{CW}:mark", {"marker": control.marker, "value": "control"}))
    assert cancelled.cancel() is True
    assert cancelled.cancelled() and cancelled.done()
    with pytest.raises(cf.CancelledError):
        cancelled.result()
    for g in held:
        g.open()
    assert [f.result(timeout=SIGNAL_BOUND_S) for f in held_futures] == ["held-0", "held-1"]
    assert kept.result(timeout=SIGNAL_BOUND_S) == "control" and control.finished()
    ex.close(wait=True)
    assert not victim.finished(), "a cancelled queued run still ran"
    assert all(f.done() for f in [*held_futures, cancelled, kept])


def test_cancelling_a_running_async_submit(
    new: Callable[..., Any], tier: str, gates: Any, request: pytest.FixtureRequest
) -> None:
    """``submit(...).cancel()`` on an async run that already executes either fails (False: the
    run completes and its future has the output) or stops the run (True: it never finishes).
    (A *sync* run cannot be stopped once it runs: see the module docstring.)"""
    if tier in IN_CALLER:
        pytest.skip(f"{tier} runs a sync caller's work on the caller's thread: its future is "
                    "done before the caller could cancel it")  # fmt: skip
    if tier == "plugin":
        pytest.skip("PluginExecutor runs on ThreadPoolExecutor threads, which cannot be stopped: "
                    "its cancel_running() only records the request")  # fmt: skip
    ex = new()
    bound = SIGNAL_BOUND_S
    running = gates()
    future = ex.submit(cfg(f"{CW}:ahold", running.args("done")))
    running.wait_started()
    if future.cancel():
        assert future.cancelled()
        running.wait_for("cancelled", bound)  # the cancellation reached the run
        running.open()
        assert ex.run(cfg(f"{CW}:square", 3)) == 9
        ex.close(wait=True)
        assert not running.finished(), "cancel() said True, yet the run completed"
    else:
        running.open()
        assert future.result(timeout=SIGNAL_BOUND_S) == "done"


# -- reports -------------------------------------------------------------------------------------
def test_report_fields(ex: Any, tier: str) -> None:
    me = threading.get_ident()
    runs = [
        (f"{CW}:where", "sync-fn"),
        (f"{CW}:awhere", "async-fn"),
        (f"{W}:sync_graph", {"x": 1}),
        (f"{W}:async_graph", {"x": 1}),
    ]
    results = [ex.execute(cfg(path, value)) for path, value in runs]

    async def host() -> RunResult:
        return await ex.aexecute(cfg(f"{CW}:awhere", "aexecute"))

    results.append(asyncio.run(host()))
    for (path, _), result in zip([*runs, (f"{CW}:awhere", None)], results, strict=True):
        report = result.report
        assert report.tier == ran_tier(ex, tier), report
        assert report.mode in ("full", "hybrid", "fallback")
        if fell_back(ex):
            assert report.mode == "fallback" and report.fallback_reason
        elif tier == "subinterpreter":  # functions run whole in interpreters, graphs hybrid
            assert report.mode == ("full" if path.startswith(CW) else "hybrid"), report
        else:
            assert report.mode == "full" and report.fallback_reason is None
        assert isinstance(report.os_thread_id, int)
        assert report.duration_s >= 0
        if out_of_process(ex, tier):
            assert report.pid != os.getpid()
            if tier == "process":
                assert report.pid in ex.worker_pids()
        else:
            assert report.pid == os.getpid()
        if isinstance(result.output, dict) and "pid" in result.output:
            assert result.output["pid"] == report.pid
            assert result.output["thread"] == report.os_thread_id
    sync_fn = results[0].report
    if tier in IN_CALLER:
        assert sync_fn.os_thread_id == me  # a sync caller's run executes on its own thread
    elif not out_of_process(ex, tier):
        assert sync_fn.os_thread_id != me


# -- lifecycle -----------------------------------------------------------------------------------
def closed_everywhere(ex: Any) -> None:
    assert ex.closed
    probe = cfg(f"{CW}:square", 1)
    for call in (ex.run, ex.execute, ex.submit, ex.submit_execute, lambda c: list(ex.map([c]))):
        with pytest.raises(ExecutorClosed):
            call(probe)

    async def host() -> None:
        with pytest.raises(ExecutorClosed):
            await ex.arun(probe)
        with pytest.raises(ExecutorClosed):
            await ex.aexecute(probe)

    asyncio.run(host())


def test_close_is_idempotent_and_final(ex: Any) -> None:
    assert not ex.closed
    assert ex.run(cfg(f"{CW}:square", 5)) == 25
    ex.close()
    closed_everywhere(ex)
    ex.close()
    ex.close(wait=False)
    ex.close(cancel_pending=True)
    assert ex.closed


def test_with_closes(new: Callable[..., Any]) -> None:
    with new() as ex:
        assert not ex.closed
        assert ex.run(cfg(f"{W}:async_graph", {"x": 2})) == {"x": expected(2)}
    closed_everywhere(ex)


def test_async_with_closes(new: Callable[..., Any]) -> None:
    async def host() -> Any:
        before = asyncio.all_tasks()
        async with new() as ex:
            assert not ex.closed
            assert await ex.arun(cfg(f"{CW}:asquare", 7)) == 49
            assert await ex.arun(cfg(f"{W}:async_graph", {"x": 2})) == {"x": expected(2)}
        assert ex.closed
        with pytest.raises(ExecutorClosed):
            await ex.arun(cfg(f"{CW}:asquare", 1))
        assert asyncio.all_tasks() == before
        return ex

    closed_everywhere(asyncio.run(host()))


def test_close_wait_drains_submitted_runs(ex: Any) -> None:
    futures = [ex.submit(cfg(f"{CW}:asquare", i)) for i in range(8)]
    futures += [ex.submit(cfg(f"{W}:async_graph", {"x": i})) for i in range(4)]
    ex.close(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == [i * i for i in range(8)] + [
        {"x": expected(i)} for i in range(4)
    ]


def test_close_cancel_pending_cancels_queued_runs(
    new: Callable[..., Any], tier: str, gates: Any, request: pytest.FixtureRequest
) -> None:
    if tier in IN_CALLER:
        pytest.skip(f"{tier} runs a sync caller's work on the caller's thread: nothing is ever "
                    "queued for close(cancel_pending=True) to cancel")  # fmt: skip
    ex = new(prestart=True) if tier == "process" else new()
    skip_unless_saturable(ex, tier)
    held = [gates() for _ in range(2)]
    held_futures = [ex.submit(cfg(f"{CW}:hold", g.args(i))) for i, g in enumerate(held)]
    for g in held:
        g.wait_started()
    queued_gates = [gates(signal=False) for _ in range(4)]
    queued = [
        ex.submit(cfg(f"{CW}:mark", {"marker": g.marker, "value": i}))
        for i, g in enumerate(queued_gates)
    ]
    closer = threading.Thread(target=ex.close, kwargs={"wait": True, "cancel_pending": True})
    closer.start()
    # the queued runs are cancelled while the held ones still run: close does not wait for them
    _, not_done = cf.wait(queued, timeout=SIGNAL_BOUND_S)
    assert not not_done and all(f.cancelled() for f in queued)
    assert not any(f.done() for f in held_futures), "close(cancel_pending) touched running runs"
    for g in held:
        g.open()
    closer.join(SIGNAL_BOUND_S)
    assert not closer.is_alive()
    assert [f.result(timeout=0) for f in held_futures] == [0, 1]
    assert not any(g.finished() for g in queued_gates), "a cancelled queued run still ran"
    closed_everywhere(ex)


def test_close_leaves_no_threads_interpreters_or_processes(
    new: Callable[..., Any], tier: str, tmp_path: Path
) -> None:
    # threads: conftest's thread_guard fails the test at teardown if any outlives close()
    interpreters_before = len(list_all_interpreters()) if BACKEND else 0
    ex = new()
    db = f"sqlite:///{tmp_path / 'leaks.db'}"
    work = [
        cfg(f"{CW}:where", 0),
        cfg(f"{CW}:awhere", 1),
        cfg(f"{W}:sync_graph", {"x": 1}),
        cfg(f"{W}:async_graph", {"x": 1}, checkpointer=db, config={"configurable": {"thread_id": "t"}}),
    ]  # fmt: skip
    results = [ex.execute(c) for c in work] + [f.result() for f in map(ex.submit_execute, work)]

    async def host() -> list[RunResult]:
        return list(await asyncio.gather(*(ex.aexecute(c) for c in work)))

    results += asyncio.run(host())
    assert [r.output["tag"] for r in results[:2]] == [0, 1]
    pids = {r.report.pid for r in results} - {os.getpid()}
    if tier == "process":
        pids |= set(ex.worker_pids())
    assert bool(pids) == out_of_process(ex, tier)
    if tier == "subinterpreter" and BACKEND and not fell_back(ex):
        assert len(list_all_interpreters()) > interpreters_before
    ex.close()
    assert ex.closed
    assert [p for p in sorted(pids) if not pid_gone(p)] == []
    if BACKEND:
        assert len(list_all_interpreters()) == interpreters_before


def test_subinterpreter_fallback_is_reported(make_executor: Callable[..., Any]) -> None:
    if BACKEND:
        pytest.skip(f"Python {sys.version_info[0]}.{sys.version_info[1]} has subinterpreters: "
                    "nothing to fall back from")  # fmt: skip
    ex = make_executor("subinterpreter", max_workers=2)
    result = ex.execute(cfg(f"{CW}:square", 3))
    assert result.output == 9
    assert result.report.mode == "fallback" and result.report.tier == ex.fallback_tier
    assert f"ran on the {ex.fallback_tier} tier" in (result.report.fallback_reason or "")


@pytest.mark.parametrize("node", ["hog", "ahog"])
def test_control_comes_back_at_the_deadline_whatever_the_node_does(
    new: Callable[..., Any], tier: str, gates: Any, node: str
) -> None:
    """A sync node that cannot be interrupted, and an async one that never yields (it holds
    its loop): run() raises RunTimeout while the node is still held - the test releases it
    only afterwards, so a caller that waited for the node would never return - and the
    executor keeps working (a stuck worker is given up and replaced)."""
    if tier == "plugin":
        pytest.skip("the plugin tier runs on ThreadPoolExecutor threads it cannot give up")
    ex = new()
    gate = gates()
    with pytest.raises(RunTimeout):
        ex.run(cfg(f"{CW}:{node}", gate.args("held"), timeout=0.5))
    assert not gate.finished(), "control came back only after the node ended"
    gate.open()
    assert ex.run(cfg(f"{CW}:square", 5)) == 25
    assert [ex.run(cfg(f"{W}:async_graph", {"x": i})) for i in range(3)] == [
        {"x": expected(i)} for i in range(3)
    ]


# -- the stdlib's and LangGraph's names ----------------------------------------------------------
def test_batch_returns_outputs_in_order(ex: Any) -> None:
    assert ex.batch([cfg(f"{CW}:square", i) for i in range(6)]) == [i * i for i in range(6)]


def test_batch_checks_every_config_before_any_run_starts(ex: Any) -> None:
    with pytest.raises(ConfigError, match=r"GraphConfig\.graph"):
        ex.batch([cfg(f"{CW}:square", 1), {"graph": "no import path"}])
    assert sum(ex.stats().runs_completed.values()) == 0  # nothing of it ran


def test_batch_raises_the_first_failure_or_returns_it_in_place(ex: Any) -> None:
    cfgs = [cfg(f"{CW}:square", 2), cfg(f"{CW}:boom"), cfg(f"{CW}:square", 3)]
    with pytest.raises(ValueError, match="boom"):
        ex.batch(cfgs)
    out = ex.batch(cfgs, return_exceptions=True)
    assert out[0] == 4 and type(out[1]) is ValueError and out[2] == 9


def test_abatch_bounds_what_is_in_flight(ex: Any) -> None:
    async def host() -> tuple[list[Any], list[Any]]:
        ok = await ex.abatch([cfg(f"{CW}:asquare", i) for i in range(5)], max_concurrency=2)
        mixed = await ex.abatch(
            [cfg(f"{CW}:asquare", 2), cfg(f"{CW}:aboom")], return_exceptions=True
        )
        return ok, mixed

    ok, mixed = asyncio.run(host())
    assert ok == [0, 1, 4, 9, 16]
    assert mixed[0] == 4 and type(mixed[1]) is ValueError


def test_shutdown_is_the_stdlibs(new: Callable[..., Any]) -> None:
    import inspect

    ours = inspect.signature(subiso.Executor.shutdown).parameters
    theirs = inspect.signature(cf.Executor.shutdown).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]
    ex = new()
    assert ex.run(cfg(f"{CW}:square", 3)) == 9
    ex.shutdown(wait=True, cancel_futures=True)
    assert ex.closed
    with pytest.raises(subiso.ExecutorClosed):
        ex.run(cfg(f"{CW}:square", 3))
    ex.shutdown()  # idempotent


def test_help_shows_the_tier_hooks_apart_from_the_callers_methods() -> None:
    import pydoc

    text = pydoc.render_doc(subiso.Executor, renderer=pydoc.plaintext)
    own, _, inherited = text.partition("Methods inherited from subiso.executors.hooks.TierHooks")
    for name in ("run", "submit", "map", "batch", "shutdown", "stream", "stats"):
        assert f"\n |  {name}(" in own, name
    for hook in ("start", "stop_workers", "cancel_running", "abandon", "worker_stats"):
        assert f"\n |  {hook}(" in inherited and f"\n |  {hook}(" not in own, hook
