"""``subiso serve --queue``: runs as Celery tasks on real workers, events over Redis pub/sub,
rows, checkpoints and the store in PostgreSQL - driven with the official client and RemoteGraph.

Real services (tests/services.py): one Redis, one PostgreSQL, two ``celery worker`` processes
(prefork, two children each, thread tier) and two servers sharing them. The route tests of
test_serve.py run again here against a queue-mode server (same calls, same expected values as
plain LangGraph); the tests below add what only queue mode has: runs on the workers, two
servers on one thread, cancel reaching the worker, a killed worker's run continued from its
last checkpoint, and the request's trace and run id on the worker.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("psycopg")
pytest.importorskip("starlette")
langgraph_sdk = pytest.importorskip("langgraph_sdk")

from tests.conftest import needs_async_run_context  # noqa: E402
from tests.serve_server import APP, Server  # noqa: E402
from tests.services import CeleryWorker, create_database, wait_for  # noqa: E402

# The route tests, run here with this module's `server` and `client` (queue mode).
from tests.test_serve import (  # noqa: E402, F401
    test_background_run_join_get_list_delete,
    test_errors_equal_langgraph,
    test_interrupt_and_resume_equal_langgraph,
    test_messages_and_custom_modes,
    test_remote_graph_equals_langgraph,
    test_remote_graph_interrupt_resume,
    test_remote_graph_raises_the_error,
    test_state_history_and_update_equal_langgraph,
    test_store_routes_and_graph_store_are_one,
    test_stream_events_equal_langgraph,
    test_wait_equals_invoke,
)

OBSERVE = APP / "observe.json"

#: CI time: this module starts Redis, PostgreSQL, two Celery workers and three servers (~90 s a
#: Python), so it runs on two Pythons: 3.11, the oldest where every test here runs (3.10's
#: LangGraph cannot stream from async nodes), and 3.14, the newest. What it exercises beyond
#: them - Celery, redis-py, psycopg, asyncio - is the same code on every Python, and the local
#: server's tests (test_serve*.py) and Celery's (test_celery.py) run on all five.
QUEUE_PYTHONS = ((3, 11), (3, 14))
pytestmark = pytest.mark.skipif(
    sys.version_info[:2] not in QUEUE_PYTHONS and not os.environ.get("SUBISO_QUEUE_TESTS"),
    reason="queue mode is tested on Python 3.11 and 3.14 (CI time); SUBISO_QUEUE_TESTS=1 runs "
    "it here",
)


@pytest.fixture(scope="module")
def database(postgres_url: str) -> str:
    return create_database(postgres_url, "serve_queue")


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """Two Celery workers on the default queue (where the servers send), 2 children each."""
    workdir = tmp_path_factory.mktemp("serve-queue-workers")
    started: list[CeleryWorker] = []
    try:
        for name in ("serve-w1", "serve-w2"):
            started.append(
                CeleryWorker(
                    redis_url, workdir, pool="prefork", tier="thread", name=name,
                    queue="celery", graphs=("graphs:*", "observe_workloads:*"),
                    path=(str(APP), str(APP.parent)),
                )
            )  # fmt: skip
        yield started
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.terminate()
        for w in started:
            w.stop()


def queue_server(
    root: Path, redis_url: str, database: str, *, config: Path | None = None, **kw: Any
) -> Server:
    args = ("--queue", f"{redis_url}/0", "--database", database)
    return Server(root, *args, **({"config": config} if config else {}), **kw)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database: str, workers: Any
) -> Iterator[Server]:
    srv = queue_server(tmp_path_factory.mktemp("serve-queue-a"), redis_url, database)
    yield srv
    code = srv.terminate()
    assert code == 0, srv.tail()


@pytest.fixture(scope="module")
def second(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database: str, server: Server
) -> Iterator[Server]:
    """A second server on the same Redis and PostgreSQL."""
    srv = queue_server(tmp_path_factory.mktemp("serve-queue-b"), redis_url, database)
    yield srv
    code = srv.terminate()
    assert code == 0, srv.tail()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return server.client()


def worker_children(workers: list[CeleryWorker]) -> set[int]:
    return {pid for w in workers for pid in w.child_pids()}


def dump_logs(workers: list[CeleryWorker], *servers: Server) -> str:
    return "\n".join([*(w.tail(40) for w in workers), *(s.tail(40) for s in servers)])


# -- where runs execute ----------------------------------------------------------------------------
def test_runs_execute_on_the_workers(
    server: Server, client: Any, workers: Any, tmp_path: Path
) -> None:
    import httpx

    assert httpx.get(f"{server.url}/info").json()["tier"] == "celery"
    pids = set()
    for i in range(4):
        marker = tmp_path / f"cpu-{i}"
        out = client.runs.wait(None, "cpu", input={"x": 1000, "marker": str(marker)})
        assert out["log"] == ["spin"]
        pids.add(int(marker.read_text()))
    assert pids <= worker_children(workers), dump_logs(workers, server)
    assert server.proc.pid not in pids


# -- two servers, one thread -----------------------------------------------------------------------
def test_two_servers_serve_one_thread(server: Server, second: Server) -> None:
    a, b = server.client(), second.client()
    thread = a.threads.create(metadata={"made_on": "a"})
    t = thread["thread_id"]
    assert b.threads.get(t)["metadata"] == {"made_on": "a"}
    assert a.runs.wait(t, "echo", input={"x": 1}) == {"x": 3, "log": ["double", "inc"]}
    # b continues the thread a ran: the checkpoints are shared
    assert b.runs.wait(t, "echo", input={"x": 5}) == {
        "x": 11,
        "log": ["double", "inc", "double", "inc"],
    }
    assert a.threads.get_state(t)["values"] == b.threads.get_state(t)["values"]
    assert len(a.threads.get_history(t)) == len(b.threads.get_history(t))
    # a run created on a, joined on b
    run = a.runs.create(t, "nested", input={"x": 1})
    joined = list(b.runs.join_stream(t, run["run_id"]))
    assert joined[-1].event == "end"
    assert b.runs.join(t, run["run_id"])["x"] == 5
    assert [r["status"] for r in a.runs.list(t)] == ["success"] * 3
    assert b.runs.get(t, run["run_id"])["status"] == "success"


@needs_async_run_context
def test_paused_on_one_server_resumed_on_the_other(server: Server, second: Server) -> None:
    a, b = server.client(), second.client()
    t = a.threads.create()["thread_id"]
    parts = list(b.runs.stream(t, "ask", input={"x": 1}, stream_mode="updates"))
    assert parts[-1].event == "end" and parts[-1].data["status"] == "success"
    assert a.threads.get(t)["status"] == "interrupted"
    assert a.threads.get_state(t)["next"] == ["ask"]
    run = a.runs.create(t, "ask", command={"resume": "ok"})
    assert b.runs.join(t, run["run_id"])["answer"] == "ok"
    assert b.threads.get(t)["status"] == "idle"


# -- cancel ------------------------------------------------------------------------------------------
class Follower:
    """``client.runs.stream`` read on a thread of its own: its parts arrive in ``parts``."""

    def __init__(self, client: Any, thread_id: str | None, graph: str, **kwargs: Any) -> None:
        self.parts: queue.Queue[Any] = queue.Queue()

        def read() -> None:
            try:
                for part in client.runs.stream(thread_id, graph, **kwargs):
                    self.parts.put(part)
            except BaseException as exc:
                self.parts.put(exc)
            self.parts.put(None)

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()

    def until(self, event: str) -> Any:
        """The first part named ``event`` (every part before it read and dropped)."""
        while True:
            part = self.parts.get(timeout=90)
            if part is None or isinstance(part, BaseException):
                raise AssertionError(f"the stream ended before {event!r}: {part!r}")
            if part.event == event:
                return part

    def rest(self) -> list[Any]:
        out = []
        while (part := self.parts.get(timeout=90)) is not None:
            assert not isinstance(part, BaseException), part
            out.append(part)
        return out


@needs_async_run_context  # the gate graph's node writes to the stream (get_stream_writer)
def test_cancel_reaches_the_worker(server: Server, second: Server, workers: Any) -> None:
    """A run waiting forever on a worker, cancelled through the other server: the worker
    stops it and writes its end (nothing else could: no server supervises it)."""
    a, b = server.client(), second.client()
    t = a.threads.create()["thread_id"]
    follow = Follower(a, t, "gate", input={"x": 1}, stream_mode=["custom", "updates"])
    run_id = follow.until("metadata").data["run_id"]
    assert follow.until("custom").data == {"started": 2}
    assert b.runs.get(t, run_id)["status"] == "running"
    b.runs.cancel(t, run_id, wait=True)
    end = follow.rest()[-1]
    assert end.event == "end" and end.data["status"] == "interrupted", dump_logs(workers, server)
    assert a.runs.get(t, run_id)["status"] == "interrupted"
    # the thread is free again, and a multitask interrupt also reaches the worker
    follow = Follower(a, t, "gate", input={"x": 5}, stream_mode="custom")
    first = follow.until("metadata").data["run_id"]
    follow.until("custom")
    echo = b.runs.create(t, "echo", input={"x": 1}, multitask_strategy="interrupt")
    assert b.runs.join(t, echo["run_id"])["x"] == 3
    assert follow.rest()[-1].data["status"] == "interrupted"
    assert a.runs.get(t, first)["status"] == "interrupted"


@needs_async_run_context
def test_cancel_before_a_worker_takes_the_run(server: Server, workers: Any) -> None:
    """Every worker child busy: a run sent meanwhile waits in the broker; cancelled there, it
    ends when a child takes it, without running a node."""
    client = server.client()
    slots = sum(len(w.child_pids()) for w in workers)
    holders = []
    for _ in range(slots):
        t = client.threads.create()["thread_id"]
        follow = Follower(client, t, "gate", input={"x": 1}, stream_mode="custom")
        run_id = follow.until("metadata").data["run_id"]
        follow.until("custom")  # it runs: a child is taken
        holders.append((t, run_id, follow))
    waiting_t = client.threads.create()["thread_id"]
    waiting = client.runs.create(waiting_t, "echo", input={"x": 1})
    assert client.runs.get(waiting_t, waiting["run_id"])["status"] == "running"  # sent
    client.runs.cancel(waiting_t, waiting["run_id"])
    for t, run_id, follow in holders:
        client.runs.cancel(t, run_id)
        assert follow.rest()[-1].data["status"] == "interrupted"
    assert client.runs.join(waiting_t, waiting["run_id"]) == {}
    assert client.runs.get(waiting_t, waiting["run_id"])["status"] == "interrupted"
    assert client.threads.get_state(waiting_t)["checkpoint"] is None  # no step ran


# -- a killed worker ---------------------------------------------------------------------------------
def test_killed_worker_child_run_continues_from_its_last_checkpoint(
    server: Server, second: Server, workers: Any, tmp_path: Path
) -> None:
    """Node n3 blocks on its first attempt; the test SIGKILLs the Celery child running it.
    Celery puts the task back, another child continues the run after n2: every node ran to
    completion exactly once."""
    client = server.client()
    log, marker = tmp_path / "steps.log", tmp_path / "n3.pid"
    t = client.threads.create()["thread_id"]
    run = client.runs.create(
        t, "steps", input={"log": str(log), "marker": str(marker)}, durability="sync"
    )
    wait_for(lambda: marker.exists() and marker.read_text().strip(), "node n3 started", 90)
    killed = int(marker.read_text())
    assert killed in worker_children(workers)
    os.kill(killed, signal.SIGKILL)
    out = second.client().runs.join(t, run["run_id"])
    assert out["done"] == ["n1", "n2", "n3", "n4"], dump_logs(workers, server, second)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [name for name, _ in lines] == ["n1", "n2", "n3", "n4"]  # each completed once
    assert int(lines[2][1]) != killed  # n3 completed on another child
    assert client.runs.get(t, run["run_id"])["status"] == "success"


@needs_async_run_context
def test_killed_resume_continues_with_its_command(
    server: Server, workers: Any, tmp_path: Path
) -> None:
    """A resume (``Command(resume=...)``) whose worker child is killed in the resumed node,
    before the run saved anything (durability "exit"): the redelivery resumes with the same
    command - it does not take the previous run's pause, the thread's last checkpoint, for its
    own progress (and pause again, the answer lost)."""
    client = server.client()
    marker = tmp_path / "ask.pid"
    t = client.threads.create()["thread_id"]
    paused = client.runs.wait(t, "ask", input={"x": 1, "marker": str(marker)})
    assert paused["__interrupt__"][0]["value"] == {"question": "approve?", "x": 2}
    run = client.runs.create(t, "ask", command={"resume": "yes"}, durability="exit")
    wait_for(lambda: marker.exists() and marker.read_text().strip(), "node ask resumed")
    os.kill(int(marker.read_text()), signal.SIGKILL)
    out = client.runs.join(t, run["run_id"])
    assert out == {"x": 12, "log": ["inc", "ask", "after"], "answer": "yes", "marker": str(marker)}
    assert client.threads.get(t)["status"] == "idle"


# -- what makes a run visible ------------------------------------------------------------------------
def test_the_request_trace_and_run_id_reach_the_worker(
    tmp_path: Path, redis_url: str, postgres_url: str, workers: Any
) -> None:
    # servers sharing a database serve the same langgraph.json: this one has its own
    database = create_database(postgres_url, "serve_queue_observe")
    srv = queue_server(tmp_path / "observe", redis_url, database, config=OBSERVE)
    try:
        trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        client = srv.client(headers={"traceparent": f"00-{trace_id}-{span_id}-01"})
        t = client.threads.create()["thread_id"]
        run = client.runs.create(t, "probe", input={"x": 1})
        out = client.runs.join(t, run["run_id"])
        assert "seen" in out, (out, dump_logs(workers, srv))
        seen = out["seen"]
        assert seen["run_id"] == run["run_id"]  # subiso's run id is the server's
        assert seen["otel_trace_id"] == trace_id and seen["otel_span_id"] == span_id
        assert seen["pid"] in worker_children(workers)
    finally:
        srv.kill()


def test_queue_needs_postgresql_and_redis(tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "subiso", "serve", str(APP / "langgraph.json"), *args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip

    missing = serve("--queue", "redis://127.0.0.1:1/0")
    assert missing.returncode == 2 and "--queue needs --database postgresql://" in missing.stderr
    wrong = serve("--queue", "amqp://x", "--database", "postgresql://x/y")
    assert wrong.returncode == 2 and "expected a Redis URL" in wrong.stderr
