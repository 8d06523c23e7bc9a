"""One comparison of a bench run: contenders timed in interleaved rounds, summarised as a
:class:`Section` (per-run time, throughput, latency percentiles, ratio to a reference with its
per-round range); and the progress line that says where a run is."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from subiso.bench import measure
from subiso.bench.contenders import FLOOR, Contender


@dataclass
class Section:
    section: str
    workload: str
    concurrency: int
    runs: int  # per round
    rounds: int
    reference: str
    unit: str = "run"
    contenders: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    tree_rss_kib: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "runs_per_round": self.runs,
            "rounds": self.rounds,
            "reference": self.reference,
            "unit": self.unit,
            "contenders": self.contenders,
            "skipped": self.skipped,
            "tree_rss_kib": self.tree_rss_kib,
            "note": self.note,
        }


class Progress:
    """One status line on stderr (rewritten in place on a terminal, throttled otherwise):
    elapsed time, which section of how many (``stage``), what it measures (workload,
    concurrency) and where it is (round, contender)::

        [  12.3s] 1/7 trivial: trivial-sync, concurrency 2: round 3/7 process
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.stage = ""
        self.prefix = ""
        self._last = 0.0

    def section(self, text: str) -> None:
        self.prefix = text
        self.line("", force=True)

    def line(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        stage = f"{self.stage} " if self.stage else ""
        msg = f"[{elapsed:6.1f}s] {stage}{self.prefix} {text}".rstrip()
        if self.tty:
            sys.stderr.write("\r\x1b[K" + msg[:99])
            sys.stderr.flush()
        elif force or elapsed - self._last > 5:
            self._last = elapsed
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def compare(
    progress: Progress,
    section: str,
    workload: str,
    concurrency: int,
    runs: int,
    contenders: list[Contender],
    skipped: dict[str, str],
    *,
    rounds: int,
    reference: str | None = None,
    note: str = "",
) -> Section:
    """Time ``contenders`` in ``rounds`` interleaved rounds; ratios against ``reference``
    (default: the first floor)."""
    reference = reference or next(x.name for x in contenders if x.kind == FLOOR)
    progress.section(f"{section}: {workload}, concurrency {concurrency}:")
    failed: dict[str, str] = {}
    times, lats = measure.interleaved(
        {x.name: x.run for x in contenders}, rounds, progress=progress.line, failed=failed
    )
    sec = Section(section, workload, concurrency, runs, rounds, reference, skipped=dict(skipped))
    sec.note = note
    sec.skipped.update({k: f"failed: {v}" for k, v in failed.items()})
    sec.tree_rss_kib = measure.tree_rss_kib()
    kinds = {x.name: x.kind for x in contenders}
    ref = times.get(reference)
    for name, rt in times.items():
        sec.contenders.append(summarise(name, kinds[name], rt, lats.get(name, []), runs, ref))
    return sec


def summarise(
    name: str,
    kind: str,
    rounds_s: list[float],
    lat: list[float],
    runs: int,
    ref: list[float] | None,
) -> dict[str, Any]:
    med = measure.median(rounds_s)
    d: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "round_s": rounds_s,
        "per_run_us": med / runs * 1e6,
        "throughput_per_s": runs / med if med else None,
        "p50_ms": _ms(measure.percentile(lat, 50)),
        "p99_ms": _ms(measure.percentile(lat, 99)),
        "ratio": None,
        "ratio_range": None,
    }
    if ref and len(ref) == len(rounds_s):
        d["ratio"] = med / measure.median(ref)
        per = [a / b for a, b in zip(rounds_s, ref, strict=True)]
        d["ratio_range"] = [min(per), max(per)]
    return d


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3
