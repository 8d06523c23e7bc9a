"""How soon a stream's first event reaches its consumer, per tier, against the run's length.

    python benchmarks/bench_stream.py [--steps 8] [--step-s 0.05] [--rounds 5]

``subiso.bench.workloads:steps_graph`` runs ``--steps`` nodes ``--step-s`` apart, each emitting
one "updates" event. For each tier (and plain ``graph.stream`` in this process, the floor) the
rounds interleave; it prints the median time to the first event and to the end of the run, and
first-event / run-length (an incremental stream sits near ``1 / steps``; a buffered one at 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import ensure_repo_importable, python_tag, table

ensure_repo_importable()

import subiso  # noqa: E402
from subiso.bench.workloads import steps_graph  # noqa: E402

TIERS = ("inline", "context", "thread", "subinterpreter", "process")


def timed(events: Any) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = None
    count = 0
    for _ in events:
        count += 1
        if first is None:
            first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step-s", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    state = {"steps": args.steps, "step_s": args.step_s}
    cfg = {"graph": "subiso.bench.workloads:steps_graph", "input": state}
    executors = {
        t: subiso.get_executor(t, **({} if t in ("inline", "context") else {"max_workers": 2}))
        for t in TIERS
    }
    samples: dict[str, list[tuple[float, float, int]]] = {k: [] for k in ("graph.stream", *TIERS)}
    try:
        for ex in executors.values():  # warm: workers started, target imported
            list(ex.stream(cfg))
        for _ in range(args.rounds):
            samples["graph.stream"].append(timed(steps_graph.stream(state)))
            for tier, ex in executors.items():
                samples[tier].append(timed(ex.stream(cfg)))
    finally:
        for ex in executors.values():
            ex.close()
    rows = []
    for name, runs in samples.items():
        first = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        rows.append(
            (name, f"{first * 1000:.1f}", f"{total * 1000:.1f}", f"{first / total:.3f}", runs[0][2])
        )
    print(
        table(
            f"stream first event vs run length ({python_tag()}, {args.steps} steps "
            f"{args.step_s * 1000:g} ms apart, median of {args.rounds} interleaved rounds)",
            ("tier", "first event ms", "run ms", "first/run", "events"),
            rows,
        )
    )


if __name__ == "__main__":
    main()
