"""ProcessExecutor with real worker processes: runs, crashes, hard timeouts, payloads, lifecycle.

Synchronisation is by events only (futures, FIFOs a workload opens); nothing sleeps to wait
and nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from subiso import get_executor
from subiso.codec import RemoteError, decode, encode
from subiso.errors import (
    ConfigError,
    ExecutorClosed,
    RemoteTraceback,
    RunTimeout,
    SerializationError,
    WorkerCrashed,
)
from subiso.executors.process import ProcessExecutor
from tests.workloads import WorkflowFailed, expected

pytestmark = pytest.mark.timeout(60)

W = "tests.workloads"
P = "tests.process_workloads"


# -- helpers -----------------------------------------------------------------------------------
def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    return parents


def workers_below_us() -> set[int]:
    """Our descendant processes except multiprocessing's own helpers (the forkserver and the
    resource tracker, children of ours that live as long as the interpreter)."""
    parents = _parents()
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    helpers = set()
    for pid, ppid in parents.items():
        if ppid == os.getpid():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing.forkserver" in cmd or b"multiprocessing.resource_tracker" in cmd:
                helpers.add(pid)
    return found - helpers


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Hold:
    """Two FIFOs: the ``hold`` workload says it started, then blocks until released."""

    def __init__(self, tmp_path: Path) -> None:
        self.started = str(tmp_path / "started")
        self.release = str(tmp_path / "release")
        os.mkfifo(self.started)
        os.mkfifo(self.release)
        self.cfg = {"graph": f"{P}:hold", "input": [self.started, self.release]}

    def wait_started(self) -> None:
        with open(self.started) as f:
            assert f.read() == "started"

    def let_go(self) -> None:
        with open(self.release, "w") as f:
            f.write("released")


@pytest.fixture(scope="module")
def ex() -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(max_workers=2, prestart=True, kill_grace=1.0)
    pids = executor.worker_pids()
    assert len(pids) == 2
    yield executor
    executor.close()
    assert not any(alive(pid) for pid in pids + executor.worker_pids())


# -- runs from sync code, from a running loop, many at once ------------------------------------
@pytest.mark.parametrize("graph", ["sync_graph", "async_graph", "sync_builder", "make_sync_graph"])
def test_graphs_from_sync_code(ex: ProcessExecutor, graph: str) -> None:
    assert ex.run({"graph": f"{W}:{graph}", "input": {"x": 4}}) == {"x": expected(4)}


def test_report_names_the_worker_and_the_transfer_costs(ex: ProcessExecutor) -> None:
    output, report = ex.execute({"graph": f"{W}:sync_graph", "input": {"x": 1}})
    assert output == {"x": expected(1)}
    assert report.tier == "process" and report.mode == "full"
    assert report.pid in ex.worker_pids() and report.pid != os.getpid()
    assert isinstance(report.loop_id, int)
    assert report.encode_s > 0 and report.decode_s > 0 and report.transfer_s >= 0
    where = ex.run({"graph": f"{W}:awhere"})
    assert where["pid"] in ex.worker_pids()


# -- errors ----------------------------------------------------------------------------------------
def test_workflow_error_keeps_its_type_and_the_worker_traceback(ex: ProcessExecutor) -> None:
    with pytest.raises(WorkflowFailed, match="node exploded at x=2") as info:
        ex.run({"graph": f"{W}:failing_graph", "input": {"x": 1}})
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "_explode" in cause.tb and "WorkflowFailed" in cause.tb
    with pytest.raises(ConfigError, match="unknown module"):
        ex.run({"graph": "no_such_module_xyz:graph"})
    assert ex.run({"graph": f"{W}:square", "input": 2}) == 4


def test_exception_whose_constructor_differs_keeps_its_type(ex: ProcessExecutor) -> None:
    from tests.process_workloads import PickyError

    with pytest.raises(PickyError, match=r"code 7: picky") as info:
        ex.run({"graph": f"{P}:raise_picky"})
    assert info.value.code == 7 and not isinstance(info.value, RemoteError)
    assert "raise_picky" in str(info.value.__cause__)


def test_timeout_cancels_on_the_worker_loop_and_the_worker_stays(ex: ProcessExecutor) -> None:
    pids = set(ex.worker_pids())
    with pytest.raises(RunTimeout, match="exceeded its timeout"):
        ex.run({"graph": f"{W}:hang", "timeout": 0.2})
    assert set(ex.worker_pids()) == pids
    assert ex.run({"graph": f"{W}:asquare", "input": 6}) == 36


def test_cancelled_arun_cancels_the_run_in_the_worker(ex: ProcessExecutor) -> None:
    pids = set(ex.worker_pids())

    async def main() -> int:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ex.arun({"graph": f"{W}:hang"}), 0.2)
        return await ex.arun({"graph": f"{W}:asquare", "input": 7})  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 49
    assert set(ex.worker_pids()) == pids


# -- who reads a reply: the waiting caller, or the worker's reader thread -------------------------
def test_a_sync_caller_reads_its_own_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    settled_on: list[threading.Thread] = []
    complete = ProcessExecutor._complete  # settles a run from its reply, on the reading thread

    def spy(self: ProcessExecutor, pending: Any, msg: Any, t_recv: float) -> None:
        settled_on.append(threading.current_thread())
        complete(self, pending, msg, t_recv)

    monkeypatch.setattr(ProcessExecutor, "_complete", spy)
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        outputs = [ex.run({"graph": f"{W}:square", "input": i}) for i in range(5)]
        assert outputs == [i * i for i in range(5)]
        # The first reply is read by the reader thread, which then parks; from the second on,
        # the calling thread reads (and settles) its own.
        assert settled_on[1:] == [threading.current_thread()] * 4
        settled_on.clear()
        assert ex.submit({"graph": f"{W}:square", "input": 6}).result() == 36
        assert settled_on[0] is not threading.current_thread()  # futures: the reader reads


def test_an_interrupted_caller_hands_its_run_to_the_reader(tmp_path: Path) -> None:
    hold = Hold(tmp_path)
    main = threading.get_ident()

    def interrupt_once_started() -> None:
        hold.wait_started()
        signal.pthread_kill(main, signal.SIGINT)

    ex = ProcessExecutor(max_workers=1, prestart=True)
    (pid,) = ex.worker_pids()
    assert ex.run({"graph": f"{P}:pid"}) == pid  # the reader thread parks: callers read
    interrupter = threading.Thread(target=interrupt_once_started)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        ex.run(hold.cfg)
    interrupter.join()
    hold.let_go()
    # Nobody waits on the held run any more: only the reader thread can read its reply, and
    # close() drains it before it stops the worker.
    ex.close()
    assert not alive(pid)


def test_run_from_a_done_callback_does_not_wait_for_its_own_thread() -> None:
    # A reply settles its future on whichever thread read it (a caller reading its own, or
    # the reader thread); a callback that calls run() there must read on, not wait on itself.
    chained: cf.Future[Any] = cf.Future()

    def then_run(done: cf.Future[Any]) -> None:
        try:
            chained.set_result(ex.run({"graph": f"{W}:square", "input": done.result()}))
        except BaseException as exc:
            chained.set_exception(exc)

    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        ex.run({"graph": f"{W}:square", "input": 1})  # from now on this thread reads
        first = ex.submit({"graph": f"{W}:square", "input": 3})
        first.add_done_callback(then_run)
        assert ex.run({"graph": f"{W}:square", "input": 2}) == 4
        assert first.result() == 9
        assert chained.result(timeout=30) == 81
        second = ex.submit({"graph": f"{W}:square", "input": 4})  # read by the reader thread
        chained = cf.Future()
        second.add_done_callback(then_run)
        assert chained.result(timeout=30) == 256


def test_sync_callers_futures_and_aruns_share_one_worker() -> None:
    def caller(k: int) -> list[Any]:
        out = []
        for i in range(15):
            out.append(ex.run({"graph": f"{W}:sync_graph", "input": {"x": k * 100 + i}}))
            out.append(ex.submit({"graph": f"{W}:square", "input": i}).result())
        return out

    async def aruns() -> list[Any]:
        return [await ex.arun({"graph": f"{W}:asquare", "input": i}) for i in range(30)]

    with ProcessExecutor(max_workers=1, prestart=True) as ex, cf.ThreadPoolExecutor(6) as pool:
        callers = [pool.submit(caller, k) for k in range(5)]
        looped = pool.submit(asyncio.run, aruns())
        for k, future in enumerate(callers):
            want = []
            for i in range(15):
                want += [{"x": expected(k * 100 + i)}, i * i]
            assert future.result() == want
        assert looped.result() == [i * i for i in range(30)]
        assert ex.stats().runs_per_worker == [0]


# -- the worker's main thread runs sync jobs; its control thread stays responsive -----------------
def test_a_sync_run_executes_on_the_worker_main_thread(ex: ProcessExecutor) -> None:
    seen = ex.run({"graph": f"{P}:threads"})
    assert seen["here"] == seen["main"]  # read, run and answered there: no hand-off


def test_a_run_queued_behind_a_hogging_run_times_out_without_a_kill(tmp_path: Path) -> None:
    hold = Hold(tmp_path)
    with ProcessExecutor(max_workers=1, prestart=True, kill_grace=10.0) as ex:
        (pid,) = ex.worker_pids()
        held = ex.submit(hold.cfg)
        hold.wait_started()  # the worker's main thread is inside ``hold``
        # This run's frame waits unread behind it; the cancel its timeout sends is answered
        # by the control thread at once, so nothing is killed (that would take kill_grace).
        with pytest.raises(RunTimeout, match="was cancelled on its worker process"):
            ex.run({"graph": f"{W}:asquare", "input": 2, "timeout": 0.2})
        hold.let_go()
        assert held.result() == "released"
        assert ex.run({"graph": f"{W}:asquare", "input": 3}) == 9
        assert ex.worker_pids() == [pid]


def test_a_worker_killed_while_idle_is_replaced_at_once() -> None:
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        for _ in range(3):  # sync callers read their own replies: the reader thread parks
            (pid,) = ex.worker_pids()
            assert ex.run({"graph": f"{P}:pid"}) == pid
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would, with nothing in flight
        with ex._lock:  # the parked reader watches the process: it buries and replaces it
            assert ex._changed.wait_for(
                lambda: pid not in [w.pid for w in ex._workers] and len(ex._workers) == 1,
                timeout=30,
            )
        assert ex.run({"graph": f"{P}:pid"}) not in (pid, None)


def test_a_worker_whose_host_died_mid_run_exits_within_kill_grace(tmp_path: Path) -> None:
    started = tmp_path / "started"
    os.mkfifo(started)
    host = f"""
import os, sys
sys.path[:0] = {sys.path!r}
from subiso.executors.process import ProcessExecutor
if __name__ == "__main__":
    ex = ProcessExecutor(max_workers=1, prestart=True, kill_grace=0.5)
    ex.submit({{"graph": "{P}:start_then_spin", "input": {str(started)!r}}})
    with open({str(started)!r}) as f:
        assert f.read() == "started"
    print(ex.worker_pids()[0], flush=True)
    os._exit(0)  # the host dies; its worker is hogging its main thread for 60 s
"""
    done = subprocess.run(
        [sys.executable, "-c", host], capture_output=True, text=True, timeout=60, check=True
    )
    worker = int(done.stdout)
    try:
        pidfd = os.pidfd_open(worker)
    except ProcessLookupError:
        return  # already gone
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        assert poller.poll(30_000), f"worker {worker} outlived its dead host"
    finally:
        os.close(pidfd)


def test_what_a_runs_first_import_loads_is_frozen_in_the_worker() -> None:
    # a fresh executor: no worker of it has imported the module yet
    with ProcessExecutor(max_workers=1) as fresh:
        frozen = fresh.run({"graph": "tests.frozen_import_target:frozen_since_import"})
    assert frozen >= 20_000  # the module's table, frozen after the import


# -- payloads ------------------------------------------------------------------------------------
def test_unserialisable_state_names_its_key_path(ex: ProcessExecutor) -> None:
    pids = set(ex.worker_pids())
    state = {"docs": ["a", "b", "c", threading.Lock()]}
    with pytest.raises(SerializationError, match=r'state\["docs"\]\[3\]'):
        ex.run({"graph": f"{P}:echo", "input": state})
    with pytest.raises(SerializationError, match=r'output\["lock"\].*lock'):
        ex.run({"graph": f"{P}:make_lock"})
    assert set(ex.worker_pids()) == pids
    assert ex.run({"graph": f"{P}:echo", "input": {"docs": [1, 2]}}) == {"docs": [1, 2]}


def test_a_plain_class_is_refused_with_the_register_advice_and_crosses_once_registered(
    ex: ProcessExecutor,
) -> None:
    """A value of no known kind is a SerializationError that advises what exists
    (``@subiso.codec.register``), not pickle, which no executor offers; registered, it
    crosses both ways with its own type."""
    from tests.process_workloads import Registered

    with pytest.raises(
        SerializationError, match=r'output\["p"\]: tests.process_workloads.Opaque'
    ) as e:
        ex.run({"graph": f"{P}:make_opaque", "input": 1})
    assert "@subiso.codec.register" in str(e.value) and "pickle" not in str(e.value)
    out = ex.run({"graph": f"{P}:bump_registered", "input": Registered(1)})
    assert out == {"p": Registered(2)}


def test_aimessage_state_round_trips_equal(ex: ProcessExecutor) -> None:
    messages = [
        HumanMessage(content="Is clause 4 risky?", id="h1"),
        AIMessage(
            content="Checking.",
            id="a1",
            tool_calls=[{"name": "score", "args": {"clause": 4}, "id": "call-1"}],
            additional_kwargs={"note": [1, 2.5, None]},
        ),
        HumanMessage(content="And clause 5?", id="h2"),
    ]
    assert ex.run({"graph": f"{P}:echo", "input": messages}) == messages
    out = ex.run({"graph": f"{P}:chat_graph", "input": {"messages": messages, "turns": 0}})
    assert out["messages"] == [*messages, AIMessage(content="re: And clause 5?", id="ai-3")]
    assert out["turns"] == 1


def test_codec_key_paths_and_round_trip() -> None:
    value = {"a": [1, {"b": (2, 3)}], "msg": AIMessage(content="hi", id="x"), "big": 2**70}
    back = decode(encode(value))
    assert back == value and type(back["a"][1]["b"]) is tuple  # types kept (tests/test_codec.py)
    with pytest.raises(SerializationError, match=r'state\["a"\]\[1\]\["f"\]: builtins.function'):
        encode({"a": [0, {"f": lambda: 1}]}, label="state")
    with pytest.raises(SerializationError, match=r"state\[0\]: _thread.lock"):
        encode([threading.Lock()], label="state")


# -- crashes and runaway nodes ------------------------------------------------------------------
def test_os_exit_fails_only_its_run_and_the_pool_recovers(
    ex: ProcessExecutor, tmp_path: Path
) -> None:
    hold = Hold(tmp_path)
    held = ex.submit(hold.cfg)
    hold.wait_started()  # one worker is busy with it; the crash goes to the other
    with pytest.raises(WorkerCrashed, match="exited with code 3"):
        ex.run({"graph": f"{P}:exit_graph", "input": {"x": 1}})
    hold.let_go()
    assert held.result() == "released"
    assert ex.run({"graph": f"{W}:sync_graph", "input": {"x": 5}}) == {"x": expected(5)}


def test_segfault_fails_its_run_with_the_signal(ex: ProcessExecutor) -> None:
    before = set(ex.worker_pids())
    with pytest.raises(WorkerCrashed, match="SIGSEGV") as info:
        ex.run({"graph": f"{P}:segfault_graph", "input": {"x": 1}})
    crashed = int(str(info.value).split()[2])
    assert crashed in before and not alive(crashed)
    results = list(ex.map({"graph": f"{W}:square", "input": i} for i in range(6)))
    assert results == [i * i for i in range(6)]
    assert crashed not in ex.worker_pids()


def test_cpu_bound_sync_node_past_timeout_gets_worker_replaced() -> None:
    with ProcessExecutor(max_workers=1, kill_grace=0.5) as ex:
        first = ex.run({"graph": f"{P}:pid"})
        with pytest.raises(RunTimeout):
            ex.run({"graph": f"{P}:spin_graph", "input": {"x": 0}, "timeout": 0.3})
        # the tainted worker is retired: a fresh one serves while it is stopped (or killed)
        assert ex.run({"graph": f"{P}:pid"}) != first
        assert ex.run({"graph": f"{W}:sync_graph", "input": {"x": 1}}) == {"x": expected(1)}
    assert not alive(first)


def test_node_hogging_the_worker_loop_is_killed_after_kill_grace() -> None:
    """The caller gets RunTimeout as soon as the run is overdue (control back); the worker,
    whose loop the node holds, is killed after kill_grace and replaced."""
    with ProcessExecutor(max_workers=1, kill_grace=0.5) as ex:
        first = ex.run({"graph": f"{P}:pid"})
        with pytest.raises(RunTimeout, match="did not stop when cancelled"):
            ex.run({"graph": f"{P}:spin_async_graph", "input": {"x": 0}, "timeout": 0.3})
        assert ex.run({"graph": f"{P}:pid"}) != first  # served by its replacement
    assert not alive(first)  # killed after kill_grace; close() waited for it


# -- checkpoints across workers -------------------------------------------------------------------
def test_sqlite_checkpoints_written_by_one_worker_read_by_another(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    cfg = {
        "graph": f"{W}:log_builder",
        "input": {"entries": []},
        "config": {"configurable": {"thread_id": "contract-7"}},
        "checkpointer": db,
    }
    with ProcessExecutor(max_workers=1, max_tasks_per_worker=1) as ex:  # a new worker per run
        runs = [ex.execute(cfg) for _ in range(3)]
    assert [r.output["entries"] for r in runs] == [
        ["run-0"],
        ["run-0", "run-1"],
        ["run-0", "run-1", "run-2"],
    ]
    assert len({r.report.pid for r in runs}) == 3


def test_concurrent_sqlite_setup_by_several_workers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    with ProcessExecutor(max_workers=4, prestart=True) as ex:
        futures = [
            ex.submit_execute(
                {
                    "graph": f"{W}:log_builder",
                    "input": {"entries": []},
                    "config": {"configurable": {"thread_id": f"t{i}"}},
                    "checkpointer": db,
                }
            )
            for i in range(4)
        ]
        results = [f.result() for f in futures]
    assert all(r.output == {"entries": ["run-0"]} for r in results)
    assert len({r.report.pid for r in results}) == 4


# -- lifecycle -------------------------------------------------------------------------------------
def test_recycling_after_n_runs() -> None:
    with ProcessExecutor(max_workers=1, max_tasks_per_worker=2) as ex:
        pids = [ex.run({"graph": f"{P}:pid"}) for _ in range(6)]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert len(set(pids)) == 3
    assert not any(alive(p) for p in pids)


def test_close_drains_and_leaves_no_process_behind() -> None:
    before = workers_below_us()
    ex = get_executor("process", max_workers=2)
    first = ex.execute({"graph": f"{W}:where"})
    assert first.report.pid in workers_below_us()  # the /proc check sees our workers
    cfgs = [{"graph": f"{W}:async_graph", "input": {"x": i}} for i in range(10)]
    futures = [ex.submit_execute(cfg) for cfg in cfgs]
    ex.close(wait=True)
    results = [f.result(timeout=0) for f in futures]
    assert [r.output for r in results] == [{"x": expected(i)} for i in range(10)]
    pids = {first.report.pid} | {r.report.pid for r in results}
    assert not any(alive(p) for p in pids)
    assert workers_below_us() <= before
    with pytest.raises(ExecutorClosed):
        ex.run({"graph": f"{W}:square", "input": 1})


def test_close_without_wait_cancels_queued_runs(tmp_path: Path) -> None:
    hold = Hold(tmp_path)
    ex = ProcessExecutor(max_workers=1, prestart=True)
    (pid,) = ex.worker_pids()
    held = ex.submit(hold.cfg)
    hold.wait_started()
    queued = [ex.submit({"graph": f"{W}:square", "input": i}) for i in range(5)]
    ex.close(wait=False, cancel_pending=True)
    _, not_done = cf.wait(queued, timeout=30)
    assert not not_done and all(f.cancelled() for f in queued)
    hold.let_go()
    assert held.result() == "released"
    assert ex.join(timeout=30)
    assert not alive(pid)


def test_a_sync_callers_run_waiting_in_the_pipe_is_cancelled_by_close_cancel_pending(
    tmp_path: Path,
) -> None:
    """A sync ``run()`` without a timeout waits on a Waiter, not a future: its run, waiting
    unread in a busy worker's pipe, is cancelled by ``close(cancel_pending=True)`` all the
    same - the caller gets CancelledError and the run never starts - while the running one
    finishes."""
    hold = Hold(tmp_path)
    marker = tmp_path / "queued-run-started"
    sent = threading.Event()

    class Watched(ProcessExecutor):
        def _send_all(self, sends: Any) -> None:
            super()._send_all(sends)
            if any(p is not None and p.graph == f"{W}:sleepy" for _, _, p in sends):
                sent.set()

    ex = Watched(max_workers=1, prestart=True)
    (pid,) = ex.worker_pids()
    held = ex.submit(hold.cfg)
    hold.wait_started()
    outcome: dict[str, Any] = {}

    def caller() -> None:
        try:
            outcome["output"] = ex.run({"graph": f"{W}:sleepy", "input": str(marker)})
        except BaseException as exc:
            outcome["error"] = exc

    waiting = threading.Thread(target=caller)
    waiting.start()
    assert sent.wait(60)  # its frame is in the worker's pipe, behind the held run
    ex.close(wait=False, cancel_pending=True)
    waiting.join(60)  # returns before the held run is released: close cancelled it
    assert not waiting.is_alive()
    assert isinstance(outcome.get("error"), cf.CancelledError), outcome
    assert not held.done()
    hold.let_go()
    assert held.result(timeout=60) == "released"
    assert ex.join(timeout=30)
    assert not alive(pid)
    assert not marker.exists()


def test_prestart_preload_and_options() -> None:
    with ProcessExecutor(max_workers=1, prestart=True, preload=[f"{W}:sync_graph", "json"]) as ex:
        assert ex.run({"graph": f"{W}:sync_graph", "input": {"x": 0}}) == {"x": expected(0)}
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        ProcessExecutor(max_workers=1, prestart=True, preload=["no_such_module_xyz"])
    with pytest.raises(ConfigError, match="fork"):
        ProcessExecutor(start_method="fork")
    with pytest.raises(ConfigError, match="max_workers"):
        ProcessExecutor(max_workers=0)


def test_spawn_start_method_gets_the_host_sys_path() -> None:
    with ProcessExecutor(max_workers=1, start_method="spawn") as ex:
        output, report = ex.execute({"graph": f"{W}:square", "input": 9})
    assert output == 81 and not alive(report.pid)
