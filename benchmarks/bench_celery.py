"""Celery pools x subiso tiers on real services, and 100 contract reviews on PostgreSQL.

    python benchmarks/bench_celery.py            # needs redis-server and PostgreSQL binaries

1. "Celery pool (prefork, threads) x tier (thread, subinterpreter, process): runs ok / 40":
   a two-node graph with an SQLite checkpointer, 40 runs over 5 thread_ids per cell, one
   Celery worker (concurrency 2) per cell.
2. 100 contract reviews (examples.contract_review.graph:builder) through 2 Celery workers
   (prefork, concurrency 1 each, thread tier) on a PostgreSQL checkpointer: wall time and the
   split over the workers by RunReport.pid.

Services are started on 127.0.0.1 free ports by the test suite's helpers (tests/services.py).
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import subiso.celery  # noqa: E402
from tests.services import (  # noqa: E402
    CeleryWorker,
    celery_client,
    create_database,
    postgres_server,
    redis_server,
)

POOLS = ("prefork", "threads")
TIERS = ("thread", "subinterpreter", "process")


def matrix(redis: str, tmp: Path) -> None:
    app = celery_client(redis)
    print("| Celery pool | thread | subinterpreter | process |")
    print("|---|---|---|---|")
    for pool in POOLS:
        cells = []
        for tier in TIERS:
            w = CeleryWorker(redis, tmp, pool=pool, tier=tier)
            db = tmp / f"{pool}-{tier}.db"
            try:
                results = [
                    subiso.celery.submit(
                        app,
                        {
                            "graph": "tests.dist_workloads:two_nodes",
                            "input": {"x": i},
                            "checkpointer": f"sqlite:///{db}",
                            "config": {"configurable": {"thread_id": f"t{i % 5}"}},
                        },
                        queue=w.queue,
                    )
                    for i in range(40)
                ]
                ok = 0
                for i, r in enumerate(results):
                    try:
                        if r.get(timeout=120)["output"] == {"x": (i + 1) * 2}:
                            ok += 1
                    except Exception as exc:
                        print(f"  {pool}/{tier}: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                w.stop()
            cells.append(f"{ok}/40")
        print(f"| {pool} | " + " | ".join(cells) + " |")


def contract_reviews(redis: str, pg: str, tmp: Path, n: int = 100) -> None:
    app = celery_client(redis)
    db = create_database(pg, "bench_reviews")
    workers = [
        CeleryWorker(
            redis,
            tmp,
            pool="prefork",
            tier="thread",
            concurrency=1,
            name=f"w{i}",
            queue="q-reviews",
        )
        for i in (1, 2)
    ]
    sample = ROOT / "examples" / "contract_review" / "sample_contract.txt"
    try:
        start = time.perf_counter()
        results = [
            subiso.celery.submit(
                app,
                {
                    "graph": "examples.contract_review.graph:builder",
                    "input": {"path": str(sample)},
                    "checkpointer": db,
                    "config": {"configurable": {"thread_id": f"review-{i}"}},
                },
                queue="q-reviews",
            )
            for i in range(n)
        ]
        outs = [r.get(timeout=300) for r in results]
        wall = time.perf_counter() - start
    finally:
        for w in workers:
            w.stop()
    pids = collections.Counter(o["report"]["pid"] for o in outs)
    run_s = sorted(o["report"]["duration_s"] for o in outs)
    print(
        f"{n} contract reviews, 2 prefork workers (c=1, thread tier), PostgreSQL: "
        f"{wall:.2f}s wall, {n / wall:.1f} runs/s; median run {run_s[n // 2] * 1000:.1f} ms"
    )
    print("per worker child pid:", dict(pids))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="subiso-bench-celery-"))
    with redis_server() as redis, postgres_server() as pg:
        if "--reviews-only" not in sys.argv:
            matrix(redis, tmp)
        contract_reviews(redis, pg, tmp)


if __name__ == "__main__":
    main()
