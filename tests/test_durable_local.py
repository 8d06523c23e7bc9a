"""Distributed building blocks that need no services: process workers under daemonic hosts,
worker_init / worker_state, stores, and resuming a killed run from its checkpoints."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso.allow import check_allowed
from subiso.errors import ConfigError, SubisoError, WorkerCrashed

W = "tests.dist_workloads"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # a zombie waiting for a reaper is gone too


def _wait_gone(pid: int, bound_s: float = 20.0) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


# -- 1. the process tier inside daemonic processes ------------------------------------------
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_process_tier_in_a_daemonic_pool_worker(method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    from tests import dist_workloads

    with multiprocessing.get_context(method).Pool(1) as pool:
        assert pool.apply(dist_workloads.daemonic, (None,)) is True
        out = pool.apply(dist_workloads.run_in_process_tier, (None,))
    assert out["worker"] == out["report_pid"]
    assert out["worker"] != out["host"]


def test_worker_dies_with_its_sigkilled_daemonic_host(tmp_path: Path) -> None:
    from tests import dist_workloads

    marker = tmp_path / "worker.pid"
    ctx = multiprocessing.get_context("forkserver")
    pool = ctx.Pool(1)
    try:
        (host_pid,) = [p.pid for p in pool._pool]  # type: ignore[attr-defined]
        assert pool.apply(dist_workloads.pid, (None,)) == host_pid
        pool.apply_async(dist_workloads.start_and_hold, (str(marker),))
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the daemonic host never started its worker"
            time.sleep(0.05)
        worker_pid = int(marker.read_text())
        assert worker_pid != host_pid and not _gone(worker_pid)
        os.kill(host_pid, signal.SIGKILL)
        assert _wait_gone(worker_pid), f"worker {worker_pid} outlived its SIGKILLed host"
    finally:
        pool.terminate()
        pool.join()


# -- 4. worker_init ----------------------------------------------------------------------------
@pytest.mark.parametrize("tier", ["thread", "process"])
@pytest.mark.parametrize("target", ["read_state", "aread_state"])
def test_worker_state_in_nodes(tier: str, target: str, tmp_path: Path, monkeypatch: Any) -> None:
    log = tmp_path / "subiso-init.log"
    monkeypatch.chdir(tmp_path)  # process workers start in their host's working directory
    ex = subiso.get_executor(tier, max_workers=1, worker_init=f"{W}:make_state")
    with ex:
        for _ in range(3):
            out = ex.run({"graph": f"{W}:{target}"})
            assert out["same_process"] is True
    lines = log.read_text().split()
    assert lines.count("enter") == 1 and lines.count("exit") == 1, lines


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_failing_worker_init_fails_runs_and_the_pool_lives(tier: str) -> None:
    with subiso.get_executor(tier, max_workers=1, worker_init=f"{W}:broken_state") as ex:
        for _ in range(2):
            with pytest.raises(
                ConfigError, match=r"worker_init 'tests\.dist_workloads:broken_state'"
            ):
                ex.run({"graph": f"{W}:read_state"})
    ex = subiso.get_executor(tier, max_workers=1, worker_init="tests.nope:factory")
    with ex, pytest.raises(ConfigError, match=r"tests\.nope:factory"):
        ex.run({"graph": f"{W}:pid"})
    # the pool stays usable: a fixed worker_init on a new executor, and other executors, run
    with subiso.get_executor(tier, max_workers=1) as ex:
        assert isinstance(ex.run({"graph": f"{W}:pid"}), int)


def test_worker_state_outside_a_run() -> None:
    with pytest.raises(SubisoError, match="worker_init"):
        subiso.worker_state()
    assert subiso.worker_state(default=None) is None


def test_worker_init_from_settings(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "subiso.toml"
    cfg.write_text(f'executor = "thread"\nworker_init = "{W}:make_state"\n')
    with subiso.load_executor(cfg) as ex:
        assert ex.worker_init == f"{W}:make_state"
        assert ex.run({"graph": f"{W}:read_state"})["same_process"]


# -- 3. stores -------------------------------------------------------------------------------
@pytest.mark.parametrize("tier", ["thread", "process"])
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_store_across_runs(tier: str, store: str, tmp_path: Path) -> None:
    spec = "memory" if store == "memory" else f"sqlite:///{tmp_path}/store.db"
    with subiso.get_executor(tier, max_workers=1) as ex:
        counts = [
            ex.run({"graph": f"{W}:visits", "input": {"user": "ada"}, "store": spec})["visits"]
            for _ in range(3)
        ]
        assert counts == [1, 2, 3]
        other = ex.run({"graph": f"{W}:visits", "input": {"user": "bob"}, "store": spec})
        assert other["visits"] == 1
    if store == "sqlite":  # persisted: a new executor continues the count
        with subiso.get_executor(tier, max_workers=1) as ex:
            out = ex.run({"graph": f"{W}:visits", "input": {"user": "ada"}, "store": spec})
            assert out["visits"] == 4


# -- 5. durability -----------------------------------------------------------------------------
def durability_run(tmp_path: Path, checkpointer: str, thread: str = "t-1") -> dict[str, int]:
    """Kill the worker in node n3 of n1..n4, rerun the thread, count node executions."""
    log, marker = tmp_path / f"{thread}.log", tmp_path / f"{thread}.killed"
    cfg = {
        "graph": f"{W}:four_steps",
        "input": {"log": str(log), "kill_after": str(marker)},
        "config": {"configurable": {"thread_id": thread}},
        "checkpointer": checkpointer,
        "durability": "sync",
    }
    with subiso.get_executor("process", max_workers=1) as ex:
        with pytest.raises(WorkerCrashed, match="SIGKILL"):
            ex.run(cfg)
        assert marker.exists()
        out = ex.run({**cfg, "input": None})
    assert out["done"] == ["n1", "n2", "n3", "n4"]
    names = log.read_text().split()
    return {n: names.count(n) for n in ("n1", "n2", "n3", "n4")}


def test_killed_worker_resumes_from_its_checkpoints(tmp_path: Path) -> None:
    counts = durability_run(tmp_path, f"sqlite:///{tmp_path}/cp.db")
    assert counts == {"n1": 1, "n2": 1, "n3": 1, "n4": 1}


def test_recover_flag_restarts_only_unfinished_threads(tmp_path: Path) -> None:
    log = tmp_path / "r.log"
    cp = f"sqlite:///{tmp_path}/cp.db"
    base = {
        "graph": f"{W}:four_steps",
        "input": {"log": str(log)},
        "config": {"configurable": {"thread_id": "done-thread"}},
        "checkpointer": cp,
        "recover": True,
    }
    with subiso.get_executor("thread", max_workers=1) as ex:
        ex.run(base)
        ex.run(base)  # finished thread: recover=True runs the input again
    assert log.read_text().split().count("n1") == 2


# -- 2. the allow-list matcher -------------------------------------------------------------
def test_check_allowed() -> None:
    ok = {"graph": "myapp.graphs:review", "checkpointer": "postgresql://u@h/db", "store": "memory"}
    check_allowed(ok, ["myapp.graphs:*"], ["postgresql://*"])
    with pytest.raises(ConfigError, match="allowed_graphs is not set"):
        check_allowed(ok, None, ["postgresql://*"])
    with pytest.raises(ConfigError, match=r"allowed_graphs=\['other:\*'\]"):
        check_allowed(ok, ["other:*"], ["postgresql://*"])
    with pytest.raises(
        ConfigError, match=r"checkpointer .* allowed_locations=\['sqlite:///var/\*'\]"
    ):
        check_allowed(ok, ["myapp.*"], ["sqlite:///var/*"])
    with pytest.raises(ConfigError, match="store"):
        check_allowed({**ok, "store": "sqlite:///etc/x.db"}, ["myapp.*"], ["postgresql://*"])


def test_settings_allow_keys(tmp_path: Path) -> None:
    from subiso.settings import load_settings

    f = tmp_path / "subiso.toml"
    f.write_text('allowed_graphs = ["a:*"]\nallowed_locations = ["sqlite:///*"]\n')
    s = load_settings(f)
    assert s.allowed_graphs == ["a:*"] and s.allowed_locations == ["sqlite:///*"]
    f.write_text('allowed_graphs = "a:*"\n')
    with pytest.raises(ConfigError, match="allowed_graphs"):
        load_settings(f)
