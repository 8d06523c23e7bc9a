"""Submit contract reviews to the example Celery workers and show where they ran.

    python -m examples.celery_app.submit [N] [--checkpointer SPEC]

Each review gets its own thread_id, so a run whose worker dies resumes from its last
checkpoint when Celery retries or redelivers it.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import subiso.celery
from examples.celery_app.app import app

SAMPLE = Path(__file__).resolve().parents[1] / "contract_review" / "sample_contract.txt"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.celery_app.submit")
    parser.add_argument("n", type=int, nargs="?", default=100)
    parser.add_argument(
        "--checkpointer", default=None, help="e.g. postgresql://...; default: the workers' settings"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    results = [
        subiso.celery.submit(
            app,
            {
                "graph": "examples.contract_review.graph:builder",
                "input": {"path": str(SAMPLE)},
                "config": {"configurable": {"thread_id": f"review-{i}"}},
                "durability": "sync",
                **({"checkpointer": args.checkpointer} if args.checkpointer else {}),
            },
        )
        for i in range(args.n)
    ]
    pids: collections.Counter[int] = collections.Counter()
    failed = 0
    for r in results:
        try:
            pids[r.get(timeout=600)["report"]["pid"]] += 1
        except Exception as exc:
            failed += 1
            print(f"{r.id}: {type(exc).__name__}: {exc}")
    wall = time.perf_counter() - start
    print(f"{args.n - failed}/{args.n} reviews in {wall:.1f}s; runs per worker pid: {dict(pids)}")


if __name__ == "__main__":
    main()
