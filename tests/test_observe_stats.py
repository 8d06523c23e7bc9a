"""``Executor.stats()``: a typed snapshot on every tier (runs pending, running, completed by
outcome, workers, restarts, loop lag), and the same numbers as OpenTelemetry instruments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import subiso
from subiso.observe.metrics import ExecutorStats
from tests.test_process_faults import Hold

ALL_TIERS = ["inline", "context", "thread", "subinterpreter", "process"]
SYNC = {"graph": "tests.workloads:sync_graph", "input": {"x": 1}}
FAILING = {"graph": "tests.observe_workloads:failing_graph", "input": {"x": 1}}
P = "tests.process_workloads"


def options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 1}


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_stats_count_runs_by_outcome_on_every_tier(tier: str, make_executor: Any) -> None:
    ex = make_executor(tier, **options(tier))
    for _ in range(3):
        ex.run(SYNC)
    with pytest.raises(ValueError):
        ex.run(FAILING)
    memory = {**SYNC, "checkpointer": "memory", "config": {"configurable": {"thread_id": "t"}}}
    ex.run(memory)
    ex.get_state(memory)  # a state operation is not a run
    stats = ex.stats()
    assert isinstance(stats, ExecutorStats) and stats.tier == tier
    assert stats.runs_completed == {
        "done": 4,
        "interrupted": 0,
        "error": 1,
        "timeout": 0,
        "crashed": 0,
        "cancelled": 0,
    }
    assert (stats.runs_pending, stats.runs_running) == (0, 0)
    assert stats.workers_max == (0 if tier in ("inline", "context") else 1)
    assert msgspec.json.decode(msgspec.json.encode(stats), type=ExecutorStats) == stats


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_stats_tell_running_from_pending(tier: str, make_executor: Any, tmp_path: Path) -> None:
    hold = Hold(tmp_path, tier)
    ex = make_executor(tier, max_workers=1)
    held = ex.submit({"graph": f"{P}:hold", "input": hold.paths})
    hold.wait_started()
    behind = ex.submit(SYNC)  # the only worker is busy: it waits
    stats = ex.stats()
    assert (stats.runs_running, stats.runs_pending) == (1, 1)
    assert stats.workers_active == 1 and stats.runs_per_worker == [2]
    hold.let_go()
    assert held.result() == "released" and behind.result() == {"x": 1}
    stats = ex.stats()
    assert (stats.runs_running, stats.runs_pending, stats.runs_completed["done"]) == (0, 0, 2)


def test_a_replaced_worker_counts_as_a_restart() -> None:
    with subiso.ProcessExecutor(max_workers=1) as ex:
        with pytest.raises(subiso.WorkerCrashed):
            ex.run({"graph": f"{P}:exit_graph", "input": {"x": 1}})
        assert ex.run(SYNC) == {"x": 1}  # the pool lives on
        stats = ex.stats()
    assert stats.worker_restarts == 1 and stats.runs_completed["crashed"] == 1


def test_the_instruments_carry_the_same_numbers(make_executor: Any, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk.metrics")
    from tests.observe_helpers import metric_value, otel_sdk

    otel_sdk()

    def snapshot() -> dict[str, float]:
        return {
            "done": metric_value("subiso.runs.completed", tier="thread", outcome="done"),
            "error": metric_value("subiso.runs.completed", tier="thread", outcome="error"),
            "duration": metric_value("subiso.run.duration", tier="thread", outcome="done"),
            "queue_wait": metric_value("subiso.run.queue_wait", tier="thread"),
            "running": metric_value("subiso.runs.running", tier="thread"),
            "pending": metric_value("subiso.runs.pending", tier="thread"),
        }

    ex = make_executor("thread", max_workers=1)
    before = snapshot()
    for _ in range(3):
        ex.run(SYNC)
    with pytest.raises(ValueError):
        ex.run(FAILING)
    hold = Hold(tmp_path, "otel")
    held = ex.submit({"graph": f"{P}:hold", "input": hold.paths})
    hold.wait_started()
    behind = ex.submit(SYNC)
    during = snapshot()
    hold.let_go()
    held.result(), behind.result()
    after = snapshot()
    assert during["done"] - before["done"] == 3 and during["error"] - before["error"] == 1
    assert during["duration"] - before["duration"] == 3  # one histogram point per run
    assert during["queue_wait"] - before["queue_wait"] == 3
    assert (during["running"], during["pending"]) == (1, 1)
    assert (after["running"], after["pending"]) == (0, 0)
    assert after["done"] - before["done"] == 5
