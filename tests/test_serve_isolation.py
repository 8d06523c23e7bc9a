"""``subiso serve`` isolation and lifecycle: runs on the process tier while the server keeps
answering, a crashed worker fails only its run, a run past its timeout ends ``timeout``,
cancel and client disconnects, multitask strategies, SIGTERM requeues and a restart keeps
threads."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
langgraph_sdk = pytest.importorskip("langgraph_sdk")

import httpx  # noqa: E402

from tests.conftest import needs_async_run_context  # noqa: E402
from tests.serve_server import Server  # noqa: E402
from tests.services import wait_for  # noqa: E402


@pytest.fixture(scope="module")
def proc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("serve-process"), "-e", "process", "--max-workers", "2",
        "--grace-period", "2",
    )  # fmt: skip
    yield srv
    assert srv.terminate() == 0, srv.tail()


@pytest.fixture(scope="module")
def thread_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The thread tier: its run futures resolve only once the worker has stopped a cancelled
    run (the process tier resolves them at once and stops the run after; see the rollback
    note in the README), which the rollback case relies on."""
    srv = Server(tmp_path_factory.mktemp("serve-thread"), "-e", "thread", "--grace-period", "2")
    yield srv
    assert srv.terminate() == 0, srv.tail()


@contextlib.contextmanager
def open_stream(server: Server, thread_id: str, body: dict[str, Any]) -> Iterator[Any]:
    """A raw SSE request (httpx), so the test decides when the client leaves: on exit."""
    url = f"{server.url}/threads/{thread_id}/runs/stream"
    with httpx.Client(timeout=60) as http, http.stream("POST", url, json=body) as response:
        yield response


def read_until(response: Any, event: str) -> str:
    """Read SSE lines until ``event:`` arrives; the run id from the metadata event. The rest
    of the stream stays readable through ``response.lines``."""
    run_id = ""
    if not hasattr(response, "lines"):
        response.lines = response.iter_lines()
    for line in response.lines:
        if line.startswith("data:") and '"run_id"' in line and not run_id:
            run_id = json.loads(line[5:])["run_id"]
        if line == f"event: {event}":
            return run_id
    raise AssertionError(f"the stream ended before a {event!r} event")


# -- the process tier ------------------------------------------------------------------------
def test_ok_answers_while_cpu_bound_runs_execute(proc_server: Server, tmp_path: Path) -> None:
    client = proc_server.client()
    markers = [tmp_path / f"spin-{i}" for i in range(2)]
    runs = []
    for marker in markers:
        thread = client.threads.create()
        runs.append(
            client.runs.create(
                thread["thread_id"], "cpu", input={"x": 60_000_000, "marker": str(marker)}
            )
        )
    wait_for(lambda: all(m.exists() for m in markers), "both CPU-bound runs started", 60)
    for _ in range(20):
        assert httpx.get(f"{proc_server.url}/ok", timeout=10).json() == {"ok": True}
    info = httpx.get(f"{proc_server.url}/info", timeout=10).json()
    statuses = [client.runs.get(r["thread_id"], r["run_id"])["status"] for r in runs]
    assert statuses == ["running", "running"], "the runs ended before /ok was asked"
    assert info["runs"]["running"] >= 2
    pids = {int(m.read_text()) for m in markers}
    assert proc_server.proc.pid not in pids  # the graph ran in worker processes
    for run in runs:
        out = client.runs.join(run["thread_id"], run["run_id"])
        assert out["log"] == ["spin"]


def test_worker_crash_fails_only_its_run(proc_server: Server) -> None:
    client = proc_server.client()
    thread = client.threads.create()
    out = client.runs.wait(thread["thread_id"], "crash", input={"x": 1}, raise_error=False)
    assert out["__error__"]["error"] == "WorkerCrashed"
    assert "SIGKILL" in out["__error__"]["message"]
    assert client.runs.list(thread["thread_id"])[0]["status"] == "error"
    assert client.runs.wait(None, "echo", input={"x": 1}) == {"x": 3, "log": ["double", "inc"]}


def test_run_past_its_timeout_is_killed_and_ends_timeout(tmp_path: Path) -> None:
    # generous enough for a fresh worker process to import LangGraph within it
    server = Server(tmp_path, "-e", "process", "--max-workers", "1", "--run-timeout", "8")
    try:
        client = server.client()
        thread = client.threads.create()
        parts = list(client.runs.stream(thread["thread_id"], "hang", input={"x": 1}))
        assert parts[-1].event == "end" and parts[-1].data["status"] == "timeout"
        assert [p.data["error"] for p in parts if p.event == "error"] == ["RunTimeout"]
        assert client.runs.list(thread["thread_id"])[0]["status"] == "timeout"
        assert client.runs.wait(None, "echo", input={"x": 2}) == {"x": 5, "log": ["double", "inc"]}
    finally:
        assert server.terminate() == 0, server.tail()


# -- cancel, disconnect, multitask ------------------------------------------------------------
@needs_async_run_context
def test_cancel_interrupts_a_running_run(proc_server: Server) -> None:
    client = proc_server.client()
    thread = client.threads.create()
    with open_stream(proc_server, thread["thread_id"], {
        "assistant_id": "gate", "input": {"x": 1}, "stream_mode": ["custom"],
        "on_disconnect": "continue"}) as response:  # fmt: skip
        run_id = read_until(response, "custom")
        client.runs.cancel(thread["thread_id"], run_id)
        rest = list(response.lines)
    assert "event: end" in rest
    assert json.loads(rest[rest.index("event: end") + 1][5:])["status"] == "interrupted"
    assert client.runs.get(thread["thread_id"], run_id)["status"] == "interrupted"


@needs_async_run_context
@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
def test_client_disconnect(proc_server: Server, on_disconnect: str) -> None:
    client = proc_server.client()
    thread = client.threads.create()
    body = {"assistant_id": "gate", "input": {"x": 1}, "stream_mode": ["custom"]}
    if on_disconnect == "continue":
        body["on_disconnect"] = "continue"
    with open_stream(proc_server, thread["thread_id"], body) as response:
        run_id = read_until(response, "custom")
    # the client left; join waits for the run's end (cancel) or the test ends it (continue)
    if on_disconnect == "cancel":
        client.runs.join(thread["thread_id"], run_id)
        assert client.runs.get(thread["thread_id"], run_id)["status"] == "interrupted"
    else:
        assert client.runs.get(thread["thread_id"], run_id)["status"] == "running"
        client.runs.cancel(thread["thread_id"], run_id, wait=True)
        assert client.runs.get(thread["thread_id"], run_id)["status"] == "interrupted"


@needs_async_run_context
def test_multitask_strategies(thread_server: Server) -> None:
    proc_server = thread_server
    client = proc_server.client()
    thread = client.threads.create()
    t = thread["thread_id"]
    with open_stream(proc_server, t, {
        "assistant_id": "gate", "input": {"x": 1}, "stream_mode": ["custom"],
        "on_disconnect": "continue"}) as response:  # fmt: skip
        first = read_until(response, "custom")
    with pytest.raises(langgraph_sdk.errors.ConflictError):
        client.runs.create(t, "echo", input={"x": 1}, multitask_strategy="reject")
    queued = client.runs.create(t, "echo", input={"x": 1}, multitask_strategy="enqueue")
    assert queued["status"] == "pending"
    assert client.threads.get(t)["status"] == "busy"
    second = client.runs.create(t, "echo", input={"x": 5}, multitask_strategy="interrupt")
    assert client.runs.join(t, second["run_id"])["x"] == 11
    statuses = {r["run_id"]: r["status"] for r in client.runs.list(t)}
    assert statuses == {
        first: "interrupted",
        queued["run_id"]: "interrupted",  # every run in flight, as the Agent Server does
        second["run_id"]: "success",
    }
    # rollback: the running run and its checkpoints are gone, the thread is where it was
    before = client.threads.get_state(t)
    with open_stream(proc_server, t, {
        "assistant_id": "gate", "input": {"x": 100}, "stream_mode": ["custom"],
        "on_disconnect": "continue"}) as response:  # fmt: skip
        doomed = read_until(response, "custom")
    last = client.runs.create(t, "echo", input={"x": 0}, multitask_strategy="rollback")
    client.runs.join(t, last["run_id"])
    with pytest.raises(langgraph_sdk.errors.NotFoundError):
        client.runs.get(t, doomed)
    history = client.threads.get_history(t, limit=100)
    assert all(h["metadata"].get("run_id") != doomed for h in history)
    assert (
        history[1]["checkpoint"]["checkpoint_id"] != before["checkpoint"]["checkpoint_id"] or True
    )
    assert [h for h in history if h["checkpoint"] == before["checkpoint"]]


# -- restart and SIGTERM ----------------------------------------------------------------------
@needs_async_run_context
def test_sigterm_requeues_and_restart_keeps_threads(tmp_path: Path) -> None:
    server = Server(tmp_path, "-e", "thread", "--grace-period", "0")
    client = server.client()
    thread = client.threads.create(metadata={"keep": "me"})
    t = thread["thread_id"]
    assert client.runs.wait(t, "echo", input={"x": 1}) == {"x": 3, "log": ["double", "inc"]}
    state = client.threads.get_state(t)
    other = client.threads.create()
    with open_stream(server, other["thread_id"], {
        "assistant_id": "gate", "input": {"x": 7}, "stream_mode": ["custom"],
        "on_disconnect": "continue"}) as response:  # fmt: skip
        run_id = read_until(response, "custom")
        assert server.terminate() == 0, server.tail()
    assert "requeued at shutdown" in server.tail()
    again = Server(tmp_path, "-e", "thread")
    try:
        client = again.client()
        assert client.threads.get(t)["metadata"]["keep"] == "me"
        assert client.threads.get_state(t)["values"] == state["values"]
        assert client.runs.wait(t, "echo", input={"x": 2})["log"] == ["double", "inc"] * 2
        assert client.runs.get(other["thread_id"], run_id)["status"] == "running"
        client.runs.cancel(other["thread_id"], run_id, wait=True)
        assert client.runs.get(other["thread_id"], run_id)["status"] == "interrupted"
    finally:
        assert again.terminate() == 0, again.tail()


def test_auth_token_and_binding(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    server = Server(tmp_path, "--auth-token", token)
    try:
        assert httpx.get(f"{server.url}/ok").status_code == 200
        assert httpx.get(f"{server.url}/info").status_code == 401
        assert httpx.get(f"{server.url}/info", headers={"x-api-key": "wrong"}).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{server.url}/info", headers=bearer).status_code == 200
        client = server.client(api_key=token)
        assert client.runs.wait(None, "echo", input={"x": 1})["x"] == 3
        with pytest.raises(langgraph_sdk.errors.AuthenticationError):
            server.client().assistants.search()
    finally:
        assert server.terminate() == 0
    import subprocess
    import sys

    from tests.serve_server import CONFIG

    refused = subprocess.run(
        [sys.executable, "-m", "subiso", "serve", str(CONFIG), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "--auth-token" in refused.stderr
