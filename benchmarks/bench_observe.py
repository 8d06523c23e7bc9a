"""What observability costs per run: this checkout against another one, side by side.

    python benchmarks/bench_observe.py --before /path/to/older/checkout/src [--rounds 7]

Two long-lived child processes import subiso from the two source trees (``--before``, and
this checkout's ``src``) and run the trivial 3-node sync graph through the same tiers; rounds
interleave the two children (alternating which goes first), so each ratio compares runs timed
seconds apart on the same cores. Scenarios:

* ``plain`` - the caller holds no trace and ``opentelemetry`` is not importable (as where
  opentelemetry-api is not installed); LangGraph imports langsmith itself, as always;
* ``otel`` - an OpenTelemetry SDK tracer provider is installed and the caller holds a span;
* ``langsmith`` - the caller holds a LangSmith trace with tracing enabled (its client posts
  to a local sink): the graph's runs are traced by LangChain wherever they execute, which a
  version that lost the trace at the tier boundary skipped - so this ratio includes tracing
  work that was simply not done before.

Prints time per run of each and the after/before ratio (median of rounds, and its range).

``--instructions`` counts machine instructions instead (valgrind's callgrind, every thread and
every worker process included): deterministic, so a small difference is not lost in the
cores' speed swings. A run's count is ``(count with N runs - count with 0 runs) / N``, each
child warmed up the same way; scenario ``plain`` only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import median

ROOT = Path(__file__).resolve().parents[1]
TIERS = {"inline": 300, "thread": 300, "process": 150}
SCENARIOS = ("plain", "otel", "langsmith")

CHILD = r"""
import importlib.abc, json, os, sys, time
scenario = sys.argv[1]
if scenario == "plain":
    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, NoOtel())
import contextlib
import subiso
CFG = {"graph": "tests.workloads:sync_graph", "input": {"x": 1}}
executors = {}
def caller():
    return contextlib.nullcontext()
if scenario == "otel":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("bench")
    caller = lambda: tracer.start_as_current_span("caller")
if scenario == "langsmith":
    from langsmith.run_helpers import trace as ls_trace, tracing_context
    @contextlib.contextmanager
    def caller():
        with tracing_context(enabled=True), ls_trace("caller", run_type="chain"):
            yield
for line in sys.stdin:
    tier, runs = json.loads(line)
    ex = executors.get(tier)
    if ex is None:
        ex = executors[tier] = subiso.get_executor(tier, **({} if tier == "inline" else {"max_workers": 1}))
        for _ in range(20):
            with caller():
                ex.run(CFG)
    start = time.perf_counter()
    for _ in range(runs):
        with caller():
            ex.run(CFG)
    print(json.dumps((time.perf_counter() - start) / max(runs, 1)), flush=True)
for ex in executors.values():
    ex.close()
"""


class Child:
    def __init__(self, src: Path, scenario: str, env: dict[str, str]) -> None:
        path = os.pathsep.join([str(src), str(ROOT)])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, scenario],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**env, "PYTHONPATH": path},
        )

    def time_per_run(self, tier: str, runs: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([tier, runs]) + "\n")
        self.proc.stdin.flush()
        return float(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(120)


def instructions(src: Path, tier: str, runs: int, workdir: Path) -> int:
    """Machine instructions of a child that runs ``runs`` runs on ``tier`` (after a warm-up),
    in every thread and process it starts."""
    script = CHILD.replace("for line in sys.stdin:", f"for line in [{json.dumps([tier, runs])!r}]:")
    out = workdir / f"{src.parent.name}-{tier}-{runs}"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={out}/cg.%p",
            sys.executable,
            "-c",
            script,
            "plain",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])},
        capture_output=True,
        check=True,
        timeout=3600,
    )
    total = 0
    for path in out.glob("cg.*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                total += int(line.split()[1])
                break
    return total


def count_instructions(before: Path, runs: int) -> None:
    import tempfile

    print("| tier | before, instructions/run | after, instructions/run | after / before |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for tier in TIERS:
            per_run = []
            for src in (before, ROOT / "src"):
                base = instructions(src, tier, 0, Path(tmp))
                full = instructions(src, tier, runs, Path(tmp))
                per_run.append((full - base) / runs)
            b, a = per_run
            print(f"| {tier} | {b:,.0f} | {a:,.0f} | {a / b:.4f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's src")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--instructions", type=int, metavar="RUNS", help="count instructions over RUNS runs"
    )
    args = parser.parse_args()
    if args.instructions:
        count_instructions(args.before, args.instructions)
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from services import langsmith_sink  # a local LangSmith API: no network

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH", "LANGCHAIN"))}
    load = os.getloadavg()[0]
    started = time.time()
    rows = []
    with langsmith_sink() as sink:
        env.update(LANGSMITH_ENDPOINT=sink.url, LANGSMITH_API_KEY="lsv2-bench")
        for scenario in args.scenarios.split(","):
            before = Child(args.before, scenario, env)
            after = Child(ROOT / "src", scenario, env)
            times: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds):
                for tier, runs in TIERS.items():
                    order = [("before", before), ("after", after)]
                    for name, child in order if round_ % 2 == 0 else order[::-1]:
                        per_run = child.time_per_run(tier, runs)
                        times.setdefault((tier, name), []).append(per_run)
                    print(f"[{scenario}] round {round_ + 1}/{args.rounds} {tier}", file=sys.stderr)
            before.close()
            after.close()
            for tier in TIERS:
                a, b = times[(tier, "after")], times[(tier, "before")]
                ratios = [x / y for x, y in zip(a, b, strict=True)]
                rows.append((scenario, tier, median(b), median(a), ratios))
    print(
        f"\nload {load:.2f} before / {os.getloadavg()[0]:.2f} after, {time.time() - started:.0f} s"
    )
    print("| scenario | tier | before, us/run | after, us/run | after / before | per-round range |")
    print("|---|---|---|---|---|---|")
    for scenario, tier, b, a, ratios in rows:
        print(
            f"| {scenario} | {tier} | {b * 1e6:.1f} | {a * 1e6:.1f} | {median(ratios):.3f}x "
            f"| {min(ratios):.3f}-{max(ratios):.3f} |"
        )


if __name__ == "__main__":
    main()
