"""``benchmarks/bench_tiers.py`` says on stderr what it is timing, and its defaults fit in about
a minute on 2 cores. Tiny runs (one round, one tier): nothing here asserts on timing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(120)


def bench_tiers(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_tiers.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_bench_tiers_progress_names_the_workload_style_and_how_far() -> None:
    proc = bench_tiers("--runs", "4", "--rounds", "2", "--workloads", "sync 3-node,async 3-node")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()  # not a terminal: one line per round, none rewritten
    assert "[1/4] sync 3-node via run, 4 runs/round: warm-up 1/1: " in lines[0], lines
    assert (
        "[4/4] async 3-node via arun, 4 runs/round: round 2/2: "
        "context, thread, (stdlib thread hop), inline"
    ) in lines, lines
    rounds = [line for line in lines if ": round " in line]
    assert len(rounds) == 4 * 2 and len(set(rounds)) == len(rounds)  # none repeats


def test_bench_tiers_default_demo_rounds_fit_the_minute() -> None:
    """The demo's runs take ~50 ms: at 50 a round (the old default) its two call styles alone
    took ~150 s of a 177 s default run; 10 a round keep the whole default run near a minute."""
    proc = bench_tiers("--rounds", "1", "--workloads", "demo", "--tiers", "inline")
    assert proc.returncode == 0, proc.stderr
    assert "[1/2] demo via run, 10 runs/round: round 1/1: inline" in proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("demo ")]
    expected = [["demo", "run", "inline", "10"], ["demo", "arun", "inline", "10"]]
    assert [row[:4] for row in rows] == expected, proc.stdout
