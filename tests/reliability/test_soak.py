"""Soak: 2,000 mixed runs per tier at concurrency 32, every outcome checked, nothing left behind.

The mix (``harness.mix``) cycles through sync and async graphs, workflow functions, runs with a
``memory`` or SQLite checkpointer and their own ``thread_id``, and runs whose node raises, each
called as ``run``, ``submit`` or ``stream`` from 16 threads and as ``arun`` or ``astream`` from
16 tasks on one event loop. Every job must resolve exactly once (a ``submit`` future's
done-callbacks run once) with its own exact output or exception; after ``close()`` the threads,
file descriptors, descendant processes and subinterpreters are those of before.

The baseline is taken after a first executor of the tier ran the same mix and was closed, so
what the process keeps for its life once a tier is used - the forkserver process and its pipe
(``multiprocessing``), imported modules, the subinterpreter probe cache - is in it. ``benchmarks/
soak.py`` is the long version, with RSS slopes.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

import subiso
from tests.reliability import harness
from tests.reliability.conftest import ALL_TIERS, skip_unless_runs_here

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RUNS = 2000
CONCURRENCY = 32


def _options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 4}


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_soak(tier: str, tmp_path: Path) -> None:
    skip_unless_runs_here(tier)
    db = f"sqlite:///{tmp_path / 'soak.db'}"
    with subiso.get_executor(tier, **_options(tier)) as warm:
        warmed = harness.drive(warm, harness.mix(len(harness.KINDS) * 2, db), concurrency=8)
        assert warmed.lost() == warmed.wrong() == [], warmed.wrong()
    del warmed
    gc.collect()
    before = harness.snapshot()

    executor = subiso.get_executor(tier, **_options(tier))
    soak = harness.drive(executor, harness.mix(RUNS, db), concurrency=CONCURRENCY, sample_every=100)
    executor.close()

    assert soak.lost() == [], f"{len(soak.lost())} runs never resolved: {soak.lost()[:10]}"
    assert soak.duplicated() == [], f"resolved more than once: {soak.duplicated()[:10]}"
    assert soak.wrong() == [], f"{len(soak.wrong())} wrong outcomes, e.g. {soak.wrong()[:3]}"
    summary = soak.summary()
    # The caller drops the executor and what it holds of the runs (outcomes, tracebacks) before
    # counting: what is left then is held by nobody's reference. test_close_exit checks that
    # close() itself releases the workers' fds while the caller still holds all of these.
    del soak, executor
    gc.collect()
    found = harness.leaks(before)
    harness.report("soak", tier=tier, **summary, leaks=harness.leak_count(found))
    assert found == {"threads": [], "fds": [], "processes": [], "interpreters": []}
