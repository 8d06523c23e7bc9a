"""Loop health: a worker loop blocked past its threshold is reported while it is blocked (run,
node, stack), its lag shows in stats; tasks a run leaves pending are reported with the run's
id, on worker loops and on a caller's loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.observe_helpers import recording
from tests.observe_workloads import UNBLOCK

OW = "tests.observe_workloads"
THRESHOLD = 0.2


def blocked(record: logging.LogRecord) -> bool:
    return "has been blocked" in record.getMessage()


@pytest.mark.parametrize("tier", ["thread", "subinterpreter", "process"])
def test_a_blocked_worker_loop_is_reported_while_it_is_blocked(
    tier: str, make_executor: Any, tmp_path: Path
) -> None:
    """The node blocks its loop until the warning exists: it cannot return before the
    watchdog has seen the loop blocked (so the test cannot pass without the feature)."""
    marker = tmp_path / "warned"
    UNBLOCK.clear()
    ex = make_executor(tier, max_workers=1, loop_block_threshold=THRESHOLD)
    with recording(("subiso", logging.INFO)) as records:

        def on_record(record: logging.LogRecord) -> None:
            if blocked(record):
                marker.touch()  # a process worker's node watches for this file
                UNBLOCK.set()

        records.on_record = on_record
        result = ex.execute({"graph": f"{OW}:blocking_graph", "input": {"hold": str(marker)}})
        warning = records.wait_for(blocked)
        recovered = records.wait_for(lambda r: "ran again" in r.getMessage())
    assert marker.exists()
    assert warning.levelno == logging.WARNING and warning.name == f"subiso.{result.report.tier}"
    assert warning.run_id == result.report.run_id  # type: ignore[attr-defined]
    assert warning.node == "blocker"  # type: ignore[attr-defined]
    assert "blocks_loop" in warning.getMessage()  # the blocked thread's stack
    assert warning.blocked_s >= THRESHOLD  # type: ignore[attr-defined]
    assert recovered.levelno == logging.INFO
    stats = ex.stats()
    assert stats.loop_lag_max_s >= THRESHOLD / 2  # the probe measured the block afterwards


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_a_task_a_run_leaves_behind_is_reported_with_the_run(
    tier: str, make_executor: Any, paused_gc: None
) -> None:
    ex = make_executor(tier, max_workers=1)
    with recording() as records:
        report = ex.execute({"graph": f"{OW}:leaky_graph", "input": {"x": 1}}).report
        left = records.wait_for(lambda r: "left 1 task(s)" in r.getMessage())
    assert left.levelno == logging.WARNING and left.name == f"subiso.{tier}"
    assert left.run_id == report.run_id  # type: ignore[attr-defined]
    assert "forgotten-by-the-node" in left.getMessage()


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="a caller's loop tells a task's run from 3.12 on"
)
@pytest.mark.parametrize("tier", ["inline", "context"])
def test_a_task_left_on_the_callers_loop_is_reported(
    tier: str, make_executor: Any, paused_gc: None
) -> None:
    """The contamination alert: inline's arun shares the caller's loop, and what a run leaves
    there stays (reported); context's arun cancels it (reported as cancelled)."""
    ex = make_executor(tier)

    async def host() -> tuple[Any, logging.LogRecord]:
        with recording() as records:
            report = (await ex.aexecute({"graph": f"{OW}:leaky_graph", "input": {"x": 1}})).report
            left = await asyncio.to_thread(
                records.wait_for, lambda r: "left 1 task(s)" in r.getMessage()
            )
        return report, left

    report, left = asyncio.run(host())
    assert left.run_id == report.run_id  # type: ignore[attr-defined]
    assert "the caller's event loop" in left.getMessage()
    assert ("cancelling them" in left.getMessage()) == (tier == "context")
