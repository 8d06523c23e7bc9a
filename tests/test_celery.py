"""subiso.celery against real Celery workers (prefork, threads, solo pools) on a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import subiso.celery
from tests.services import CeleryWorker, celery_client

pytest.importorskip("celery")

W = "tests.dist_workloads"
POOLS_TIERS = [
    ("prefork", "thread"),
    ("prefork", "process"),
    ("prefork", "subinterpreter"),
    ("threads", "thread"),
    ("threads", "process"),
    ("threads", "subinterpreter"),
    ("solo", "thread"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("celery")


@pytest.fixture(scope="module")
def app(redis_url: str) -> Any:
    return celery_client(redis_url)


@pytest.fixture(scope="module")
def worker(redis_url: str, workdir: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """``worker(pool, tier)``: a Celery worker started once per module per (pool, tier)."""
    started: dict[tuple[str, str], CeleryWorker] = {}

    def get(pool: str, tier: str) -> CeleryWorker:
        if (pool, tier) not in started:
            started[pool, tier] = CeleryWorker(redis_url, workdir, pool=pool, tier=tier)
        return started[pool, tier]

    yield get
    for w in started.values():  # warm shutdowns in parallel
        if w.proc.poll() is None:
            w.proc.terminate()
    for w in started.values():
        w.stop()


def two_node_cfg(i: int, db: Path) -> dict[str, Any]:
    return {
        "graph": f"{W}:two_nodes",
        "input": {"x": i},
        "checkpointer": f"sqlite:///{db}",
        "config": {"configurable": {"thread_id": f"t{i % 5}"}},
    }


@pytest.mark.parametrize(("pool", "tier"), POOLS_TIERS, ids=[f"{p}-{t}" for p, t in POOLS_TIERS])
def test_runs_on_every_pool_and_tier(
    pool: str, tier: str, app: Any, worker: Any, workdir: Path
) -> None:
    w = worker(pool, tier)
    db = workdir / f"{pool}-{tier}.db"
    results = [subiso.celery.submit(app, two_node_cfg(i, db), queue=w.queue) for i in range(10)]
    try:
        outs = [r.get(timeout=90) for r in results]
    except Exception:
        print(w.tail())
        raise
    assert [o["output"] for o in outs] == [{"x": (i + 1) * 2} for i in range(10)]
    reports = [o["report"] for o in outs]
    if tier == "subinterpreter" and not subiso.capabilities().subinterpreters:
        assert {r["mode"] for r in reports} == {"fallback"}  # 3.10-3.12: its fallback tier ran
    else:
        assert {r["tier"] for r in reports} == {tier}
    assert all(isinstance(r["duration_s"], float) for r in reports)
    if tier == "thread" and pool in ("threads", "solo"):  # one executor in the worker process
        assert {r["pid"] for r in reports} == {w.proc.pid}


def test_graph_config_struct_and_task_options(app: Any, worker: Any, workdir: Path) -> None:
    w = worker("prefork", "thread")
    cfg = subiso.GraphConfig(graph=f"{W}:two_nodes", input={"x": 20})
    assert subiso.celery.submit(app, cfg, queue=w.queue).get(timeout=60)["output"] == {"x": 42}


def test_errors_cross_as_named_exceptions(app: Any, worker: Any) -> None:
    w = worker("prefork", "process")
    with pytest.raises(Exception) as info:
        subiso.celery.submit(app, {"graph": "os:system", "input": "id"}, queue=w.queue).get(
            timeout=60
        )
    assert type(info.value).__name__ == "ConfigError"
    assert "allowed_graphs=['tests.dist_workloads:*'" in str(info.value)
    with pytest.raises(Exception) as info:
        subiso.celery.submit(
            app,
            {"graph": f"{W}:two_nodes", "checkpointer": "sqlite:////etc/x.db"},
            queue=w.queue,
        ).get(timeout=60)
    assert type(info.value).__name__ == "ConfigError" and "allowed_locations" in str(info.value)
    with pytest.raises(Exception) as info:
        subiso.celery.submit(app, {"graph": f"{W}:fail", "input": "boom"}, queue=w.queue).get(
            timeout=60
        )
    assert type(info.value) is ValueError and str(info.value) == "boom"


def test_unset_allow_list_refuses_everything(tmp_path: Path, monkeypatch: Any) -> None:
    f = tmp_path / "subiso.toml"
    f.write_text('executor = "inline"\n')
    monkeypatch.setenv("SUBISO_CONFIG", str(f))
    subiso.celery.close_worker_executor()
    try:
        with pytest.raises(subiso.ConfigError, match=r"allowed_graphs is not set.*subiso\.toml"):
            subiso.celery.run_graph(None, {"graph": f"{W}:pid"})
    finally:
        subiso.celery.close_worker_executor()


def durable_cfg(tmp: Path, name: str) -> tuple[dict[str, Any], Path, Path]:
    log, marker = tmp / f"{name}.log", tmp / f"{name}.killed"
    cfg = {
        "graph": f"{W}:four_steps",
        "input": {"log": str(log), "kill_after": str(marker)},
        "config": {"configurable": {"thread_id": name}},
        "checkpointer": f"sqlite:///{tmp}/{name}.db",
        "durability": "sync",
    }
    return cfg, log, marker


def counts(log: Path) -> dict[str, int]:
    names = log.read_text().split()
    return {n: names.count(n) for n in ("n1", "n2", "n3", "n4")}


def test_crashed_process_worker_is_retried_and_resumes(
    app: Any, worker: Any, workdir: Path
) -> None:
    """prefork x process: node 3 SIGKILLs its subiso worker -> WorkerCrashed -> autoretry ->
    the retry continues from the checkpoint after node 2."""
    w = worker("prefork", "process")
    cfg, log, marker = durable_cfg(workdir, "crash-retry")
    out = subiso.celery.submit(app, cfg, queue=w.queue).get(timeout=90)
    assert marker.exists()
    assert out["output"]["done"] == ["n1", "n2", "n3", "n4"]
    assert counts(log) == {"n1": 1, "n2": 1, "n3": 1, "n4": 1}


def test_killed_celery_child_is_redelivered_and_resumes(
    app: Any, worker: Any, workdir: Path
) -> None:
    """prefork x thread: node 3 SIGKILLs the Celery child itself -> the task goes back to the
    queue (acks_late, reject_on_worker_lost) -> redelivered -> resumes after node 2."""
    w = worker("prefork", "thread")
    cfg, log, marker = durable_cfg(workdir, "child-kill")
    out = subiso.celery.submit(app, cfg, queue=w.queue).get(timeout=90)
    assert marker.exists()
    assert out["output"]["done"] == ["n1", "n2", "n3", "n4"]
    assert counts(log) == {"n1": 1, "n2": 1, "n3": 1, "n4": 1}
    assert out["report"]["pid"] != int(marker.read_text())  # a new child finished it


def test_retries_are_bounded(app: Any, worker: Any, workdir: Path) -> None:
    """A run that crashes its worker every time: 1 attempt + max_retries (3), then the client
    gets WorkerCrashed."""
    w = worker("threads", "process")
    log = workdir / "always.log"
    result = subiso.celery.submit(
        app, {"graph": f"{W}:crash_always", "input": str(log)}, queue=w.queue
    )
    with pytest.raises(Exception) as info:
        result.get(timeout=90)
    assert type(info.value).__name__ == "WorkerCrashed"
    assert "SIGKILL" in str(info.value)
    assert len(log.read_text().split()) == 1 + subiso.celery.DEFAULT_MAX_RETRIES
