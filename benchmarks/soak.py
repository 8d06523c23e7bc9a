"""The long soak: many mixed runs per tier at concurrency 32; lost, wrong, leaks, RSS slope.

    python benchmarks/soak.py [--tiers thread,process] [--runs N | --isolated N --in-caller N]
                              [--concurrency 32] [--mix both|checkpointers|plain] [--json FILE]

The same harness as ``tests/reliability/test_soak.py`` (``tests/reliability/harness.py``):
sync and async graphs, workflow functions, runs whose node raises, called as ``run``/
``submit``/``stream`` from threads and ``arun``/``astream`` from one event loop, every outcome
compared with the exact output or exception it must have. Defaults: 10,000 runs per isolated
tier (thread, subinterpreter, process), 1,000 for inline and context.

Each tier is soaked twice (``--mix both``):

* ``checkpointers`` - a quarter of the runs use a ``memory`` or SQLite checkpointer with their
  own ``thread_id``. LangGraph's ``InMemorySaver`` keeps every checkpoint of every thread for
  the executor's life (per worker process in the process tier), so memory grows with the runs
  by design: its slope is what those checkpoints cost;
* ``plain`` - the same mix without checkpointers: what the tier itself keeps per run (the slope
  should be flat once warm).

Printed per tier and mix: runs, lost, duplicated, wrong, leaks after ``close()`` (threads, fds,
descendant processes, subinterpreters - counted against a baseline taken after a first executor
of the tier ran and closed), seconds, and the least-squares slope of the tree RSS (this process
and every descendant, ``subiso.bench.measure.tree_rss_kib``) per 1,000 runs, over the samples
after the first 20% of the runs (warm-up). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ensure_repo_importable, progress, python_tag, table

ensure_repo_importable()

import subiso  # noqa: E402
from tests.reliability import harness  # noqa: E402

TIERS = ("inline", "context", "thread", "subinterpreter", "process")
IN_CALLER = ("inline", "context")
PLAIN_KINDS = tuple(k for k in harness.KINDS if k not in ("memory", "sqlite"))


def _options(tier: str) -> dict[str, Any]:
    return {} if tier in IN_CALLER else {"max_workers": 4}


def soak(tier: str, runs: int, mix: str, concurrency: int, db: str) -> dict[str, Any]:
    kinds = harness.KINDS if mix == "checkpointers" else PLAIN_KINDS
    with subiso.get_executor(tier, **_options(tier)) as warm:
        harness.drive(warm, harness.mix(len(kinds) * 4, db, kinds), concurrency=8)
    gc.collect()
    before = harness.snapshot()
    executor = subiso.get_executor(tier, **_options(tier))
    every = max(10, runs // 100)
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            rate = done / max(1e-9, time.monotonic() - started)
            progress(f"{tier} {mix}: {done}/{total} runs ({rate:.0f}/s)")

    result = harness.drive(
        executor,
        harness.mix(runs, db, kinds),
        concurrency=concurrency,
        sample_every=every,
        progress=show,
    )
    close_start = time.monotonic()
    executor.close()
    close_s = time.monotonic() - close_start
    summary = result.summary()
    problems = [msg for _, msg in result.wrong()[:3]]
    del result, executor
    gc.collect()
    found = harness.leaks(before)
    return {
        "tier": tier,
        "mix": mix,
        **summary,
        "close_s": round(close_s, 3),
        "leaks": harness.leak_count(found),
        "leaked": {k: v for k, v in found.items() if v},
        "examples_of_wrong": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument("--runs", type=int, default=None, help="runs per tier, every tier")
    parser.add_argument("--isolated", type=int, default=10_000, help="runs per isolated tier")
    parser.add_argument("--in-caller", type=int, default=1_000, help="runs for inline/context")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mix", choices=("both", "checkpointers", "plain"), default="both")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    mixes = ("checkpointers", "plain") if args.mix == "both" else (args.mix,)
    from subiso.executors.subinterpreter import backend

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="subiso-soak-") as tmp:
        for tier in tiers:
            if tier == "subinterpreter" and not backend():
                progress(f"subinterpreter: skipped ({backend().reason}; it would fall back)")
                continue
            runs = args.runs or (args.in_caller if tier in IN_CALLER else args.isolated)
            for mix in mixes:
                db = f"sqlite:///{Path(tmp) / f'{tier}-{mix}.db'}"
                rows.append(soak(tier, runs, mix, args.concurrency, db))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    header = ["tier", "mix", "runs", "lost", "dup", "wrong", "leaks", "s", "close s",
              "RSS KiB/1000 runs"]  # fmt: skip
    keys = ["tier", "mix", "runs", "lost", "duplicated", "wrong", "leaks", "seconds", "close_s",
            "rss_slope_kib_per_1000"]  # fmt: skip
    title = f"soak, concurrency {args.concurrency} ({python_tag()})"
    print(table(title, header, [[r[k] for k in keys] for r in rows]))
    for r in rows:
        if r["leaked"] or r["examples_of_wrong"]:
            print(f"{r['tier']} {r['mix']}: leaked {r['leaked']}; wrong: {r['examples_of_wrong']}")
    if args.json is not None:
        args.json.write_text(json.dumps({"python": python_tag(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
