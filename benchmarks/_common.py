"""Shared benchmark helpers: interleaved rounds, medians, ratio tables.

A core's speed drifts within seconds on these machines (one CPU-bound batch took 335 ms, then
209 ms a few rounds later, in one run), so every comparison is
measured side by side: each round times every contender once, in rotating order, and ratios
are taken between medians of rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = str(Path(__file__).resolve().parent.parent)
SRC = os.path.join(ROOT, "src")  # subiso itself, for a checkout where it is not installed


def ensure_repo_importable() -> None:
    """Put the repository root and ``src`` on ``PYTHONPATH`` (re-executing once) and ``sys.path``.

    Interpreters and worker processes compute their ``sys.path`` when created from the
    environment, so the targets under ``tests/`` and ``examples/`` must be importable there too.
    """
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if ROOT not in paths or SRC not in paths:
        wanted = [p for p in (ROOT, SRC) if p not in paths]
        os.environ["PYTHONPATH"] = os.pathsep.join([*wanted, *filter(None, paths)])
        os.execv(sys.executable, [sys.executable, *sys.argv])
    for entry in (SRC, ROOT):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def raw_interpreter_pool(workers: int) -> Any:
    """The stdlib's InterpreterPoolExecutor (3.14) or the backport's (3.13): the baseline."""
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor
    else:
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
    return InterpreterPoolExecutor(workers)


def interleaved(
    contenders: dict[str, Callable[[], None]], rounds: int, *, warmup: int = 1, label: str = ""
) -> dict[str, list[float]]:
    """Time each contender once per round, rotating the order; returns seconds per round.

    Progress on stderr starts with ``label`` (what is measured: workload, call style, how far
    through the script): on a terminal a line naming the contender being timed, rewritten in
    place; elsewhere one line per round."""
    live = sys.stderr.isatty()
    prefix = f"{label}: " if label else ""
    names = list(contenders)
    for w in range(warmup):
        if not live:
            progress(f"{prefix}warm-up {w + 1}/{warmup}: {', '.join(names)}")
        for name in names:
            if live:
                progress(f"{prefix}warm-up {w + 1}/{warmup}: {name}")
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if live:
                progress(f"{prefix}round {r + 1}/{rounds}: {name}")
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
        if not live:
            progress(f"{prefix}round {r + 1}/{rounds}: {', '.join(order)}")
    return times


def progress(message: str) -> None:
    """One line on stderr, rewritten in place on a terminal, so a long benchmark shows it is
    alive and where it is."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{message[:160]}")
    else:
        sys.stderr.write(message + "\n")
    sys.stderr.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.0f}"
    return str(value)


def python_tag() -> str:
    return f"Python {sys.version.split()[0]}"
