"""Every in-process tier (inline, context, thread) against the one Executor contract.

Real LangGraph graphs, real event loops, real threads: no mocks, and no sleeps used as
synchronisation. Each test drives ``subiso.get_executor(name)`` the way a user would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import ConfigError, GraphConfig, RunReport, RunResult, RunTimeout
from subiso.executors.thread import ThreadExecutor
from tests import workloads
from tests.workloads import WorkflowFailed, expected

ROOT = Path(__file__).resolve().parents[1]

# (import path, input, expected output): every kind of target GraphConfig.graph may name.
TARGETS = [
    ("tests.workloads:sync_graph", {"x": 3}, {"x": expected(3)}),
    ("tests.workloads:async_graph", {"x": 4}, {"x": expected(4)}),
    ("tests.workloads:sync_builder", {"x": 5}, {"x": expected(5)}),
    ("tests.workloads:async_builder", {"x": 6}, {"x": expected(6)}),
    ("tests.workloads:make_sync_graph", {"x": 7}, {"x": expected(7)}),
    ("tests.workloads:square", 8, 64),
    ("tests.workloads:asquare", 9, 81),
]
TARGET_IDS = [t[0].partition(":")[2] for t in TARGETS]


def cfg_for(path: str, value: Any, **extra: Any) -> GraphConfig:
    return GraphConfig(graph=path, input=value, **extra)


def many_cfgs(n: int = 20) -> tuple[list[GraphConfig], list[Any]]:
    """``n`` configs cycling through every target with distinct inputs, and their outputs."""
    cfgs, outs = [], []
    for i in range(n):
        path, _, _ = TARGETS[i % len(TARGETS)]
        if path.endswith(("square", "asquare")):
            cfgs.append(cfg_for(path, i))
            outs.append(i * i)
        else:
            cfgs.append(cfg_for(path, {"x": i}))
            outs.append({"x": expected(i)})
    return cfgs, outs


def explode_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# -- choosing a tier -----------------------------------------------------------------------------
def test_get_executor_by_name(make_executor: Any) -> None:
    assert isinstance(make_executor("inline"), subiso.InlineExecutor)
    assert isinstance(make_executor("context"), subiso.ContextExecutor)
    thread = make_executor("thread", max_workers=3)
    assert isinstance(thread, subiso.ThreadExecutor)
    assert thread.max_workers == 3
    assert all(isinstance(make_executor(n), subiso.Executor) for n in ("inline", "context"))


def test_get_executor_unknown_lists_choices() -> None:
    with pytest.raises(ConfigError) as info:
        subiso.get_executor("nope")
    text = str(info.value)
    assert "'nope'" in text
    for name in ("context", "inline", "process", "subinterpreter", "thread"):
        assert name in text, text


def test_default_tier_is_thread() -> None:
    with subiso.get_executor() as ex:
        assert isinstance(ex, subiso.ThreadExecutor)


def test_capabilities() -> None:
    import platform
    import sys

    caps = subiso.capabilities()
    assert caps.python == platform.python_version()
    assert isinstance(caps.free_threaded, bool)
    assert isinstance(caps.gil_enabled, bool)
    assert caps.subinterpreters is None or isinstance(caps.subinterpreters, str)
    if caps.subinterpreters is None:
        assert caps.subinterpreters_reason  # says why not
    if not caps.free_threaded:
        assert caps.gil_enabled and not caps.parallel_threads
    if hasattr(sys, "_is_gil_enabled"):
        assert caps.gil_enabled == sys._is_gil_enabled()
    if sys.version_info < (3, 13):
        assert caps.subinterpreters is None  # no interpreters API before 3.13


@pytest.mark.parametrize(
    "first",
    [
        "import subiso._capabilities",
        "import subiso.executors.subinterpreter.offload",
        "import subiso.auto",
        "",
    ],
)
def test_public_functions_survive_submodule_import(first: str) -> None:
    """``subiso.capabilities`` and ``subiso.offload`` are public functions whose modules are
    private (``_capabilities``, ``_offload``); importing those first must not turn the
    public name into something uncallable. A fresh interpreter, so import order is real."""
    import subprocess
    import sys

    code = f"""
{first}
import subiso
caps = subiso.capabilities()
assert caps.python, caps

@subiso.offload
def inc(x):
    return x + 1

@subiso.offload(strict=False)
async def same(x):
    return x

assert inc(1) == 2 and inc.__subiso_offload__ == {{"strict": True}}
assert same.__subiso_offload__ == {{"strict": False}}
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# -- from sync code ------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "value", "out"), TARGETS, ids=TARGET_IDS)
def test_sync_call_styles(executor: Any, tier: str, path: str, value: Any, out: Any) -> None:
    cfg = cfg_for(path, value)
    assert executor.run(cfg) == out

    result = executor.execute(cfg)
    assert isinstance(result, RunResult)
    output, report = result
    assert output == out
    assert isinstance(report, RunReport)
    assert report.tier == tier

    future = executor.submit(cfg)
    assert isinstance(future, cf.Future)
    assert future.result() == out

    assert executor.submit_execute(cfg).result().output == out
    assert list(executor.map([cfg, cfg_for(path, value)])) == [out, out]
    # a mapping works wherever a GraphConfig does
    assert executor.run({"graph": path, "input": value}) == out


def test_demo_graph(executor: Any, tier: str) -> None:
    from examples.contract_review.graph import graph

    text = (ROOT / "examples" / "contract_review" / "sample_contract.txt").read_text("utf-8")
    want = graph.invoke({"text": text})
    cfg = GraphConfig(graph="examples.contract_review.graph:graph", input={"text": text})
    assert executor.run(cfg) == want

    async def host() -> Any:
        return await executor.arun(cfg.replace(graph="examples.contract_review.graph:builder"))

    assert asyncio.run(host()) == want


# -- from inside a running loop ------------------------------------------------------------------
@pytest.mark.parametrize(("path", "value", "out"), TARGETS, ids=TARGET_IDS)
def test_async_call_styles(executor: Any, tier: str, path: str, value: Any, out: Any) -> None:
    cfg = cfg_for(path, value)

    async def host() -> None:
        loop = asyncio.get_running_loop()
        before = asyncio.all_tasks()
        assert await executor.arun(cfg) == out
        output, report = await executor.aexecute(cfg)
        assert output == out and report.tier == tier
        # the sync API from a thread of the host's pool, as run_in_executor would call it
        assert await loop.run_in_executor(None, executor.run, cfg) == out
        # and straight from the loop's own thread ("a notebook cell"): never nests a loop
        assert executor.run(cfg) == out
        assert executor.submit(cfg).result() == out
        assert asyncio.all_tasks() == before

    asyncio.run(host())


def test_twenty_concurrent_aruns(executor: Any) -> None:
    cfgs, outs = many_cfgs(20)

    async def host() -> None:
        loop = asyncio.get_running_loop()
        before = asyncio.all_tasks()
        assert await asyncio.gather(*(executor.arun(c) for c in cfgs)) == outs
        reports = await asyncio.gather(*(executor.aexecute(c) for c in cfgs))
        assert [r.output for r in reports] == outs
        via_pool = await asyncio.gather(
            *(loop.run_in_executor(None, executor.run, c) for c in cfgs)
        )
        assert via_pool == outs
        assert asyncio.all_tasks() == before

    asyncio.run(host())


# -- errors and timeouts -------------------------------------------------------------------------
def test_workflow_error_keeps_type_and_worker_traceback(executor: Any) -> None:
    bad = GraphConfig(graph="tests.workloads:failing_graph", input={"x": 1})

    with pytest.raises(WorkflowFailed, match="node exploded at x=2") as info:
        executor.run(bad)
    assert "_explode" in explode_text(info.value)

    with pytest.raises(WorkflowFailed) as info:
        executor.submit(bad).result()
    assert "_explode" in explode_text(info.value)

    with pytest.raises(WorkflowFailed, match="plain failure") as info:
        executor.run(GraphConfig(graph="tests.workloads:fail", input="plain failure"))
    assert "in fail" in explode_text(info.value)

    abad = GraphConfig(graph="tests.workloads:afailing_graph", input={"x": 1})
    with pytest.raises(WorkflowFailed, match="async node exploded at x=2") as info:
        executor.run(abad)
    assert "_aexplode" in explode_text(info.value)

    async def host() -> None:
        before = asyncio.all_tasks()
        with pytest.raises(WorkflowFailed) as ainfo:
            await executor.arun(bad)
        assert "_explode" in explode_text(ainfo.value)
        with pytest.raises(WorkflowFailed) as ainfo:
            await executor.arun(abad)
        assert "_aexplode" in explode_text(ainfo.value)
        # the executor still works after, from the same loop
        assert await executor.arun(cfg_for("tests.workloads:async_graph", {"x": 1})) == {
            "x": expected(1)
        }
        assert asyncio.all_tasks() == before

    asyncio.run(host())
    assert executor.run(cfg_for("tests.workloads:sync_graph", {"x": 2})) == {"x": expected(2)}


def test_timeout_raises_run_timeout_and_executor_survives(executor: Any) -> None:
    hang = GraphConfig(graph="tests.workloads:hang", timeout=0.2)

    with pytest.raises(RunTimeout) as info:
        executor.run(hang)
    assert isinstance(info.value, TimeoutError)
    assert "tests.workloads:hang" in str(info.value)
    assert executor.run(cfg_for("tests.workloads:sync_graph", {"x": 1})) == {"x": expected(1)}

    with pytest.raises(TimeoutError):
        executor.submit(hang).result()

    async def host() -> None:
        before = asyncio.all_tasks()
        with pytest.raises(RunTimeout):
            await executor.arun(hang)
        assert await executor.arun(cfg_for("tests.workloads:asquare", 6)) == 36
        assert asyncio.all_tasks() == before

    asyncio.run(host())
    assert executor.run(cfg_for("tests.workloads:async_graph", {"x": 3})) == {"x": expected(3)}


def test_executor_level_timeout(make_executor: Any, tier: str) -> None:
    executor = make_executor(tier, timeout=0.2)
    with pytest.raises(RunTimeout):
        executor.run(GraphConfig(graph="tests.workloads:hang"))
    # a run's own timeout wins over the executor's, and normal runs are unaffected
    assert executor.run(cfg_for("tests.workloads:sync_graph", {"x": 4}, timeout=30)) == {
        "x": expected(4)
    }
    assert executor.run(cfg_for("tests.workloads:square", 3)) == 9


# -- reports -------------------------------------------------------------------------------------
def test_run_report_fields(executor: Any, tier: str) -> None:
    caller = threading.get_ident()
    for path, value in (("tests.workloads:async_graph", {"x": 1}), ("tests.workloads:awhere", 0)):
        output, report = executor.execute(cfg_for(path, value))
        assert report.tier == tier
        assert report.mode == "full"
        assert report.fallback_reason is None
        assert report.pid == os.getpid()
        assert isinstance(report.os_thread_id, int)
        assert isinstance(report.loop_id, int)
        assert report.duration_s > 0
        if path.endswith("awhere"):
            assert output["loop"] == report.loop_id
            assert output["thread"] == report.os_thread_id
        if tier == "thread":
            assert report.os_thread_id != caller
        else:  # inline and context run sync-called work on the calling thread
            assert report.os_thread_id == caller
    _, report = executor.execute(cfg_for("tests.workloads:sync_graph", {"x": 1}))
    assert report.duration_s > 0 and report.mode == "full"


def test_run_report_from_running_loop(executor: Any, tier: str) -> None:
    async def host() -> None:
        here = asyncio.get_running_loop()
        output, report = await executor.aexecute(cfg_for("tests.workloads:awhere", 0))
        assert output["loop"] == report.loop_id
        if tier == "thread":
            assert report.loop_id != id(here)
            assert report.os_thread_id != threading.get_ident()
        else:  # inline and context's arun share the caller's loop by design
            assert report.loop_id == id(here)
            assert report.os_thread_id == threading.get_ident()

    asyncio.run(host())


# -- the thread tier ----------------------------------------------------------------------------
def test_thread_worker_keeps_one_loop(make_executor: Any) -> None:
    executor = make_executor("thread", max_workers=1)
    caller = threading.get_ident()
    seen = [executor.execute(cfg_for("tests.workloads:awhere", i)) for i in range(3)]
    # a sync run in between: no loop runs while it does (node code may call asyncio.run)
    mid = executor.run(cfg_for("tests.workloads:where", 0))
    seen.append(executor.execute(cfg_for("tests.workloads:awhere", 9)))
    loops = {out["loop"] for out, _ in seen}
    threads = {out["thread"] for out, _ in seen}
    assert len(loops) == 1, "the worker's loop must persist across runs"
    assert {r.loop_id for _, r in seen} == loops
    assert threads == {mid["thread"]} and caller not in threads
    assert mid["loop"] is None
    assert [t.ident for t in executor.worker_threads] == list(threads)

    async def host() -> None:
        # arun from a host loop lands on the same worker loop, not the host's
        out = await executor.arun(cfg_for("tests.workloads:awhere", 0))
        assert out["loop"] in loops and out["loop"] != id(asyncio.get_running_loop())

    asyncio.run(host())


def test_thread_two_workers_run_concurrently(make_executor: Any) -> None:
    """Two blocking sync runs can only both pass a Barrier(2) on two different workers."""
    executor = make_executor("thread", max_workers=2)
    workloads.rendezvous.reset()
    futures = [executor.submit(cfg_for("tests.workloads:meet", i)) for i in range(2)]
    idents = [f.result() for f in futures]  # BrokenBarrierError here if they were serialised
    worker_idents = {t.ident for t in executor.worker_threads}
    assert len(set(idents)) == 2
    assert set(idents) == worker_idents
    assert threading.get_ident() not in idents


def test_thread_one_worker_interleaves_async_runs(make_executor: Any) -> None:
    """Two async runs that wait for each other finish only if they interleave on one loop."""
    executor = make_executor("thread", max_workers=1)
    workloads.ameet_reset()
    futures = [executor.submit(cfg_for("tests.workloads:ameet", i)) for i in range(2)]
    a, b = (f.result() for f in futures)
    assert a == b  # same worker thread, same loop
    assert executor.stats().workers_active == 1


def test_thread_dispatch_spreads_and_caps_workers(make_executor: Any) -> None:
    executor = make_executor("thread", max_workers=2)
    # 20 runs submitted at once may only ever use max_workers threads
    cfgs, outs = many_cfgs(20)
    futures = [executor.submit(cfg) for cfg in cfgs]
    assert [f.result() for f in futures] == outs
    assert 1 <= executor.stats().workers_active <= 2
    assert len(executor.worker_threads) <= 2


# -- the context tier ---------------------------------------------------------------------------
def test_context_run_inside_running_loop_uses_helper_thread(make_executor: Any) -> None:
    executor = make_executor("context")

    async def host() -> None:
        here = asyncio.get_running_loop()
        me = threading.get_ident()
        for path in ("tests.workloads:where", "tests.workloads:awhere"):
            out, report = executor.execute(cfg_for(path, 0))
            assert out["thread"] != me and report.os_thread_id == out["thread"]
            assert out["loop"] != id(here)
        # a sync run has no loop at all on the helper thread; it could call asyncio.run itself
        assert executor.run(cfg_for("tests.workloads:where", 0))["loop"] is None
        assert executor.run(cfg_for("tests.workloads:sync_helper_graph", {"x": 1})) == {"x": 11}

    asyncio.run(host())


def test_context_run_from_sync_code_stays_on_calling_thread(make_executor: Any) -> None:
    executor = make_executor("context")
    me = threading.get_ident()
    for path in ("tests.workloads:awhere", "tests.workloads:where"):
        out, report = executor.execute(cfg_for(path, 0))
        assert out["thread"] == me == report.os_thread_id


@pytest.mark.parametrize("name", ["context", "thread"])
def test_contextvars_isolated(make_executor: Any, name: str) -> None:
    executor = make_executor(name)
    token = workloads.probe_var.set("caller")
    try:
        for reader in ("tests.workloads:read_probe", "tests.workloads:aread_probe"):
            assert executor.run(cfg_for(reader, None)) == "unset"
        for setter in ("tests.workloads:set_probe", "tests.workloads:aset_probe"):
            assert executor.run(cfg_for(setter, "from-run")) == "from-run"
            assert workloads.probe_var.get() == "caller"
        # nor does one run's value reach the next run
        assert executor.run(cfg_for("tests.workloads:read_probe", None)) == "unset"

        async def host() -> None:
            workloads.probe_var.set("host-task")
            assert await executor.arun(cfg_for("tests.workloads:aread_probe", None)) == "unset"
            assert await executor.arun(cfg_for("tests.workloads:read_probe", None)) == "unset"
            assert await executor.arun(cfg_for("tests.workloads:aset_probe", "x")) == "x"
            assert workloads.probe_var.get() == "host-task"

        asyncio.run(host())
    finally:
        workloads.probe_var.reset(token)


def test_inline_is_the_baseline_without_context_isolation(make_executor: Any) -> None:
    """Documented: inline runs in the caller's own context, so it sees the caller's vars."""
    executor = make_executor("inline")
    token = workloads.probe_var.set("caller")
    try:
        assert executor.run(cfg_for("tests.workloads:read_probe", None)) == "caller"
    finally:
        workloads.probe_var.reset(token)


def test_context_arun_cleans_up_spawned_tasks(make_executor: Any, paused_gc: None) -> None:
    executor = make_executor("context")

    async def host() -> None:
        before = asyncio.all_tasks()
        out = await executor.arun(cfg_for("tests.workloads:fire_and_forget_graph", {"x": 1}))
        assert out == {"x": 2}
        assert asyncio.all_tasks() == before

    asyncio.run(host())


# -- closing -------------------------------------------------------------------------------------
def _exercise(executor: Any, db: Path) -> None:
    """Sync, async, spawned-task and checkpointer work: everything that starts threads."""
    executor.run(cfg_for("tests.workloads:sync_graph", {"x": 1}))
    executor.run(cfg_for("tests.workloads:async_graph", {"x": 1}))
    executor.run(cfg_for("tests.workloads:square", 2))
    sqlite = GraphConfig(
        graph="tests.workloads:log_builder",
        input={"entries": []},
        config={"configurable": {"thread_id": "close"}},
        checkpointer=f"sqlite:///{db}",
    )
    executor.run(sqlite)

    async def host() -> None:
        await asyncio.gather(*(executor.arun(c) for c in many_cfgs(10)[0]))
        await executor.arun(sqlite)
        await executor.arun(
            cfg_for(
                "tests.workloads:async_graph",
                {"x": 1},
                checkpointer="memory",
                config={"configurable": {"thread_id": "close"}},
            )
        )

    asyncio.run(host())
    # the fire-and-forget graph leaves a task on the worker's (or inline's private) loop
    executor.run(cfg_for("tests.workloads:fire_and_forget_graph", {"x": 1}))


def test_thread_close_joins_its_workers(make_executor: Any) -> None:
    executor = make_executor("thread", max_workers=3)
    workloads.rendezvous.reset()
    futures = [executor.submit(cfg_for("tests.workloads:meet", i)) for i in range(2)]
    assert len({f.result() for f in futures}) == 2
    workers = executor.worker_threads
    assert len(workers) == 2 and all(t.is_alive() for t in workers)
    executor.close()
    assert not any(t.is_alive() for t in workers)


def test_an_idle_thread_worker_takes_over_runs_waiting_behind_a_long_one() -> None:
    """Work-conserving dispatch: sync runs queued in a busy worker's inbox move to a worker
    that runs out of work, instead of waiting for the long run."""
    release = threading.Event()
    started = threading.Event()

    def long(_: object) -> str:
        started.set()
        release.wait()
        return "released"

    with ThreadExecutor(max_workers=2) as ex:
        held = ex.submit({"graph": long})
        started.wait()
        short = [ex.submit({"graph": workloads.square, "input": i}) for i in range(8)]
        # about half went to the busy worker's inbox; the test lets the long run go only after
        _, not_done = cf.wait(short, timeout=60)
        assert not not_done
        assert [f.result() for f in short] == [i * i for i in range(8)]
        assert not held.done()
        release.set()
        assert held.result() == "released"


def test_a_sync_callers_queued_run_is_cancelled_by_close_cancel_pending() -> None:
    """A sync ``run()`` on the thread tier waits on a Waiter, not a future: a run still queued
    behind a long one is cancelled by ``close(cancel_pending=True)`` all the same - its caller
    gets CancelledError and the run never starts - while the running one finishes."""
    release, started = threading.Event(), threading.Event()
    ran: list[object] = []

    def long(_: object) -> str:
        started.set()
        assert release.wait(60)
        return "released"

    def queued(value: object) -> object:
        ran.append(value)
        return value

    class Watched(ThreadExecutor):
        posted = threading.Event()

        def _post(self, job: Any) -> None:
            super()._post(job)
            if job.cfg.graph is queued:
                self.posted.set()

    ex = Watched(max_workers=1)
    held = ex.submit({"graph": long})
    assert started.wait(60)
    outcome: dict[str, Any] = {}

    def caller() -> None:
        try:
            outcome["output"] = ex.run({"graph": queued, "input": "queued"})
        except BaseException as exc:
            outcome["error"] = exc

    waiting = threading.Thread(target=caller)
    waiting.start()
    assert Watched.posted.wait(60)
    closer = threading.Thread(target=ex.close, kwargs={"wait": True, "cancel_pending": True})
    closer.start()
    waiting.join(60)  # returns before the long run is released: close cancelled the wait
    assert not waiting.is_alive()
    assert isinstance(outcome.get("error"), cf.CancelledError), outcome
    assert not held.done()
    release.set()
    closer.join(60)
    assert not closer.is_alive()
    assert held.result(timeout=0) == "released"
    assert ran == []


def test_waiter_settles_once_and_cancels_only_before_it_runs() -> None:
    from subiso._futures import Waiter

    done = Waiter()
    assert done.set_running_or_notify_cancel() is True
    assert done.cancel() is False  # running: too late
    done.set_result("value")
    assert done.result() == "value" and done.result() == "value"
    with pytest.raises(cf.InvalidStateError):
        done.set_exception(RuntimeError("twice"))

    failed = Waiter()
    error = KeyError("the run's own")
    assert failed.set_running_or_notify_cancel() is True
    failed.set_exception(error)
    with pytest.raises(KeyError) as raised:
        failed.result()
    assert raised.value is error

    cancelled = Waiter()
    assert cancelled.cancel() is True and cancelled.cancel() is True
    assert cancelled.set_running_or_notify_cancel() is False  # the worker skips it
    with pytest.raises(cf.InvalidStateError):
        cancelled.set_result("late")
    with pytest.raises(cf.CancelledError):
        cancelled.result()
