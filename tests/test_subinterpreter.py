"""SubinterpreterExecutor: full, hybrid and fallback modes, run for real on every Python.

On 3.13 (backport) and 3.14 (stdlib) the pool's interpreters run the work; on 3.10-3.12 the
same tests run through the fallback tier and assert ``mode == "fallback"``. The fallback path
is also exercised on 3.13/3.14 by hiding the backend. Synchronisation is by futures and
cross-interpreter queues only: no sleeps, no timing assertions.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import GraphConfig
from subiso.errors import (
    ConfigError,
    NotIsolatable,
    RunTimeout,
    SerializationError,
    TierUnavailable,
)
from subiso.executors import subinterpreter as si
from subiso.executors.subinterpreter import SubinterpreterExecutor
from subiso.executors.subinterpreter import executor as sub_module
from tests.conftest import (
    BACKEND,
    make_interpreter_queue,
    needs_backend,
    tier_available,
)
from tests.isolation_targets.workflows import WorkflowError

ROOT = Path(__file__).resolve().parents[1]

WF = "tests.isolation_targets.workflows"
HY = "tests.hybrid_workloads"
DEMO = "examples.contract_review.graph:graph"
DEMO_INPUT = {"path": "examples/contract_review/sample_contract.txt"}
BLOCKER = "pydantic_core._pydantic_core"


def expect(mode: str) -> str:
    """The mode a run reports here: ``mode`` with interpreters, "fallback" without."""
    return mode if BACKEND else "fallback"


def cfg(graph: str, value: Any = None, **extra: Any) -> GraphConfig:
    return GraphConfig(graph=graph, input=value, **extra)


def full_text(exc: BaseException) -> str:
    """The traceback as printed, causes included (remote tracebacks ride as ``__cause__``)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@pytest.fixture(scope="module")
def ex() -> Iterator[SubinterpreterExecutor]:
    """One 2-worker executor shared by the module (creating interpreters or, in fallback,
    worker processes per test would dominate the run time)."""
    with SubinterpreterExecutor(max_workers=2) as executor:
        yield executor


@pytest.fixture
def hidden_backend(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make this Python look like one without interpreters; returns the simulated reason."""
    reason = "simulated: no own-GIL subinterpreter API here"
    monkeypatch.setattr(sub_module, "backend", lambda: si.Backend(None, reason))
    return reason


def check_fallback_report(report: Any, tier: str) -> None:
    assert report.mode == "fallback"
    assert report.tier == tier  # the tier that actually ran
    assert report.fallback_reason and f"ran on the {tier} tier" in report.fallback_reason


# -- full mode ---------------------------------------------------------------------------------


def test_full_mode_runs_sync_and_async_workflows_inside_an_interpreter(
    ex: SubinterpreterExecutor,
) -> None:
    sync = ex.execute(cfg(f"{WF}:word_stats", {"text": "one three fifteen"}))
    asyn = ex.execute(cfg(f"{WF}:async_squares", {"xs": [1, 2, 3]}))
    assert sync.output["words"] == 3 and sync.output["longest"] == "fifteen"
    assert asyn.output["squares"] == [1, 4, 9]
    for result in (sync, asyn):
        assert result.report.mode == expect("full")
        if BACKEND:
            assert result.report.tier == "subinterpreter"
            assert result.report.fallback_reason is None
            # the workflow saw the interpreter the report names, one of the pool's
            assert result.output["interp"] == result.report.interpreter_id != 0
            assert result.report.interpreter_id in ex.interpreter_ids
        else:
            check_fallback_report(result.report, ex.fallback_tier or "?")
            assert str(sys.version_info[1]) in (result.report.fallback_reason or "")
    assert ex.mode_for(f"{WF}:word_stats")[0] == expect("full")


# -- hybrid mode -------------------------------------------------------------------------------


def test_hybrid_demo_graph_matches_thread_executor(ex: SubinterpreterExecutor) -> None:
    result = ex.execute(cfg(DEMO, DEMO_INPUT))
    with subiso.ThreadExecutor(max_workers=1) as threads:
        assert result.output == threads.run(cfg(DEMO, DEMO_INPUT))
    assert len(result.output["findings"]) == 70
    assert result.report.mode == expect("hybrid")
    if BACKEND:
        assert result.report.tier == "subinterpreter" and result.report.interpreter_id == 0
        # the reason names what kept the graph out of an interpreter; fallback_reason stays
        # for fallback mode; offloaded says what the @offload node really did
        assert BLOCKER in (result.report.reason or "") and result.report.fallback_reason is None
        assert ex.mode_for(DEMO) == ("hybrid", result.report.reason)
        offloaded = result.report.offloaded
        assert offloaded is not None and offloaded.calls == 1  # split_clauses, once
        assert offloaded.interpreter_ids and 0 not in offloaded.interpreter_ids
        assert set(offloaded.interpreter_ids) <= set(ex.interpreter_ids)
        assert offloaded.interp_s > 0 and offloaded.transfer_s >= 0


def test_offloaded_nodes_execute_in_pool_interpreters(ex: SubinterpreterExecutor) -> None:
    async_path = ex.execute(cfg(f"{HY}:where_graph", {"x": 1}))  # ainvoke on the worker loop
    sync_path = ex.execute(cfg(f"{HY}:sync_where_graph", {"x": 1}))  # graph.invoke fast path
    assert async_path.output["x"] == 4 and sync_path.output["x"] == 2
    assert async_path.output["host_interp"] == sync_path.output["host_interp"] == 0
    seen = [
        async_path.output["sync_interp"],  # imported by module
        async_path.output["async_interp"],  # coroutine on the interpreter's loop
        async_path.output["shipped_interp"],  # self-contained, shipped as code
        sync_path.output["sync_interp"],
    ]
    if BACKEND:
        assert 0 not in seen and set(seen) <= set(ex.interpreter_ids)
        assert async_path.report.mode == sync_path.report.mode == "hybrid"
    else:
        assert seen == [0, 0, 0, 0]  # no interpreters: @offload runs in place
        assert async_path.report.mode == "fallback"


def test_eight_concurrent_runs(ex: SubinterpreterExecutor) -> None:
    async def host() -> list[Any]:
        before = asyncio.all_tasks()
        runs = [ex.aexecute(cfg(f"{HY}:where_graph", {"x": i})) for i in range(6)]
        runs += [ex.aexecute(cfg(f"{WF}:word_stats", {"text": "a " * i})) for i in (1, 2)]
        results = await asyncio.gather(*runs)
        assert asyncio.all_tasks() == before
        return results

    results = subiso_run(host)
    for i, result in enumerate(results[:6]):
        assert result.output["x"] == (i + 1) * 2
        assert result.report.mode == expect("hybrid")
    assert [r.output["words"] for r in results[6:]] == [1, 2]
    assert {r.report.mode for r in results[6:]} == {expect("full")}


@needs_backend
def test_offloaded_calls_of_concurrent_runs_overlap(ex: SubinterpreterExecutor) -> None:
    """Two runs' offloaded nodes meet mid-call through queues: both were in flight at once,
    in two interpreters (one after the other, the first would fail with QueueEmpty)."""
    q_a, q_b = make_interpreter_queue(), make_interpreter_queue()
    first = ex.submit(cfg(f"{HY}:meet_graph", {"name": "a", "inbox": q_a.id, "outbox": q_b.id}))
    second = ex.submit(cfg(f"{HY}:meet_graph", {"name": "b", "inbox": q_b.id, "outbox": q_a.id}))
    out_a, out_b = first.result(), second.result()
    assert (out_a["peer"], out_b["peer"]) == ("b", "a")
    assert out_a["interp"] != out_b["interp"] and 0 not in (out_a["interp"], out_b["interp"])


# -- failures --------------------------------------------------------------------------------


def test_errors_reraise_with_type_and_traceback(ex: SubinterpreterExecutor) -> None:
    with pytest.raises(WorkflowError, match="workflow failed on 7") as full:
        ex.run(cfg(f"{WF}:fail_workflow", 7))
    assert "in fail_workflow" in full_text(full.value)
    with pytest.raises(WorkflowError, match="offloaded node failed at x=2") as hybrid:
        ex.run(cfg(f"{HY}:error_graph", {"x": 1}))
    assert "in explode" in full_text(hybrid.value)
    with pytest.raises(ConfigError, match="unknown module"):
        ex.run(cfg("tests.no_such_module:graph"))
    assert ex.run(cfg(f"{WF}:word_stats", {"text": "still works"}))["words"] == 2


def test_timeouts_raise_run_timeout_and_free_the_worker(ex: SubinterpreterExecutor) -> None:
    with pytest.raises(RunTimeout):
        ex.run(cfg(f"{WF}:never_ends", timeout=0.3))
    with pytest.raises(RunTimeout):
        ex.run(cfg(f"{HY}:stall_graph", {}, timeout=0.3))
    # the stalled coroutines were cancelled inside their interpreters: both workers serve again
    outputs = [ex.submit(cfg(f"{WF}:async_squares", {"xs": [i]})) for i in range(4)]
    assert [f.result()["squares"] for f in outputs] == [[0], [1], [4], [9]]


@pytest.mark.skipif(
    not BACKEND,
    reason=f"{BACKEND.reason}: the fallback tier runs @offload nodes in place, so nothing "
    "crosses an interpreter boundary to refuse",
)
def test_unencodable_payloads_raise_serialization_error(ex: SubinterpreterExecutor) -> None:
    with pytest.raises(SerializationError, match=r'args\[0\]\["blob"\]'):
        ex.run(cfg(f"{WF}:word_stats", {"text": "x", "blob": object()}))
    with pytest.raises(SerializationError, match="result"):
        ex.run(cfg(f"{WF}:returns_object"))
    with pytest.raises(SerializationError, match=r'args\[0\]\["items"\]\[2\]'):
        ex.run(cfg(f"{HY}:payload_graph", {}))
    assert ex.run(cfg(f"{WF}:word_stats", {"text": "fine"}))["words"] == 1


def test_module_that_blocks_isolation(ex: SubinterpreterExecutor) -> None:
    """A non-self-contained offloaded function in a langgraph-importing module: NotIsolatable
    (naming the blocking module and global) with strict=True; in place, reported, otherwise."""
    if BACKEND:
        with pytest.raises(NotIsolatable, match=rf"{BLOCKER}.*'SCALE'"):
            ex.run(cfg(f"{HY}:strict_graph", {"x": 2}))
    else:
        assert ex.run(cfg(f"{HY}:strict_graph", {"x": 2})) == {"x": 20}
    result = ex.execute(cfg(f"{HY}:lenient_graph", {"x": 2}))
    assert result.output["lenient"] == 20 and result.output["x"] == 3
    reason = result.report.reason or ""
    if BACKEND:
        assert result.report.mode == "hybrid" and result.output["sync_interp"] != 0
        assert "ran in place" in reason and f"{HY}:lenient_scaled" in reason and BLOCKER in reason
    else:
        assert result.report.mode == "fallback" and "ran in place" not in reason


# -- fallback ----------------------------------------------------------------------------------


def test_fallback_runs_on_the_next_tier(hidden_backend: str, thread_guard: Any) -> None:
    with SubinterpreterExecutor(max_workers=2, fallback=["thread"]) as executor:
        assert executor.fallback_tier == "thread" and executor.pool is None
        full = executor.execute(cfg(f"{WF}:word_stats", {"text": "a b"}))
        graph = executor.execute(cfg(f"{HY}:where_graph", {"x": 1}))
    for result in (full, graph):
        check_fallback_report(result.report, "thread")
        assert hidden_backend in (result.report.fallback_reason or "")
    assert full.output["interp"] == 0 and graph.output["sync_interp"] == 0


def test_default_fallback_prefers_process(thread_guard: Any, monkeypatch: Any) -> None:
    """Real on 3.10-3.12; simulated (backend hidden) where interpreters exist."""
    if BACKEND:
        monkeypatch.setattr(sub_module, "backend", lambda: si.Backend(None, "Python 3.12 sim"))
    with SubinterpreterExecutor(max_workers=1) as executor:
        expected = "process" if tier_available("process") else "thread"
        assert executor.fallback_tier == expected
        result = executor.execute(cfg(f"{WF}:word_stats", {"text": "a b c"}))
    check_fallback_report(result.report, expected)
    assert result.output["words"] == 3
    assert "3.1" in (result.report.fallback_reason or "")


def test_fallback_skips_a_tier_that_cannot_start(hidden_backend: str, monkeypatch: Any) -> None:
    from subiso import executors

    real = executors.tier_class

    def tier_class(name: str) -> Any:
        if name == "process":
            raise ImportError("process tier missing in this build")
        return real(name)

    monkeypatch.setattr(executors, "tier_class", tier_class)
    with SubinterpreterExecutor(max_workers=1) as executor:
        assert executor.fallback_tier == "thread"
        assert "process tier unavailable" in (executor.fallback_reason or "")


def test_no_fallback_raises_tier_unavailable(monkeypatch: Any) -> None:
    if BACKEND:
        monkeypatch.setattr(sub_module, "backend", lambda: si.Backend(None, "no API (sim)"))
    reason = sub_module.backend().reason
    with pytest.raises(TierUnavailable, match="fallback=") as info:
        SubinterpreterExecutor(fallback=[])
    assert reason in str(info.value)


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown tier 'gpu'"):
        SubinterpreterExecutor(fallback=["gpu"])
    with pytest.raises(ConfigError, match="cannot be a fallback"):
        SubinterpreterExecutor(fallback=["subinterpreter"])
    with pytest.raises(ConfigError, match="max_workers"):
        SubinterpreterExecutor(max_workers=0)
    with pytest.raises(ConfigError, match="max_tasks_per_worker"):
        SubinterpreterExecutor(max_tasks_per_worker=0)


# -- lifecycle -------------------------------------------------------------------------------


@needs_backend
def test_max_tasks_per_worker_recycles_interpreters(thread_guard: Any) -> None:
    with SubinterpreterExecutor(max_workers=1, max_tasks_per_worker=2) as executor:
        ids = [executor.run(cfg(f"{WF}:word_stats", {"text": "x"}))["interp"] for _ in range(3)]
    assert ids[0] == ids[1] != ids[2]


def test_get_executor_by_name() -> None:
    with subiso.get_executor("subinterpreter", max_workers=1, fallback=["thread"]) as executor:
        assert isinstance(executor, SubinterpreterExecutor)
        assert executor.run(cfg(f"{WF}:word_stats", {"text": "x y"}))["words"] == 2


def subiso_run(coro_fn: Callable[[], Any]) -> Any:
    """The test's own host loop."""
    return asyncio.run(coro_fn())


MAIN_SCRIPT = """
import sys
import subiso

G = 10

def wf(x):
    return x * 2

async def awf(x):
    return x + 1

def wf_global(x):
    return x + G

if __name__ == "__main__":
    tier = sys.argv[1]
    options = {} if tier in ("inline", "context") else {"max_workers": 2}
    with subiso.get_executor(tier, **options) as ex:
        print([ex.run({"graph": f"__main__:{n}", "input": 1}) for n in ("wf", "awf", "wf_global")])
"""


@pytest.mark.parametrize("tier", ["inline", "context", "thread", "subinterpreter", "process"])
def test_main_module_targets_run_alike_on_every_tier(tier: str, tmp_path: Path) -> None:
    """``"__main__:wf"`` names the caller's script; a pool interpreter's own __main__ is not
    it, so the subinterpreter tier ships a self-contained function's code (or runs it on a
    host thread) instead of failing with AttributeError."""
    script = tmp_path / "script.py"
    script.write_text(MAIN_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(script), tier],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[2, 2, 11]"


SITE_WARNING = "Unexpected value in sys."
RELATIVE_PATH_SCRIPT = """
import subiso

if __name__ == "__main__":
    with subiso.SubinterpreterExecutor(max_workers=2, fallback=[]) as ex:
        result = ex.execute({"graph": "tests.isolation_targets.workflows:burn", "input": 7})
        print(result.output, result.report.mode)
"""


@needs_backend
@pytest.mark.parametrize("launch", ["venv-relative", "dot-dot"])
def test_python_started_by_a_relative_path_prints_no_sys_prefix_warning(
    launch: str, tmp_path: Path
) -> None:
    """The venv's python started as ``bin/python`` (from the venv) or ``../venv/bin/python``:
    the pool's interpreters print no ``RuntimeWarning: Unexpected value in sys.prefix``.

    CPython 3.14 itself prints that pair at start-up for a path with ``..`` in it, and every
    subinterpreter repeats it: python/cpython#156495 (``site`` compares the unnormalized
    ``sys.prefix`` from getpath with a normalized one). Subinterpreters take both values from
    the process's start-up configuration, which Python code cannot change (``sys.prefix =``
    and ``PyConfig_Set`` do not reach new interpreters), so subiso cannot fix them: where the
    bare interpreter warns too, this is an expected failure naming that bug.
    """
    exe = Path(sys.executable)
    cwd = exe.parent.parent if launch == "venv-relative" else tmp_path.resolve()
    try:
        command = os.path.relpath(exe, cwd)
    except ValueError:  # another drive (Windows)
        pytest.skip("no relative path from here to the interpreter")
    assert not os.path.isabs(command) and (launch == "venv-relative") != command.startswith("..")
    script = tmp_path / "relative_path_run.py"
    script.write_text(RELATIVE_PATH_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )

    bare = run("-c", "pass")
    assert bare.returncode == 0, bare.stderr
    if SITE_WARNING in bare.stderr:
        pytest.xfail(
            f"this CPython warns at start-up for {command} (python/cpython#156495); its "
            "subinterpreters repeat it from the start-up configuration"
        )
    proc = run(str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["14", "full"], proc.stdout + proc.stderr
    assert SITE_WARNING not in proc.stderr, proc.stderr
