"""PostgreSQL checkpointers and stores on a real server: per-loop pools, concurrent setup,
durability, and Celery workers on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import subiso
from tests.services import create_database

pytest.importorskip("langgraph.checkpoint.postgres")

W = "tests.dist_workloads"


@pytest.fixture
def db(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh database per test (so setup() runs on an empty one)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return create_database(postgres_url, name)


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_checkpointer_and_store(tier: str, db: str) -> None:
    with subiso.get_executor(tier, max_workers=2) as ex:
        cfg = {
            "graph": f"{W}:visits",
            "input": {"user": "ada"},
            "checkpointer": db,
            "store": db,
            "config": {"configurable": {"thread_id": "ada-1"}},
        }
        counts = [ex.run(cfg)["visits"] for _ in range(3)]
        assert counts == [1, 2, 3]
        two = ex.run(
            {
                **cfg,
                "graph": f"{W}:two_nodes",
                "input": {"x": 1},
                "config": {"configurable": {"thread_id": "n-1"}},
            }
        )
        assert two == {"x": 4}
    import psycopg

    with psycopg.connect(db) as conn:
        threads = {r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert threads == {"ada-1", "n-1"}


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_many_workers_set_up_one_fresh_database_at_once(tier: str, db: str) -> None:
    """Four workers (loops or processes) start together on an empty database: setup() under
    the advisory lock, no "relation already exists" errors and no deadlock with CREATE INDEX
    CONCURRENTLY."""
    opts = {"prestart": True} if tier == "process" else {}
    with subiso.get_executor(tier, max_workers=4, **opts) as ex:
        futures = [
            ex.submit(
                {
                    "graph": f"{W}:two_nodes",
                    "input": {"x": i},
                    "checkpointer": db,
                    "store": db,
                    "config": {"configurable": {"thread_id": f"s{i}"}},
                }
            )
            for i in range(16)
        ]
        assert [f.result(timeout=120) for f in futures] == [{"x": (i + 1) * 2} for i in range(16)]


def test_killed_worker_resumes_on_postgres(db: str, tmp_path: Path) -> None:
    from tests.test_durable_local import durability_run

    assert durability_run(tmp_path, db, "pg-thread") == {"n1": 1, "n2": 1, "n3": 1, "n4": 1}


def test_postgres_spec_validated() -> None:
    subiso.GraphConfig(graph="a:b", checkpointer="postgresql://u@h:5432/db", store="postgres://h/d")
    with pytest.raises(subiso.ConfigError, match="unknown store"):
        subiso.GraphConfig(graph="a:b", store="mysql://h/d")


def test_a_missing_database_is_a_config_error(postgres_url: str) -> None:
    bad = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    ex = subiso.get_executor("thread", max_workers=1)
    with ex, pytest.raises(subiso.ConfigError, match=r"cannot connect to PostgreSQL.*refused"):
        ex.run({"graph": f"{W}:two_nodes", "input": {"x": 1}, "checkpointer": bad})


def test_celery_threads_pool_on_postgres(redis_url: str, db: str, tmp_path: Path) -> None:
    pytest.importorskip("celery")
    import subiso.celery
    from tests.services import CeleryWorker, celery_client

    app = celery_client(redis_url)
    w = CeleryWorker(redis_url, tmp_path, pool="threads", tier="thread", name="pg-threads")
    try:
        results = [
            subiso.celery.submit(
                app,
                {
                    "graph": f"{W}:two_nodes",
                    "input": {"x": i},
                    "checkpointer": db,
                    "config": {"configurable": {"thread_id": f"c{i % 5}"}},
                },
                queue=w.queue,
            )
            for i in range(20)
        ]
        outs: list[Any] = [r.get(timeout=90) for r in results]
    finally:
        w.stop()
    assert [o["output"]["x"] for o in outs] == [(i + 1) * 2 for i in range(20)]
