"""Timing primitives: interleaved rounds, windows of runs in flight, percentiles, tree RSS."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

#: A contender does one round's runs and returns per-run latencies in seconds (``None`` when
#: the peer hands back only the whole batch, like ``graph.batch``).
Round = Callable[[], "list[float] | None"]


def interleaved(
    contenders: dict[str, Round],
    rounds: int,
    *,
    warmup: int = 1,
    progress: Callable[[str], None] = lambda _: None,
    failed: dict[str, str] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Time each contender once per round, rotating the order.

    Returns ``(seconds per round, pooled per-run latencies)`` per contender. A contender that
    raises is dropped (its reason in ``failed``) and the others go on.
    """
    failed = {} if failed is None else failed
    names = list(contenders)
    for w in range(warmup):
        for name in list(names):
            progress(f"warm-up {w + 1}/{warmup} {name}")
            try:
                contenders[name]()
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
                names.remove(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for name in order:
            if name in failed:
                continue
            progress(f"round {r + 1}/{rounds} {name}")
            start = time.perf_counter()
            try:
                lat = contenders[name]()
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            times[name].append(time.perf_counter() - start)
            if lat:
                latencies[name].extend(lat)
    for name in failed:
        times.pop(name, None)
        latencies.pop(name, None)
    return times, latencies


def sequential(call: Callable[[], Any], runs: int) -> Round:
    """``runs`` calls one after another, each timed."""

    def go() -> list[float]:
        lat = []
        for _ in range(runs):
            t = time.perf_counter()
            call()
            lat.append(time.perf_counter() - t)
        return lat

    return go


def window(submit: Callable[[], cf.Future[Any]], runs: int, inflight: int) -> Round:
    """``runs`` runs through ``submit``, keeping ``inflight`` of them in flight."""

    def go() -> list[float]:
        lat: list[float] = []
        started: dict[cf.Future[Any], float] = {}
        pending: set[cf.Future[Any]] = set()
        issued = 0
        while issued < runs or pending:
            while issued < runs and len(pending) < inflight:
                f = submit()
                started[f] = time.perf_counter()
                pending.add(f)
                issued += 1
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            now = time.perf_counter()
            for f in done:
                f.result()
                lat.append(now - started.pop(f))
        return lat

    return go


def batch(call: Callable[[], Any]) -> Round:
    """A peer that takes the whole round at once (``graph.batch``): no per-run latency."""

    def go() -> None:
        call()
        return None

    return go


def on_loop(
    loop: asyncio.AbstractEventLoop,
    make: Callable[[], Awaitable[Any]],
    runs: int,
    inflight: int,
) -> Round:
    """``runs`` awaitables from ``make`` on the caller's ``loop``, ``inflight`` at a time."""

    async def main() -> list[float]:
        lat: list[float] = []
        left = [runs]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                t = time.perf_counter()
                await make()
                lat.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(min(inflight, runs))))
        return lat

    return lambda: loop.run_until_complete(main())


def on_loop_batch(loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[Any]]) -> Round:
    async def main() -> None:
        await make()

    return lambda: loop.run_until_complete(main()) and None


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) or ``None`` without samples."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def tree_rss_kib(root: int | None = None) -> int:
    """Resident memory of ``root`` (default: this process) and every descendant, KiB, /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total
