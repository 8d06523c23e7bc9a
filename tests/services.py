"""Real Redis, PostgreSQL and Celery workers for the distributed tests: no mocks.

Session fixtures start Redis and PostgreSQL on 127.0.0.1, on free ports, in temporary
directories (PostgreSQL as the ``postgres`` user when run as root: its server refuses root) and
stop them at the end. A missing binary skips the tests that need it, with the reason - unless
``CI=true``, where it fails them. ``.ci/run`` installs both from Debian.

:class:`CeleryWorker` runs a real ``celery worker`` subprocess (``examples.celery_app``) with
its own queue, pool and settings file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip on a user's machine; fail in CI, where every service must be present."""
    if IN_CI:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, what: str, bound_s: float = 30.0, proc: Any = None) -> None:
    deadline = time.monotonic() + bound_s
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {bound_s:g}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], bound_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(bound_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- Redis -------------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="subiso-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        wait_for(client.ping, f"redis-server on port {port}", proc=proc)
        client.close()
        yield url
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed "
            "(apt-get install postgresql)"
        )
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no 'postgres' user to run PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="subiso-pg-"))
    data = tmp / "data"
    if as_user:
        shutil.chown(tmp, "postgres", "postgres")
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    run = lambda *a: subprocess.run(  # noqa: E731
        [*as_user, *a], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        opts = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL failed to start: {exc.stderr.decode()[-2000:]}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """A fresh database on the server at ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


# -- Celery workers ----------------------------------------------------------------------------
class CeleryWorker:
    """One ``celery worker`` subprocess on its own queue, with its own subiso settings."""

    def __init__(
        self,
        broker: str,
        workdir: Path,
        *,
        pool: str,
        tier: str,
        concurrency: int = 2,
        name: str | None = None,
        settings: str = "",
        queue: str | None = None,
        allow: bool = True,
        app: str = "examples.celery_app",
        graphs: tuple[str, ...] = (),
        path: tuple[str, ...] = (),
    ) -> None:
        """``graphs``: more ``allowed_graphs`` patterns; ``path``: more ``PYTHONPATH``
        entries (where those graphs import from)."""
        self.pool, self.tier = pool, tier
        self.name = name or f"{pool}-{tier}"
        self.queue = queue or f"q-{self.name}"
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        patterns = [
            "tests.dist_workloads:*",
            "examples.contract_review.graph:*",
            "tests.observe_workloads:*",
            *graphs,
        ]
        allowed = (
            f"allowed_graphs = {json.dumps(patterns)}\n"
            f'allowed_locations = ["sqlite:///{workdir}/*", "postgresql://*"]\n'
        )
        (self.workdir / "subiso.toml").write_text(
            f'executor = "{tier}"\nmax_workers = 2\n' + (allowed if allow else "") + settings
        )
        self.log = self.workdir / "worker.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *path, os.environ.get("PYTHONPATH", "")]),
            "SUBISO_BROKER": f"{broker}/0",
            "SUBISO_BACKEND": f"{broker}/1",
            "SUBISO_CONFIG": str(self.workdir / "subiso.toml"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("SUBISO_EXECUTOR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-n",
                f"{self.name}@%h",
                "-Q",
                self.queue,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=self.workdir,
            env=env,
            stdout=open(self.log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: b" ready." in self.log.read_bytes(),
                f"celery worker {self.name}",
                bound_s=60,
                proc=self.proc,
            )
        except BaseException:
            self.stop()
            raise

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        stop(self.proc, 30)
        # whatever is left of its process group (workers die with their hosts; belt and braces)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def celery_client(redis_url: str) -> Any:
    """The example app, pointed at this Redis (the app module reads its env at import)."""
    os.environ["SUBISO_BROKER"] = f"{redis_url}/0"
    os.environ["SUBISO_BACKEND"] = f"{redis_url}/1"
    from examples.celery_app.app import app

    app.conf.broker_url = f"{redis_url}/0"
    app.conf.result_backend = f"{redis_url}/1"
    return app


# -- a LangSmith API of our own: what the client posts, kept for the test ------------------------
class LangSmithSink:
    """A local HTTP server answering as LangSmith's API does for tracing, keeping every run
    the client posts (``/runs``, ``/runs/batch``, ``/runs/multipart``): ``(name, trace_id)``."""

    def __init__(self) -> None:
        import http.server
        import threading

        sink = self
        self.runs: set[tuple[str, str]] = set()
        self._cond = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"{}") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/info"):
                    self._reply(200, b'{"version": "0.10.0", "instance_flags": {}}')
                else:
                    self._reply(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink._keep(self.headers.get("Content-Type", ""), body)
                self._reply(202 if "multipart" in self.path else 200)

            do_PATCH = do_POST

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _keep(self, content_type: str, body: bytes) -> None:
        import email.parser
        import json

        docs: list[Any] = []
        if "multipart" in content_type:
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            for part in message.walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    with contextlib.suppress(ValueError):
                        docs.append(json.loads(payload))
        else:
            with contextlib.suppress(ValueError):
                doc = json.loads(body)
                docs.extend(
                    [*doc.get("post", []), *doc.get("patch", [])] if "post" in doc else [doc]
                )
        with self._cond:
            for doc in docs:
                if isinstance(doc, dict) and doc.get("trace_id") and doc.get("name"):
                    self.runs.add((str(doc["name"]), str(doc["trace_id"])))
            self._cond.notify_all()

    def wait_for(self, wanted: set[tuple[str, str]], timeout: float = 60) -> set[tuple[str, str]]:
        """Every run posted, once all of ``wanted`` have come (or the bound)."""
        with self._cond:
            self._cond.wait_for(lambda: wanted <= self.runs, timeout)
            return set(self.runs)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def langsmith_sink() -> Iterator[LangSmithSink]:
    sink = LangSmithSink()
    try:
        yield sink
    finally:
        sink.close()
