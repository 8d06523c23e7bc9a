"""ProcessExecutor when a worker dies or falls behind: no collateral failures, no idle worker
beside a backlog.

* runs waiting unread behind a run that crashes (or is killed for its timeout) go to another
  worker and succeed;
* runs running beside the culprit are sent again when that is safe (a durable checkpointer and
  a thread: resumed from the last checkpoint; ``retry_collateral``), else fail naming it;
* ``WorkerCrashed.culprit`` names the run that brought the worker down;
* an idle worker takes back the runs waiting in a busy worker's pipe.

Synchronisation is by FIFOs the workloads open (``Hold``); nothing sleeps to wait.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from pathlib import Path

import pytest

from subiso.errors import RunTimeout, WorkerCrashed
from subiso.executors.process import ProcessExecutor

pytestmark = pytest.mark.timeout(90)

W = "tests.workloads"
P = "tests.process_workloads"


class Hold:
    """Two FIFOs: a workload says it started (``wait_started``), then waits for ``let_go``."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.started = str(tmp_path / f"{name}.started")
        self.waiting = str(tmp_path / f"{name}.waiting")  # meeting_graph's second node
        self.release = str(tmp_path / f"{name}.release")
        for fifo in (self.started, self.waiting, self.release):
            os.mkfifo(fifo)
        self.paths = [self.started, self.release]

    def wait_started(self, fifo: str | None = None) -> None:
        with open(fifo or self.started) as f:
            assert f.read() == "started"

    def wait_waiting(self) -> None:
        """meeting_graph is in its second node: its first one is checkpointed."""
        self.wait_started(self.waiting)

    def let_go(self) -> None:
        with open(self.release, "w") as f:
            f.write("released")

    def run_through(self) -> None:
        """Let a meeting_graph run through both nodes."""
        self.wait_started()
        self.wait_waiting()
        self.let_go()

    def meeting(self, *, crash: bool) -> dict[str, object]:
        return {"fifos": [self.started, self.waiting, self.release], "crash": crash, "steps": []}


def test_runs_waiting_behind_a_crash_go_to_a_new_worker(tmp_path: Path) -> None:
    hold = Hold(tmp_path, "crash")
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        crash = ex.submit({"graph": f"{P}:hold_then_exit", "input": hold.paths})
        hold.wait_started()  # the worker's main thread is inside it
        waiting = [ex.submit({"graph": f"{W}:square", "input": i}) for i in range(8)]
        stats = ex.stats()
        assert stats.runs_per_worker == [9]  # all in its pipe, unread but the one it runs
        assert (stats.runs_running, stats.runs_pending) == (1, 8)
        hold.let_go()
        with pytest.raises(WorkerCrashed, match="exited with code 3") as info:
            crash.result()
        assert info.value.culprit is not None
        assert info.value.culprit.graph == f"{P}:hold_then_exit"
        assert [f.result() for f in waiting] == [i * i for i in range(8)]


def test_runs_waiting_behind_a_run_killed_for_its_timeout_go_to_a_new_worker(
    tmp_path: Path,
) -> None:
    started = str(tmp_path / "started")
    os.mkfifo(started)
    with ProcessExecutor(max_workers=1, prestart=True, kill_grace=0.3) as ex:
        spin = ex.submit({"graph": f"{P}:start_then_spin", "input": started, "timeout": 0.5})
        with open(started) as f:
            f.read()
        waiting = [ex.submit({"graph": f"{W}:square", "input": i}) for i in range(5)]
        with pytest.raises(RunTimeout):
            spin.result()
        assert [f.result() for f in waiting] == [i * i for i in range(5)]


def test_a_run_beside_the_culprit_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    a, b = Hold(tmp_path, "a"), Hold(tmp_path, "b")
    db = f"sqlite:///{tmp_path / 'cp.db'}"
    graph = f"{P}:meeting_graph"
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        crasher = ex.submit({"graph": graph, "input": a.meeting(crash=True)})
        a.wait_started()
        durable = ex.submit(
            {
                "graph": graph,
                "input": b.meeting(crash=False),
                "checkpointer": db,
                "durability": "sync",
                "config": {"configurable": {"thread_id": "t1"}},
            }
        )
        b.wait_started()
        b.wait_waiting()  # both are running on the one worker's loop; b's "arrive" is saved
        a.wait_waiting()
        a.let_go()  # the worker dies
        with pytest.raises(WorkerCrashed, match="which run crashed it is unknown"):
            crasher.result()
        # sent again alone, from its last checkpoint: "arrive" is not repeated (it would
        # block on its FIFO), "wait" is
        b.wait_waiting()
        b.let_go()
        assert durable.result()["steps"] == ["arrive", "wait"]


def test_a_sync_culprit_is_named_and_the_run_waiting_behind_it_goes_on(
    tmp_path: Path,
) -> None:
    a, b = Hold(tmp_path, "a"), Hold(tmp_path, "b")
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        culprit = ex.submit({"graph": f"{P}:hold_then_exit", "input": a.paths})
        a.wait_started()
        # the sync culprit holds the worker's main thread: this one waits unread, then goes on
        beside = ex.submit({"graph": f"{P}:meeting_graph", "input": b.meeting(crash=False)})
        a.let_go()
        with pytest.raises(WorkerCrashed) as info:
            culprit.result()
        assert info.value.culprit is not None
        b.wait_started()
        b.wait_waiting()
        b.let_go()
        assert beside.result()["steps"] == ["arrive", "wait"]


def test_retry_collateral_runs_suspects_alone_until_the_culprit_is_named(
    tmp_path: Path,
) -> None:
    a, b = Hold(tmp_path, "a"), Hold(tmp_path, "b")
    graph = f"{P}:meeting_graph"
    with ProcessExecutor(max_workers=1, prestart=True, retry_collateral=True) as ex:
        crasher = ex.submit({"graph": graph, "input": a.meeting(crash=True)})
        a.wait_started()
        other = ex.submit({"graph": graph, "input": b.meeting(crash=False)})
        b.wait_started()
        b.wait_waiting()
        a.wait_waiting()
        # both run again from their input, alone, in an order the test does not know; the
        # crasher crashes its worker again (its second crash, alone: the culprit)
        second = [threading.Thread(target=h.run_through) for h in (a, b)]
        for t in second:
            t.start()
        a.let_go()  # first crash: two runs in flight, culprit unknown
        for t in second:
            t.join()
        with pytest.raises(WorkerCrashed) as info:
            crasher.result()
        assert info.value.culprit is not None
        assert info.value.culprit.input["crash"] is True
        assert other.result()["steps"] == ["arrive", "wait"]


def test_an_idle_worker_takes_back_runs_waiting_behind_a_long_one(tmp_path: Path) -> None:
    hold = Hold(tmp_path, "long")
    with ProcessExecutor(max_workers=2, prestart=True) as ex:
        long = ex.submit({"graph": f"{P}:hold", "input": hold.paths})
        hold.wait_started()
        short = [ex.submit({"graph": f"{W}:square", "input": i}) for i in range(8)]
        # about half were sent to the busy worker; without taking them back they would wait
        # for the long run, which the test releases only afterwards
        _, not_done = cf.wait(short, timeout=60)
        assert not not_done
        assert [f.result() for f in short] == [i * i for i in range(8)]
        assert not long.done()
        hold.let_go()
        assert long.result() == "released"


def test_a_run_beside_the_culprit_fails_naming_it_when_it_cannot_be_retried(
    tmp_path: Path,
) -> None:
    b = Hold(tmp_path, "b")
    hog = {"graph": f"{P}:spin_async_graph", "input": {"x": 0}, "timeout": 0.5}
    with ProcessExecutor(max_workers=1, prestart=True, kill_grace=0.3) as ex:
        beside = ex.submit({"graph": f"{P}:meeting_graph", "input": b.meeting(crash=False)})
        b.wait_started()
        b.wait_waiting()  # a task on the worker's loop, waiting in a pool thread
        # a busy loop on that same loop: cancellation cannot reach it, so the worker is killed
        with pytest.raises(RunTimeout):
            ex.run(hog)
        with pytest.raises(WorkerCrashed, match="the run that crashed it") as info:
            beside.result()  # no checkpointer, no retry_collateral: not sent again
        assert info.value.culprit is not None
        assert info.value.culprit.graph == hog["graph"]
        assert ex.run({"graph": f"{W}:square", "input": 3}) == 9
