"""The caller's trace continues into the nodes on every tier: OpenTelemetry (W3C context) and
LangSmith (run tree headers), captured at submit and restored in the worker; a caller with
no trace carries none; callback handlers are refused where they cannot cross."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

import subiso
from tests.conftest import ROOT, needs_backend

otel = pytest.importorskip("opentelemetry.sdk.trace")

from tests.observe_helpers import otel_sdk  # noqa: E402

OW = "tests.observe_workloads"
ALL_TIERS = ["inline", "context", "thread", "subinterpreter", "process"]
INPUT = {"x": 1}


def options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 1}


def caller_ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def via(ex: Any, method: str, graph: str) -> dict[str, Any]:
    """What the node saw, run through ``method``."""
    cfg = {"graph": f"{OW}:{graph}", "input": INPUT}
    if method == "run":
        return ex.run(cfg)["seen"]  # type: ignore[no-any-return]
    if method == "submit":
        return ex.submit(cfg).result()["seen"]  # type: ignore[no-any-return]
    if method == "map":
        return next(iter(ex.map([cfg])))["seen"]  # type: ignore[no-any-return]
    if method == "stream":
        chunks = list(ex.stream(cfg, stream_mode="values"))
        return chunks[-1]["seen"]  # type: ignore[no-any-return]
    if method == "on_event":
        events: list[Any] = []
        ex.run(cfg, on_event=events.append)
        return events[-1][next(iter(events[-1]))]["seen"]  # type: ignore[no-any-return]

    async def in_a_loop() -> dict[str, Any]:
        if method == "arun":
            return (await ex.arun(cfg))["seen"]  # type: ignore[no-any-return]
        chunks = [chunk async for chunk in ex.astream(cfg, stream_mode="values")]
        return chunks[-1]["seen"]  # type: ignore[no-any-return]

    # the caller's span is current in the task asyncio.run makes (a copy of this context)
    return asyncio.run(in_a_loop())


@pytest.mark.parametrize("tier", ALL_TIERS)
@pytest.mark.parametrize("graph", ["trace_graph", "atrace_graph"])
def test_a_node_sees_the_callers_span_on_every_tier(
    tier: str, graph: str, make_executor: Any
) -> None:
    tracer = otel_sdk()["tracer"]
    ex = make_executor(tier, **options(tier))
    with tracer.start_as_current_span(f"caller-{tier}") as span:
        seen = via(ex, "run", graph)
    trace_id, span_id = caller_ids(span)
    assert seen["otel_trace_id"] == trace_id
    assert seen["otel_span_id"] == span_id  # the caller's span is the node's parent
    in_a_process = tier == "process" or getattr(ex, "fallback_tier", None) == "process"
    assert (seen["pid"] != os.getpid()) == in_a_process


@pytest.mark.parametrize("tier", ["thread", "process"])
@pytest.mark.parametrize("method", ["submit", "map", "stream", "on_event", "arun", "astream"])
def test_every_entry_point_carries_the_trace(tier: str, method: str, make_executor: Any) -> None:
    tracer = otel_sdk()["tracer"]
    ex = make_executor(tier, **options(tier))
    with tracer.start_as_current_span(f"{method}-{tier}") as span:
        seen = via(ex, method, "atrace_graph")
    assert seen["otel_trace_id"] == caller_ids(span)[0]


@pytest.mark.parametrize("tier", ["inline", "thread", "process"])
def test_a_caller_without_a_trace_carries_none(tier: str, make_executor: Any) -> None:
    otel_sdk()
    ex = make_executor(tier, **options(tier))
    seen = via(ex, "run", "trace_graph")
    assert seen["otel_trace_id"] is None and seen["ls_trace_id"] is None


def test_a_span_a_node_starts_is_a_child_of_the_callers(make_executor: Any) -> None:
    sdk = otel_sdk()
    ex = make_executor("thread", max_workers=1)
    with sdk["tracer"].start_as_current_span("the-caller") as span:
        ex.run({"graph": "tests.observe_workloads:span_graph", "input": INPUT})
    node_span = next(s for s in sdk["spans"].get_finished_spans() if s.name == "node-span")
    assert node_span.parent is not None
    assert node_span.parent.span_id == span.get_span_context().span_id
    assert node_span.context.trace_id == span.get_span_context().trace_id


@needs_backend
def test_offloaded_and_whole_functions_see_the_trace_inside_their_interpreter(
    make_executor: Any,
) -> None:
    tracer = otel_sdk()["tracer"]
    ex = make_executor("subinterpreter", max_workers=1)
    with tracer.start_as_current_span("caller") as span:
        hybrid = ex.run({"graph": f"{OW}:offloading_graph", "input": {"x": 2}})
        full = ex.execute({"graph": "tests.isolation_targets.logging_fn:workflow", "input": 1})
    trace_id = caller_ids(span)[0]
    assert hybrid["offloaded"]["otel_trace_id"] == trace_id
    assert full.report.mode == "full" and full.output["otel_trace_id"] == trace_id


# -- LangSmith ---------------------------------------------------------------------------------
def test_langsmith_runs_of_every_tier_join_the_callers_trace(tmp_path: Any) -> None:
    """A caller holding a LangSmith trace (tracing_context + trace) runs the graph on every
    tier; the node's run tree belongs to the caller's trace, under the caller's run, and what
    LangSmith's client posts (to a local sink, from this process and the worker processes)
    carries the caller's trace id."""
    from tests.services import langsmith_sink

    with langsmith_sink() as sink:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LANGSMITH_ENDPOINT": sink.url,
            "LANGSMITH_API_KEY": "lsv2-test-key",
        }
        for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "SUBISO_EXECUTOR"):
            env.pop(name, None)
        done = subprocess.run(
            [sys.executable, "-m", "tests.langsmith_probe", *ALL_TIERS],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads(done.stdout)
        # the node's own run ("probe"), posted from wherever the node ran
        wanted = {("probe", r["caller_trace_id"]) for r in results.values()}
        posted = sink.wait_for(wanted)
    for tier, result in results.items():
        seen = result["seen"]
        assert seen["ls_trace_id"] == result["caller_trace_id"], tier
        assert seen["ls_dotted_order"].startswith(result["caller_dotted_order"] + "."), tier
        assert result["untraced"]["ls_trace_id"] is None, tier  # no trace, none carried
        assert ("probe", result["caller_trace_id"]) in posted, tier
    assert results["process"]["seen"]["pid"] != results["process"]["caller_pid"]


# -- callbacks ---------------------------------------------------------------------------------
def test_callback_handlers_are_refused_before_a_process_starts() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    ex = subiso.ProcessExecutor(max_workers=1)
    cfg = {
        "graph": "tests.workloads:sync_graph",
        "input": {"x": 1},
        "config": {"callbacks": [BaseCallbackHandler()]},
    }
    with ex, pytest.raises(subiso.ConfigError, match=r"config\.callbacks") as info:
        ex.run(cfg)
    assert "trace is carried" in str(info.value) and "on_event" in str(info.value)
    assert ex.worker_pids() == []  # nothing was sent: no worker was even started


def test_callback_handlers_run_on_the_thread_tier(make_executor: Any) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Starts(BaseCallbackHandler):
        def __init__(self) -> None:
            self.chains = 0

        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            self.chains += 1

    handler = Starts()
    ex = make_executor("thread", max_workers=1)
    cfg = {"graph": "tests.workloads:sync_graph", "input": {"x": 1}}
    ex.run({**cfg, "config": {"callbacks": [handler]}})
    assert handler.chains > 0


def test_tracing_libraries_are_not_imported_for_a_caller_that_has_none(tmp_path: Any) -> None:
    """A caller that never imported langsmith or opentelemetry (and has no opentelemetry-api
    installed) runs on every tier without subiso importing either."""
    script = """
import importlib.abc, json, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Missing())
import subiso
out = {}
for tier in ["inline", "context", "thread", "process"]:
    with subiso.get_executor(tier) as ex:
        out[tier] = ex.run({"graph": "tests.isolation_targets.workflows:burn", "input": 10})
out["langsmith"] = "langsmith" in sys.modules
out["opentelemetry"] = any(m.startswith("opentelemetry") for m in sys.modules)
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["langsmith"] is False and out["opentelemetry"] is False
    assert len({out[t] for t in ("inline", "context", "thread", "process")}) == 1


@pytest.mark.parametrize("tier", ["inline", "context", "thread", "subinterpreter"])
@pytest.mark.parametrize("timeout", [None, 30])
def test_a_graph_with_its_own_sync_saver_keeps_the_run_and_the_trace(
    tier: str, timeout: float | None, make_executor: Any
) -> None:
    """A graph compiled with its own SqliteSaver runs through its sync methods on a thread of
    the worker's loop (``runtime/own_savers``; with a timeout, or streamed): that thread is
    still the run's - its records carry the run id and the node is in the caller's trace."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from tests.observe_workloads import trace_graph

    tracer = otel_sdk()["tracer"]
    saver = SqliteSaver(sqlite3.connect(":memory:", check_same_thread=False))
    graph = trace_graph.builder.compile(checkpointer=saver)
    ex = make_executor(tier, **options(tier))
    if getattr(ex, "fallback_tier", None) == "process":
        pytest.skip("no subinterpreters here: a graph object cannot cross to the process tier")
    cfg = subiso.GraphConfig(
        graph=graph,
        input=INPUT,
        config={"configurable": {"thread_id": f"own-{tier}-{timeout}"}},
        timeout=timeout,
    )
    with tracer.start_as_current_span(f"own-saver-{tier}") as span:
        result = ex.execute(cfg)
        streamed = list(ex.stream(cfg, stream_mode="values"))
    seen = result.output["seen"]
    assert seen["run_id"] == result.report.run_id
    assert seen["otel_trace_id"] == caller_ids(span)[0]
    assert streamed[-1]["seen"]["otel_trace_id"] == caller_ids(span)[0]
    assert streamed[-1]["seen"]["run_id"] not in (None, result.report.run_id)
    assert len(list(saver.list({"configurable": {"thread_id": f"own-{tier}-{timeout}"}}))) > 0
