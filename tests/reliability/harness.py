"""The soak harness: a deterministic mix of runs, a driver keeping ``concurrency`` of them in
flight from sync and async callers at once, and real measurements of what an executor holds.

* :func:`mix` - ``n`` jobs cycling through every kind of run (sync and async graphs, workflow
  functions, runs with a ``memory`` or ``sqlite`` checkpointer and their own ``thread_id``, runs
  whose node raises) and every call style (``run``, ``submit``, ``stream`` from threads;
  ``arun``, ``astream`` from an event loop), each with the exact output it must produce - or the
  exact exception.
* :func:`drive` - half the lanes are threads, half are tasks on one event loop (its own
  thread); each takes the next job of its side and records every outcome it sees. ``Soak``
  then counts jobs lost (no outcome), duplicated (more than one), wrong (another output or
  error); ``samples`` holds the tree RSS every ``sample_every`` completions.
* :func:`snapshot` / :func:`leaks` - threads (``threading.enumerate``), open fds
  (``/proc/self/fd``), descendant processes (``/proc/*/stat``), live subinterpreters; what an
  executor left after ``close()`` is the difference, with threads that are winding down joined
  first (bounded: a leak fails, it does not hang).

Used by ``tests/reliability/test_soak.py`` (2,000 runs per tier) and ``benchmarks/soak.py``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from subiso import GraphConfig
from subiso.bench.measure import tree_rss_kib
from tests.workloads import expected

W = "tests.workloads"
CW = "tests.contract_workloads"
#: How long one run may take before the driver calls it lost (a failure, never a hang).
RUN_BOUND_S = 120.0
#: How long threads that are winding down after ``close()`` get before they count as leaked.
THREAD_EXIT_BOUND_S = 10.0

SYNC_STYLES = ("run", "submit", "stream")
ASYNC_STYLES = ("arun", "astream")
STYLES = ("run", "arun", "submit", "astream", "stream")


# -- the mix -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    index: int
    kind: str
    style: str
    cfg: GraphConfig
    want: Any = None  # the output (a list of chunks for a stream)
    error: tuple[str, str] | None = None  # (exception type name, its message)

    @property
    def sync(self) -> bool:
        return self.style in SYNC_STYLES


def _updates(x: int) -> list[dict[str, Any]]:
    """What ``stream(stream_mode="updates")`` yields for the 3-node Counter graphs."""
    return [{"n0": {"x": x + 1}}, {"n1": {"x": (x + 1) * 2}}, {"n2": {"x": expected(x)}}]


def _job(i: int, kind: str, style: str, db: str | None) -> Job:
    x = i % 1000
    graphs = {"sync_graph": f"{W}:sync_graph", "async_graph": f"{W}:async_graph"}
    if kind in ("function", "afunction"):
        style = "run" if style in SYNC_STYLES else "arun"  # functions do not stream
        fn = "square" if kind == "function" else "asquare"
        return Job(i, kind, style, GraphConfig(graph=f"{CW}:{fn}", input=x), want=x * x)
    if kind == "fail_function":
        style = "run" if style in SYNC_STYLES else "arun"
        msg = f"failed job {i}"
        cfg = GraphConfig(graph=f"{CW}:custom_fail", input=msg)
        return Job(i, kind, style, cfg, error=("ContractError", msg))
    if kind in ("fail_sync", "fail_async"):
        graph = f"{W}:failing_graph" if kind == "fail_sync" else f"{W}:afailing_graph"
        word = "node" if kind == "fail_sync" else "async node"
        cfg = GraphConfig(graph=graph, input={"x": x})
        return Job(i, kind, style, cfg, error=("WorkflowFailed", f"{word} exploded at x={x + 1}"))
    extra: dict[str, Any] = {}
    graph = graphs["sync_graph" if kind in ("sync_graph", "memory") else "async_graph"]
    if kind == "memory":
        extra = {"checkpointer": "memory", "config": {"configurable": {"thread_id": f"m-{i}"}}}
    elif kind == "sqlite":
        if db is None:  # no database for this mix: an async graph run instead
            kind = "async_graph"
        else:
            extra = {"checkpointer": db, "config": {"configurable": {"thread_id": f"s-{i}"}}}
    cfg = GraphConfig(graph=graph, input={"x": x}, **extra)
    want: Any = _updates(x) if style in ("stream", "astream") else {"x": expected(x)}
    return Job(i, kind, style, cfg, want=want)


KINDS = (
    "sync_graph",
    "async_graph",
    "function",
    "afunction",
    "memory",
    "sqlite",
    "fail_sync",
    "sync_graph",
    "async_graph",
    "fail_async",
    "function",
    "fail_function",
    "sqlite",
)


def mix(n: int, db: str | None, kinds: Iterable[str] = KINDS) -> list[Job]:
    """``n`` jobs cycling through ``kinds`` and, independently, through every call style."""
    kinds = tuple(kinds)
    return [
        _job(i, kinds[i % len(kinds)], STYLES[(i // len(kinds) + i) % len(STYLES)], db)
        for i in range(n)
    ]


# -- the driver ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """A run's exception as recorded: its type and message (not the exception itself, whose
    traceback would keep the run's frames - and a soak's memory - alive)."""

    type: type[BaseException]
    message: str

    def __str__(self) -> str:
        return f"{self.type.__name__}: {self.message}"


#: Recorded in place of an outcome that is exactly the one its job must have: a soak of 10,000
#: runs then holds nothing per run, and its RSS slope is the executor's, not the harness's.
RIGHT: Any = type("Right", (), {"__repr__": lambda self: "RIGHT"})()


def _right(job: Job, what: str, value: Any) -> bool:
    if job.error is None:
        return what == "ok" and value == job.want
    return what == "error" and (value.type.__name__, value.message) == job.error


@dataclass
class Soak:
    """What happened to every job of one drive."""

    jobs: list[Job]
    outcomes: list[list[tuple[str, Any]]]
    callbacks: list[int]  # done-callback calls per submitted future (submit style)
    futures: list[int] = field(default_factory=list)  # futures submit() returned, per job
    samples: list[tuple[int, int]] = field(default_factory=list)  # (completed, tree RSS KiB)
    seconds: float = 0.0

    def lost(self) -> list[int]:
        """Indexes of the jobs that never resolved."""
        return [job.index for job, seen in zip(self.jobs, self.outcomes, strict=True) if not seen]

    def duplicated(self) -> list[int]:
        """Indexes of the jobs that resolved more than once (or whose future's callbacks ran
        more than once)."""
        made = self.futures or [0] * len(self.jobs)
        return [
            job.index
            for job, seen, calls, futures in zip(
                self.jobs, self.outcomes, self.callbacks, made, strict=True
            )
            if len(seen) > 1 or calls != futures
        ]

    def wrong(self) -> list[tuple[int, str]]:
        """Jobs whose one outcome is not the one they must have, with what it was."""
        bad = []
        for job, seen in zip(self.jobs, self.outcomes, strict=True):
            if len(seen) != 1:
                continue
            what, value = seen[0]
            if value is RIGHT:
                continue
            if job.error is None:
                if what != "ok" or value != job.want:
                    bad.append((job.index, f"{job.kind}/{job.style}: wanted {job.want!r}, "
                                           f"got {what} {value!r}"))  # fmt: skip
            elif what != "error" or (value.type.__name__, value.message) != job.error:
                got = str(value) if what == "error" else repr(value)
                bad.append((job.index, f"{job.kind}/{job.style}: wanted {job.error}, got {got}"))
        return bad

    def rss_slope_kib_per_1000(self, skip: float = 0.2) -> float | None:
        """Least-squares slope of tree RSS against runs completed, per 1,000 runs, over the
        samples after the first ``skip`` of the runs (warm-up: imports, caches, pools)."""
        total = len(self.jobs)
        points = [(x, y) for x, y in self.samples if x >= skip * total]
        return slope(points, per=1000)

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.jobs),
            "lost": len(self.lost()),
            "duplicated": len(self.duplicated()),
            "wrong": len(self.wrong()),
            "seconds": round(self.seconds, 2),
            "rss_slope_kib_per_1000": _round(self.rss_slope_kib_per_1000()),
        }


def slope(points: list[tuple[int, int]], per: int = 1000) -> float | None:
    """Least-squares slope of ``points`` (x, y), times ``per``; None with fewer than 3."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx * per


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def drive(
    executor: Any,
    jobs: list[Job],
    *,
    concurrency: int = 32,
    sample_every: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Soak:
    """Carry out ``jobs`` on ``executor``, ``concurrency`` in flight (half from threads, half
    from tasks on one loop); return every outcome seen. Never raises for a run's failure."""
    soak = Soak(jobs, [[] for _ in jobs], [0] * len(jobs), [0] * len(jobs))
    slot = {job.index: k for k, job in enumerate(jobs)}  # jobs may be a slice of a mix
    sync_jobs = collections.deque(j for j in jobs if j.sync)
    async_jobs = collections.deque(j for j in jobs if not j.sync)
    lock = threading.Lock()
    completed = [0]

    def record(job: Job, what: str, value: Any) -> None:
        if _right(job, what, value):
            value = RIGHT
        with lock:
            soak.outcomes[slot[job.index]].append((what, value))
            completed[0] += 1
            done = completed[0]
        if sample_every and done % sample_every == 0:
            rss = tree_rss_kib()
            with lock:
                soak.samples.append((done, rss))
        if progress is not None:
            progress(done, len(jobs))

    def count_callback(job: Job) -> Callable[[cf.Future[Any]], None]:
        def callback(_: cf.Future[Any]) -> None:
            with lock:
                soak.callbacks[slot[job.index]] += 1

        return callback

    def sync_lane() -> None:
        while True:
            try:
                job = sync_jobs.popleft()
            except IndexError:
                return
            try:
                if job.style == "run":
                    value: Any = executor.run(job.cfg)
                elif job.style == "submit":
                    future = executor.submit(job.cfg)
                    with lock:
                        soak.futures[slot[job.index]] += 1
                    future.add_done_callback(count_callback(job))
                    try:
                        value = future.result(timeout=RUN_BOUND_S)
                    except cf.TimeoutError:
                        continue  # lost: no outcome recorded
                else:
                    value = list(executor.stream(job.cfg))
            except BaseException as exc:
                record(job, "error", Failure(type(exc), str(exc)))
            else:
                record(job, "ok", value)

    async def async_lane() -> None:
        while async_jobs:
            job = async_jobs.popleft()
            try:
                if job.style == "arun":
                    value: Any = await asyncio.wait_for(executor.arun(job.cfg), RUN_BOUND_S)
                else:
                    value = await asyncio.wait_for(_collect(executor.astream(job.cfg)), RUN_BOUND_S)
            except asyncio.TimeoutError:
                continue  # lost
            except BaseException as exc:
                record(job, "error", Failure(type(exc), str(exc)))
            else:
                record(job, "ok", value)

    async def async_side(lanes: int) -> None:
        await asyncio.gather(*(async_lane() for _ in range(lanes)))

    sync_lanes = max(1, concurrency // 2) if sync_jobs else 0
    async_lanes = max(1, concurrency - sync_lanes) if async_jobs else 0
    start = time.monotonic()
    # daemons: a caller stuck on a run that never resolves must not hold up interpreter exit
    loop_thread = threading.Thread(
        target=asyncio.run,
        args=(async_side(async_lanes),),
        name="soak-async-callers",
        daemon=True,
    )
    threads = [
        threading.Thread(target=sync_lane, name=f"soak-sync-caller-{k}", daemon=True)
        for k in range(sync_lanes)
    ]
    if async_lanes:
        threads.append(loop_thread)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    soak.seconds = time.monotonic() - start
    return soak


async def _collect(chunks: Any) -> list[Any]:
    return [chunk async for chunk in chunks]


# -- what the process holds ------------------------------------------------------------------------
def descendants(root: int | None = None) -> set[int]:
    """Pids of every live descendant of ``root`` (default: this process), from ``/proc``."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] == "Z":  # a zombie is gone, only not yet reaped
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points to."""
    fds: dict[int, str] = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:  # the fd listdir itself used, closed by now
            continue
    return fds


def interpreter_count() -> int:
    from subiso.executors.subinterpreter import backend

    found = backend()
    return len(list(found.module.list_all())) if found else 0


@dataclass
class Snapshot:
    threads: set[threading.Thread]
    fds: dict[int, str]
    children: set[int]
    interpreters: int


def snapshot() -> Snapshot:
    return Snapshot(set(threading.enumerate()), open_fds(), descendants(), interpreter_count())


def leaks(before: Snapshot) -> dict[str, list[Any]]:
    """What is held now and was not at ``before``: threads (after joining those still winding
    down, bounded), fds, descendant processes, interpreters. Empty lists: nothing leaked."""
    deadline = time.monotonic() + THREAD_EXIT_BOUND_S
    for thread in threading.enumerate():
        if thread in before.threads or thread is threading.current_thread():
            continue
        if isinstance(thread, threading._DummyThread):  # started outside threading: no join
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
    now = open_fds()
    fds = sorted(f"{fd} -> {target}" for fd, target in now.items() if before.fds.get(fd) != target)
    return {
        "threads": [(t.name, t.daemon) for t in threads],
        "fds": fds,
        "processes": sorted(descendants() - before.children),
        "interpreters": [interpreter_count() - before.interpreters]
        if interpreter_count() > before.interpreters
        else [],
    }


def leak_count(found: dict[str, list[Any]]) -> int:
    return sum(len(v) for v in found.values())


# -- figures for the note ------------------------------------------------------------------------
#: When set, tests append one JSON line per figure they measured to this file.
REPORT_ENV = "SUBISO_RELIABILITY_REPORT"


def report(section: str, /, **figures: Any) -> None:
    """Append ``figures`` to the file ``$SUBISO_RELIABILITY_REPORT`` names (no-op without it)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    import json
    import sys

    line = {"section": section, "python": f"{sys.version_info[0]}.{sys.version_info[1]}", **figures}
    with open(path, "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
