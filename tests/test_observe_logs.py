"""One log stream, tagged by run: every tier logs each run's start and end on its
``subiso.<tier>`` logger, every record a run emits carries its ``run_id``, and records made in
worker processes and interpreters reach the host's handlers (never the worker's stderr)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest

import subiso
from tests.conftest import ROOT, needs_backend
from tests.observe_helpers import recording
from tests.observe_workloads import GATES

OW = "tests.observe_workloads"
ALL_TIERS = ["inline", "context", "thread", "subinterpreter", "process"]


def tier_options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 1}


def run_of(record: logging.LogRecord) -> str | None:
    return getattr(record, "run_id", None)


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_each_run_is_logged_on_its_tier_logger_with_its_run_id(
    tier: str, make_executor: Any
) -> None:
    ex = make_executor(tier, **tier_options(tier))
    with recording(("subiso", logging.DEBUG)) as records:
        result = ex.execute({"graph": f"{OW}:chatty_graph", "input": {"x": 1}})
        run_id = result.report.run_id
        ours = records.matching(lambda r: run_of(r) == run_id)
    uuid.UUID(run_id)  # a UUID, as LangGraph's own run ids
    messages = {r.name: [] for r in ours}
    for r in ours:
        messages[r.name].append(r)
    ran = result.report.tier  # the subinterpreter tier's fallback reports where it ran
    started = [r for r in messages.get(f"subiso.{ran}", []) if "started" in r.getMessage()]
    done = [r for r in messages.get(f"subiso.{ran}", []) if "done" in r.getMessage()]
    assert len(started) == 1 and started[0].levelno == logging.DEBUG
    assert len(done) == 1 and done[0].levelno == logging.INFO
    assert done[0].outcome == "done" and done[0].duration_s >= 0  # type: ignore[attr-defined]
    assert done[0].tier == ran  # type: ignore[attr-defined]
    node = messages["tests.observe.node"]
    assert [r.getMessage().split(" from ")[0] for r in node] == ["node says hello"]
    assert node[0].flavour == "sync"  # type: ignore[attr-defined]  # the node's own extra
    assert node[0].tier == ran  # type: ignore[attr-defined]
    # the record carries where it was made: a worker process's own pid, or this one
    if result.report.tier == "process":  # the process tier, or subinterpreter's fallback
        assert node[0].process == result.report.pid != os.getpid()
    else:
        assert node[0].process == os.getpid()


def test_an_async_node_on_a_worker_loop_is_tagged(make_executor: Any) -> None:
    ex = make_executor("thread", max_workers=1)
    with recording() as records:
        report = ex.execute({"graph": f"{OW}:achatty_graph", "input": {"x": 1}}).report
        node = records.wait_for(lambda r: r.name == "tests.observe.node")
    assert run_of(node) == report.run_id and node.flavour == "async"  # type: ignore[attr-defined]


def test_a_failed_run_is_logged_with_its_error_and_a_subiso_error_carries_the_run_id(
    make_executor: Any,
) -> None:
    ex = make_executor("process", max_workers=1, prestart=True)
    with recording() as records:
        with pytest.raises(ValueError, match="on purpose"):
            ex.run({"graph": f"{OW}:failing_graph", "input": {"x": 1}})
        failed = records.wait_for(lambda r: getattr(r, "outcome", None) == "error")
        assert failed.levelno == logging.WARNING and failed.name == "subiso.process"
        assert failed.error_type == "builtins.ValueError"  # type: ignore[attr-defined]
        assert "on purpose" in failed.getMessage()
        with pytest.raises(subiso.RunTimeout) as timeout:
            ex.run({"graph": "tests.workloads:hang", "input": 0, "timeout": 0.2})
        timed_out = records.wait_for(lambda r: getattr(r, "outcome", None) == "timeout")
    assert timeout.value.run_id is not None and timeout.value.run_id == run_of(timed_out)


@pytest.mark.parametrize("tier", ["inline", "thread", "process"])
def test_the_callers_run_id_is_the_run_id(tier: str, make_executor: Any) -> None:
    ex = make_executor(tier, **tier_options(tier))
    given = uuid.uuid4()
    report = ex.execute(
        {"graph": "tests.workloads:sync_graph", "input": {"x": 1}, "config": {"run_id": given}}
    ).report
    assert report.run_id == str(given)


def test_a_worker_process_logs_to_the_host_not_to_its_stderr(
    make_executor: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    ex = make_executor("process", max_workers=1)
    with recording() as records:
        ex.run({"graph": f"{OW}:chatty_graph", "input": {"x": 1}})
        assert records.matching(lambda r: r.name == "tests.observe.node")
    ex.close()
    assert "node says hello" not in capfd.readouterr().err


@needs_backend
def test_records_made_inside_interpreters_reach_the_host_tagged_with_their_run(
    make_executor: Any,
) -> None:
    ex = make_executor("subinterpreter", max_workers=1)
    with recording() as records:
        hybrid = ex.execute({"graph": f"{OW}:offloading_graph", "input": {"x": 3}})
        offloaded = records.wait_for(lambda r: r.name == "tests.observe.interp")
        full = ex.execute({"graph": "tests.isolation_targets.logging_fn:workflow", "input": 1})
        whole = records.wait_for(lambda r: "workflow function" in r.getMessage())
    assert hybrid.output["offloaded"]["x"] == 3 and hybrid.report.mode == "hybrid"
    assert run_of(offloaded) == hybrid.report.run_id
    assert offloaded.interpreter_id in hybrid.report.offloaded.interpreter_ids  # type: ignore
    assert full.report.mode == "full"
    assert (
        run_of(whole) == full.report.run_id and whole.interpreter_id == full.report.interpreter_id
    )  # type: ignore[attr-defined]


def test_a_queued_run_reports_its_wait_and_its_times(make_executor: Any) -> None:
    ex = make_executor("thread", max_workers=1)
    gate = GATES.setdefault("queued", threading.Event())
    first = ex.submit_execute({"graph": f"{OW}:wait_at_gate", "input": "queued"})
    second = ex.submit_execute({"graph": "tests.workloads:sync_graph", "input": {"x": 1}})
    try:
        assert not second.done()
    finally:
        gate.set()
    a, b = first.result().report, second.result().report
    assert a.started_at <= a.finished_at <= b.started_at <= b.finished_at
    assert b.queue_wait_s > 0  # it waited for the first to end
    assert a.run_id != b.run_id


def test_an_extra_named_like_a_run_attribute_wins(make_executor: Any) -> None:
    ex = make_executor("thread", max_workers=1)
    with recording() as records:
        ex.run({"graph": f"{OW}:log_with_extra_run_id", "input": 0})
        mine = records.wait_for(lambda r: r.name == "tests.workloads.extra")
    assert mine.run_id == "the node's own"  # type: ignore[attr-defined]


def test_cli_json_logs_carry_the_runs_id(tmp_path: Any) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SUBISO_EXECUTOR", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "subiso",
            "run",
            f"{OW}:chatty_graph",
            "--input",
            '{"x": 1}',
            "-e",
            "process",
            "--json",
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["report"]["run_id"]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("run_id") == run_id]
    loggers = {line["logger"] for line in ours}
    assert {"subiso.process", "tests.observe.node"} <= loggers
    node = next(line for line in ours if line["logger"] == "tests.observe.node")
    assert node["level"] == "WARNING" and node["tier"] == "process" and node["flavour"] == "sync"
    assert node["pid"] == json.loads(done.stdout)["report"]["pid"]  # the worker's
