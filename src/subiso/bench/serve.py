"""The ``serve`` section of ``subiso bench`` (``--sections serve``): ``subiso serve`` next to
``langgraph dev``, LangGraph's in-memory Agent Server.

Measured in interleaved rounds (every server once per round, in rotating order), all servers
serving ``tests/serve_app/langgraph.json`` with 2 workers or job slots:

* ``runs.wait`` of its trivial ``echo`` graph, one run at a time, on one thread and stateless:
  runs/s, p50/p99, time per run as a ratio to ``langgraph dev`` in the same rounds;
* ``GET /ok`` while 4 CPU-bound runs (its ``cpu`` graph) execute: whether the server's loop
  answers while graph code runs.

Contenders: ``subiso serve -e thread`` and ``-e process``; ``langgraph dev`` as shipped
(``--n-jobs-per-worker 2 --no-reload --allow-blocking``); and the same server with its queue
woken when a run is stored. Its queue (``langgraph_runtime_inmem.ops.Runs.next``) polls every
0.5 s and takes "now" *before* sleeping, so a run created during the sleep is skipped by the
poll that follows it: a client sending a run as soon as the previous one ended waits ~1 s per
run. No setting changes that (``N_JOBS_PER_WORKER``, ``BG_JOB_ISOLATED_LOOPS`` do not touch the
poll); the woken contender wraps ``Runs.put`` to set an event the poll waits on (at most its
0.5 s), which is what the server costs per run without its poll interval.

Not a default section: it starts five servers and needs the ``serve`` extra and this
repository. ``langgraph dev`` is ``langgraph`` beside this Python, on ``PATH``, or
``$SUBISO_BENCH_LANGGRAPH`` - ``langgraph-cli[inmem]`` installs on Python 3.13 (not 3.14 yet),
so point it at a 3.13 virtualenv's ``langgraph`` to run it next to a 3.14 subiso. Without it,
its contenders are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from subiso.bench import measure

#: The woken contender: ``langgraph dev`` with its queue's poll woken by ``Runs.put``.
WOKEN = r"""
import asyncio, sys
from langgraph_runtime_inmem import ops

_put, _next, _wake = ops.Runs.put, ops.Runs.next, []

def _event():
    if not _wake:
        _wake.append(asyncio.Event())
    return _wake[0]

async def put(*args, **kwargs):
    created = await _put(*args, **kwargs)
    _event().set()
    return created

async def next_run(wait, limit=1):
    if wait:
        try:
            await asyncio.wait_for(_event().wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    _event().clear()
    async for item in _next(False, limit):
        yield item

ops.Runs.put, ops.Runs.next = staticmethod(put), staticmethod(next_run)
from langgraph_cli.cli import cli
sys.argv[0] = "langgraph"
cli()
"""
THREAD, PROCESS = "subiso serve thread", "subiso serve process"
DEV, WOKEN_DEV = "langgraph dev", "langgraph dev, woken"


class Served:
    """One server subprocess on a free loopback port, its output in ``log``."""

    def __init__(self, argv: list[str], cwd: Path, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd / "server.log"
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=open(self.log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while not self._up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"{argv[0]} did not come up: {' | '.join(tail)}")
            time.sleep(0.2)

    def _up(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/ok", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def langgraph_binary() -> str | None:
    for found in (
        os.environ.get("SUBISO_BENCH_LANGGRAPH"),
        str(Path(sys.executable).with_name("langgraph")),
        shutil.which("langgraph"),
    ):
        if found and Path(found).is_file():
            return found
    return None


def interpreter_of(script: str) -> str:
    """The Python a console script runs on (its ``#!`` line)."""
    first = Path(script).read_bytes().split(b"\n", 1)[0]
    return first[2:].decode().strip() if first.startswith(b"#!") else sys.executable


# -- what a round does ---------------------------------------------------------------------------
def waits(url: str, n: int, *, stateless: bool) -> measure.Round:
    """``n`` runs.wait of ``echo`` one after another: on a fresh thread, or stateless."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None)

    def go() -> list[float]:
        thread_id = None if stateless else client.threads.create()["thread_id"]
        out = []
        for i in range(n):
            start = time.perf_counter()
            result: Any = client.runs.wait(thread_id, "echo", input={"x": i})
            out.append(time.perf_counter() - start)
            if not isinstance(result, dict) or result.get("x") != i * 2 + 1:
                raise RuntimeError(f"{url}: echo({i}) returned {result!r}")
        return out

    return go


def ok_under_load(url: str, cpu_x: int, runs: int = 4) -> measure.Round:
    """``GET /ok`` latencies, one probe every 10 ms, while ``runs`` CPU-bound runs execute."""
    import httpx
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None, timeout=600)

    def go() -> list[float]:
        errors: list[BaseException] = []

        def cpu() -> None:
            try:
                client.runs.wait(None, "cpu", input={"x": cpu_x})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=cpu) for _ in range(runs)]
        for t in threads:
            t.start()
        latencies = []
        with httpx.Client(timeout=60) as http:
            while any(t.is_alive() for t in threads):
                start = time.perf_counter()
                http.get(f"{url}/ok").raise_for_status()
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return latencies

    return go


# -- the section ------------------------------------------------------------------------------------
def section(bench: Any) -> None:
    """Add the serve sections to ``bench`` (a :class:`subiso.bench.engine.Bench`)."""
    from subiso.bench.contenders import PEER, TIER
    from subiso.bench.rounds import Section

    root = bench.root
    config = root / "tests" / "serve_app" / "langgraph.json" if root else None
    if config is None or not config.is_file():
        bench.notes.append(
            "serve: skipped - run subiso bench from the repository (tests/serve_app)"
        )
        return
    try:
        import httpx  # noqa: F401
        import langgraph_sdk  # noqa: F401
    except ImportError as exc:
        bench.notes.append(f"serve: skipped - {exc.name} is missing: pip install 'subiso[serve]'")
        return
    quick = bench.opt.quick
    runs = 5 if quick else 30
    slow_runs = 2 if quick else 5  # langgraph dev as shipped: ~1 s a run
    rounds = bench.opt.n_rounds
    cpu_x = 2_000_000 if quick else 20_000_000
    tmp = Path(tempfile.mkdtemp(prefix="subiso-bench-serve-"))
    servers: dict[str, Served] = {}
    skipped: dict[str, str] = {}
    try:
        bench.progress.section("serve: starting the servers")
        _start(servers, skipped, config, tmp)
        kinds = {name: (PEER if name.startswith("langgraph") else TIER) for name in servers}
        counts = {name: slow_runs if name == DEV else runs for name in servers}
        for stateless in (False, True):
            how = "stateless" if stateless else "on a thread"
            bench.progress.section(f"serve: runs.wait {how}:")
            failed: dict[str, str] = {}
            times, lats = measure.interleaved(
                {n: waits(s.url, counts[n], stateless=stateless) for n, s in servers.items()},
                rounds,
                progress=bench.progress.line,
                failed=failed,
            )
            reference = next((n for n in (WOKEN_DEV, DEV, THREAD) if n in times), None)
            sec = Section(
                "serve", f"runs.wait echo, {how}", 1, runs, rounds, reference or "-",
                skipped={**skipped, **{k: f"failed: {v}" for k, v in failed.items()}},
                note=f"one run at a time; {slow_runs} runs a round for {DEV} (~1 s each)",
            )  # fmt: skip
            for name, per_round in times.items():
                per_run = [t / counts[name] for t in per_round]
                ref = [t / counts[reference] for t in times[reference]] if reference else None
                sec.contenders.append(_summary(name, kinds[name], per_run, lats[name], ref))
            sec.tree_rss_kib = measure.tree_rss_kib()
            bench.sections.append(sec)
        bench.progress.section("serve: GET /ok while 4 CPU-bound runs execute:")
        failed = {}
        load_rounds = 1 if quick else 3
        times, lats = measure.interleaved(
            {n: ok_under_load(s.url, cpu_x) for n, s in servers.items() if n != WOKEN_DEV},
            load_rounds,
            warmup=0,
            progress=bench.progress.line,
            failed=failed,
        )
        base_name = next((n for n in (DEV, THREAD) if n in lats), "-")
        sec = Section(
            "serve", "GET /ok while CPU-bound runs execute", 4, 4, load_rounds, base_name,
            skipped={**skipped, **{k: f"failed: {v}" for k, v in failed.items()}},
            note="one GET /ok every 10 ms while 4 runs of the cpu graph execute; 'us per run' "
            "is the median /ok latency, runs/s is not measured",
        )  # fmt: skip
        base = lats.get(base_name)
        for name, latencies in lats.items():
            d = _summary(name, kinds[name], [measure.median(latencies)], latencies, None)
            d["round_s"] = times[name]
            d["throughput_per_s"] = None
            if base:
                d["ratio"] = measure.median(latencies) / measure.median(base)
            sec.contenders.append(d)
        sec.tree_rss_kib = measure.tree_rss_kib()
        bench.sections.append(sec)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _start(servers: dict[str, Served], skipped: dict[str, str], config: Path, tmp: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("SUBISO_CONFIG", None)
    env.pop("SUBISO_EXECUTOR", None)
    for name, tier in ((THREAD, "thread"), (PROCESS, "process")):
        data, port = tmp / tier, free_port()
        data.mkdir()
        argv = [sys.executable, "-m", "subiso", "serve", str(config), "--port", str(port),
                "--data-dir", str(data), "-e", tier, "--max-workers", "2"]  # fmt: skip
        try:
            servers[name] = Served(argv, data, port, env)
        except RuntimeError as exc:
            skipped[name] = str(exc)
    binary = langgraph_binary()
    if binary is None:
        why = (
            "langgraph-cli[inmem] is not installed beside this Python or on PATH (it installs "
            "on Python 3.13); set SUBISO_BENCH_LANGGRAPH to a langgraph executable"
        )
        skipped[DEV] = skipped[WOKEN_DEV] = why
        return
    dev_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for name, argv0 in ((DEV, [binary]), (WOKEN_DEV, [interpreter_of(binary), "-c", WOKEN])):
        app, port = tmp / name.replace(" ", "-").replace(",", ""), free_port()
        # langgraph dev resolves graph paths against its working directory, and writes there
        shutil.copytree(config.parent, app, ignore=shutil.ignore_patterns("__pycache__"))
        argv = [*argv0, "dev", "--config", str(app / config.name), "--port", str(port),
                "--no-browser", "--no-reload", "--allow-blocking", "--n-jobs-per-worker", "2"]  # fmt: skip
        try:
            servers[name] = Served(argv, app, port, dev_env)
        except RuntimeError as exc:
            skipped[name] = str(exc)


def _summary(
    name: str, kind: str, per_run: list[float], lat: list[float], ref: list[float] | None
) -> dict[str, Any]:
    """A contender row in the engine's shape, from per-round seconds per run."""
    med = measure.median(per_run)
    d: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "round_s": per_run,
        "per_run_us": med * 1e6,
        "throughput_per_s": 1 / med if med else None,
        "p50_ms": _ms(measure.percentile(lat, 50)),
        "p99_ms": _ms(measure.percentile(lat, 99)),
        "ratio": None,
        "ratio_range": None,
    }
    if ref and len(ref) == len(per_run):
        d["ratio"] = med / measure.median(ref)
        per = [a / b for a, b in zip(per_run, ref, strict=True)]
        d["ratio_range"] = [min(per), max(per)]
    return d


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3
