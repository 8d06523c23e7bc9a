"""How ``subiso run`` prints: one-line previews of an output's keys, the RunReport as an aligned
table in human units, interrupts, the ``--repeat`` duration table and its progress line."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import msgspec

from subiso.cli._app import to_json

PREVIEW_WIDTH = 100
#: RunReport fields printed under another name: their values are shown in human units.
_LABELS = {
    "queue_wait_s": "queue wait",
    "duration_s": "duration",
    "encode_s": "encode",
    "transfer_s": "transfer",
    "decode_s": "decode",
}
_TRANSFER = ("encode_s", "transfer_s", "decode_s")


def human_seconds(seconds: float) -> str:
    """``148 ms``, ``4.65 ms``, ``1.48 s``, ``1 min 12 s``: three significant digits or so."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def wall_clock(timestamp: float) -> str:
    """``2026-12-06 21:03:52.123`` (local time) for a ``time.time()`` value."""
    whole = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    return f"{whole}.{int(timestamp % 1 * 1000):03d}"


def shorten(text: str, width: int = PREVIEW_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def type_label(value: Any) -> str:
    """``list[27]``, ``dict{3}``, ``str``: the shape of a value at a glance."""
    if isinstance(value, (list, tuple)):
        return f"list[{len(value)}]"
    if isinstance(value, dict):
        return f"dict{{{len(value)}}}"
    return type(value).__name__


def preview(value: Any, width: int = PREVIEW_WIDTH) -> str:
    return shorten(to_json(value, indent=0), width)


def output_summary(output: Any) -> list[str]:
    """``output:`` and one line per top-level key (``findings  list[27]  [{...}, ...]``)."""
    if isinstance(output, dict):
        items = [(str(k), v) for k, v in output.items() if k != "__interrupt__"]
        if not items:
            return ["output: {}"]
        key_w = max(len(k) for k, _ in items)
        type_w = max(len(type_label(v)) for _, v in items)
        lines = [f"output: dict with {len(items)} key{'s' if len(items) != 1 else ''}"]
        for key, value in items:
            lines.append(
                f"  {key:<{key_w}}  {type_label(value):<{type_w}}  "
                + preview(value, max(20, PREVIEW_WIDTH - key_w - type_w))
            )
        return lines
    return [f"output: {type_label(output)} {preview(output)}"]


def output_full(output: Any) -> list[str]:
    return ["output:", to_json(output)]


def interrupt_doc(item: Any) -> dict[str, Any]:
    """``{"value": ..., "id": ...}`` of a LangGraph ``Interrupt`` (or its dict form)."""
    if isinstance(item, Mapping):
        return {"value": item.get("value"), "id": item.get("id")}
    return {"value": getattr(item, "value", item), "id": getattr(item, "id", None)}


def interrupts_of(output: Any) -> list[dict[str, Any]]:
    if isinstance(output, dict):
        return [interrupt_doc(i) for i in output.get("__interrupt__") or ()]
    return []


def interrupt_lines(interrupts: list[dict[str, Any]]) -> list[str]:
    if not interrupts:  # a static breakpoint (interrupt_before/after) pauses without payloads
        return ["interrupted: the graph paused at a breakpoint (no interrupt payload)"]
    lines = [f"interrupted: the graph paused at {len(interrupts)} interrupt(s):"]
    for item in interrupts:
        lines.append(f"  id {item['id']}: {to_json(item['value'], indent=0)}")
    return lines


def offloaded_text(offloaded: Any) -> str:
    """``2 calls in interpreters 3, 4: 55.8 ms inside, 0.22 ms transfer`` (RunReport.offloaded)."""
    ids = ", ".join(str(i) for i in offloaded.interpreter_ids)
    calls = f"{offloaded.calls} call{'s' if offloaded.calls != 1 else ''}"
    where = f"interpreter{'s' if len(offloaded.interpreter_ids) != 1 else ''} {ids}"
    return (
        f"{calls} in {where}: {human_seconds(offloaded.interp_s)} inside, "
        f"{human_seconds(offloaded.transfer_s)} transfer"
    )


def report_lines(report: Any, *, everything: bool = False) -> list[str]:
    """The RunReport as an aligned two-column table in human units; None and zero transfer
    times are left out unless ``everything``, and a ``fallback_reason`` that repeats
    ``reason`` (as a fallback run's does) is printed once."""
    rows: list[tuple[str, str]] = []
    fields = msgspec.structs.asdict(report)
    for name, value in fields.items():
        unset = value is None or value == "" or (name.endswith("_at") and not value)
        if not everything and (unset or (name in _TRANSFER and not value)):
            continue
        if name == "fallback_reason" and value is not None and value == fields.get("reason"):
            if not everything:
                continue
            value = "(the reason above)"
        if name == "offloaded" and value is not None:
            shown: Any = offloaded_text(value)
        elif name.endswith("_s") and value is not None:
            shown = human_seconds(value)
        elif name.endswith("_at") and value:
            shown = wall_clock(value)
        else:
            shown = value
        rows.append((_LABELS.get(name, name), str(shown)))
    width = max(len(label) for label, _ in rows)
    return [f"  {label:<{width}}  {value}" for label, value in rows]


# -- --repeat ------------------------------------------------------------------------------------
def summary(results: list[Any], wall: float, concurrency: int) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[float]] = {}
    for r in results:
        groups.setdefault((r.report.tier, r.report.mode), []).append(r.report.duration_s)
    rows = []
    for (tier, mode), durations in groups.items():
        ordered = sorted(durations)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        rows.append(
            {
                "tier": tier,
                "mode": mode,
                "runs": len(ordered),
                "min_s": ordered[0],
                "median_s": statistics.median(ordered),
                "mean_s": statistics.fmean(ordered),
                "p95_s": p95,
                "max_s": ordered[-1],
            }
        )
    return {
        "runs": len(results),
        "concurrency": concurrency,
        "wall_s": wall,
        "runs_per_s": len(results) / wall if wall > 0 else None,
        "durations": rows,
    }


def summary_table(summary: dict[str, Any]) -> str:
    head = ("tier", "mode", "runs", "min ms", "median ms", "mean ms", "p95 ms", "max ms")
    lines = [head]
    for row in summary["durations"]:
        lines.append(
            (
                row["tier"],
                row["mode"],
                str(row["runs"]),
                *(
                    f"{row[k] * 1000:.3f}"
                    for k in ("min_s", "median_s", "mean_s", "p95_s", "max_s")
                ),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["durations:"]
    for line in lines:
        out.append("  " + "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
    rate = summary["runs_per_s"]
    out.append(
        f"  {summary['runs']} runs in {human_seconds(summary['wall_s'])} wall at concurrency "
        f"{summary['concurrency']}" + (f" ({rate:.1f} runs/s)" if rate else "")
    )
    return "\n".join(out)


def eta_seconds(
    durations: list[float], in_flight: list[float], remaining: int, concurrency: int
) -> float | None:
    """Seconds until ``remaining`` runs (in flight ones included) are done, or None before
    any run completed.

    The work left is ``remaining`` runs at the mean wall time of the completed ones, less what
    the runs in flight (``in_flight``: their elapsed seconds) already did, spread over the
    ``concurrency`` runs that go at once.
    """
    if not durations:
        return None
    if remaining <= 0:
        return 0.0
    mean = statistics.fmean(durations)
    done_in_flight = sum(min(elapsed, mean) for elapsed in in_flight)
    return max(0.0, remaining * mean - done_in_flight) / min(concurrency, remaining)


class Progress:
    """``--repeat``'s progress line on stderr: runs done, elapsed, ETA. On a terminal it
    redraws one line; elsewhere it prints a start line and a done line only.

    The first runs carry the tier's start-up (workers starting, the graph's modules importing,
    its first compile): 0.45 s against 0.05 s for each later thread-tier run of the demo, so an
    ETA drawn from them was 7x too long. The ETA therefore counts only *steady* runs, those
    submitted after the first run finished, and shows once one of them has finished.
    """

    def __init__(
        self,
        total: int,
        concurrency: int,
        stream: TextIO,
        *,
        live: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total, self.concurrency, self.stream, self.live = total, concurrency, stream, live
        self.clock = clock
        self.started = clock()
        self.starts: dict[int, float] = {}
        self.durations: list[float] = []
        self.steady: list[float] = []  # durations of runs submitted after the first finished
        self.first_done: float | None = None
        self._last = ""
        self._write(f"{total} runs at concurrency {concurrency}", final=not live)

    def start(self, index: int) -> None:
        self.starts[index] = self.clock()

    def finish(self, index: int) -> None:
        now = self.clock()
        started = self.starts.pop(index)
        self.durations.append(now - started)
        if self.first_done is None:
            self.first_done = now
        elif started >= self.first_done:
            self.steady.append(now - started)
        if self.live:
            self._write(self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        done = len(self.durations)
        first = self.first_done
        in_flight = [now - t for t in self.starts.values() if first is not None and t >= first]
        eta = eta_seconds(self.steady, in_flight, self.total - done, self.concurrency)
        text = (
            f"{self.total} runs: {done}/{self.total} done, "
            f"{human_seconds(now - self.started)} elapsed"
        )
        if eta is None or done == self.total:
            return text
        return f"{text}, eta {human_seconds(eta)}"

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
        else:
            self._write(self.line(), final=True)
        self.stream.flush()

    def _write(self, text: str, *, final: bool = False) -> None:
        if final:
            self.stream.write(text + "\n")
        else:
            pad = max(0, len(self._last) - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._last = text
        self.stream.flush()
