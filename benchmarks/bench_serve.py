"""``subiso serve`` next to ``langgraph dev``: runs/s and p50/p99 of ``runs.wait`` on a trivial
graph, and ``/ok`` latency while 4 CPU-bound runs execute.

    python benchmarks/bench_serve.py [--rounds 5] [--runs 30] [--no-langgraph-dev]

Servers: subiso serve on the thread and the process tier (2 workers each) and, where
``langgraph-cli[inmem]`` is installed (``langgraph`` on PATH or beside this Python),
``langgraph dev`` - all serving tests/serve_app/langgraph.json, each on its own port and data
directory. Rounds are interleaved (every server once per round) and the figures are ratios to
``langgraph dev`` measured in the same run: absolute times drift on small VMs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve_server import CONFIG, Server  # noqa: E402
from tests.services import free_port, wait_for  # noqa: E402

CPU_X = 20_000_000  # a few seconds of pure-Python arithmetic per run


class LanggraphDev:
    def __init__(self, binary: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "langgraph-dev.log"
        app = data_dir / "app"  # langgraph dev resolves graph paths against its working directory
        shutil.copytree(CONFIG.parent, app, ignore=shutil.ignore_patterns("__pycache__"))
        self.proc = subprocess.Popen(
            [binary, "dev", "--config", str(app / CONFIG.name), "--port", str(self.port), "--no-browser",
             "--no-reload", "--allow-blocking"],
            cwd=app, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )  # fmt: skip
        wait_for(
            lambda: httpx.get(f"{self.url}/ok", timeout=2).status_code == 200,
            "langgraph dev",
            120,
            self.proc,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def waits(url: str, n: int, *, stateless: bool = False) -> list[float]:
    """``n`` runs one after another: on one thread, or stateless (``/runs/wait``)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None)
    thread_id = None if stateless else client.threads.create()["thread_id"]
    out = []
    for i in range(n):
        start = time.perf_counter()
        result = client.runs.wait(thread_id, "echo", input={"x": i})
        out.append(time.perf_counter() - start)
        assert result["x"] == i * 2 + 1, result
    return out


def ok_under_load(url: str, probes: int = 40) -> list[float]:
    """/ok latencies while 4 CPU-bound runs execute (each waited for by its own thread)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None, timeout=600)
    threads = [
        threading.Thread(
            target=client.runs.wait, args=(None, "cpu"), kwargs={"input": {"x": CPU_X}}
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let the runs start (a benchmark, not a test: no assertion rests on it)
    latencies = []
    with httpx.Client(timeout=30) as http:
        for _ in range(probes):
            start = time.perf_counter()
            http.get(f"{url}/ok")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    for t in threads:
        t.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-langgraph-dev", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    servers: dict[str, Any] = {
        "subiso thread": Server(tmp / "thread", "-e", "thread", "--max-workers", "2"),
        "subiso process": Server(tmp / "process", "-e", "process", "--max-workers", "2"),
    }
    binary = shutil.which("langgraph") or str(Path(sys.executable).with_name("langgraph"))
    if not args.no_langgraph_dev and Path(binary).exists():
        (tmp / "dev").mkdir()
        servers["langgraph dev"] = LanggraphDev(binary, tmp / "dev")
    else:
        print("langgraph dev: not installed here (pip install 'langgraph-cli[inmem]'); skipped")
    try:
        for server in servers.values():
            waits(server.url, 3)  # warm: workers started, graphs imported
        times: dict[tuple[str, bool], list[float]] = {}
        per_round: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.rounds):
            for stateless in (False, True):
                for name, server in servers.items():
                    batch = waits(server.url, args.runs, stateless=stateless)
                    times.setdefault((name, stateless), []).extend(batch)
                    per_round.setdefault((name, stateless), []).append(statistics.fmean(batch))
        ok: dict[str, list[float]] = {}
        for name, server in servers.items():
            ok[name] = ok_under_load(server.url)
        base = "langgraph dev" if "langgraph dev" in servers else "subiso thread"
        print(f"\nruns.wait, trivial graph, 1 at a time ({args.rounds} rounds x {args.runs} runs, "
              f"Python {sys.version.split()[0]}); ratios to {base} in the same rounds")  # fmt: skip
        print("| server | run | runs/s | p50 ms | p99 ms | time per run x base (per-round range) |")
        print("|---|---|---|---|---|---|")
        for stateless in (False, True):
            for name in servers:
                key, ref = (name, stateless), (base, stateless)
                ratios = [a / b for a, b in zip(per_round[key], per_round[ref], strict=True)]
                mean = statistics.fmean(times[key])
                print(
                    f"| {name} | {'stateless' if stateless else 'on a thread'} | {1 / mean:.0f} | "
                    f"{percentile(times[key], 0.5) * 1e3:.1f} | "
                    f"{percentile(times[key], 0.99) * 1e3:.1f} | "
                    f"{statistics.fmean(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
                )
        print("\nGET /ok while 4 CPU-bound runs execute")
        print("| server | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|")
        for name, lat in ok.items():
            print(
                f"| {name} | {percentile(lat, 0.5) * 1e3:.1f} | {percentile(lat, 0.99) * 1e3:.1f} | "
                f"{max(lat) * 1e3:.1f} |"
            )
    finally:
        for server in servers.values():
            if isinstance(server, Server):
                server.terminate()
            else:
                server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
