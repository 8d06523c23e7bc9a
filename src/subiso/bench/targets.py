"""The issue's targets, each a ratio of contenders measured in the same interleaved rounds,
with its per-round range (min-max of the ratio taken round by round)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from subiso.bench import PAYLOADS

Result = dict[str, Any]


def _section(
    res: Result, section: str, workload: str | None = None, c: int | None = None
) -> Result | None:
    for s in res["sections"]:
        if (
            s["section"] == section
            and (workload is None or s["workload"] == workload)
            and (c is None or s["concurrency"] == c)
        ):
            return s  # type: ignore[no-any-return]
    return None


def _starting(prefix: str) -> Callable[[str], bool]:
    return lambda name: name.startswith(prefix)


def _find(sec: Result | None, pred: Callable[[str], bool]) -> Result | None:
    if sec is None:
        return None
    for x in sec["contenders"]:
        if pred(x["name"]):
            return x  # type: ignore[no-any-return]
    return None


def _ratio(
    num: Result | None, den: Result | None, *, key: str = "round_s", invert: bool = False
) -> tuple[float, list[float]] | None:
    """median(num)/median(den) and the per-round range; ``invert`` for throughput (den/num)."""
    if num is None or den is None:
        return None
    a, b = num[key], den[key]
    if not a or not b:
        return None
    if invert:
        a, b = b, a
    fig = statistics.median(a) / statistics.median(b)
    per = [x / y for x, y in zip(a, b, strict=True)] if len(a) == len(b) else []
    return fig, ([min(per), max(per)] if per else [fig, fig])


def targets(res: Result) -> list[Result]:
    """Each target with its figure and whether it is met: ``met`` is None when the run did not
    measure it, or when it does not apply on this Python (``applies`` False: no
    subinterpreters for the hybrid targets); ``indicative`` marks a quick run's figures, whose
    counts are too small to score."""
    out: list[Result] = []
    quick = bool(res.get("quick"))
    py = res.get("python", {})
    hybrid_here = bool(py.get("subinterpreters"))
    no_hybrid = (
        f"does not apply on Python {py.get('version', '?')}: no subinterpreter tier (PEP 734, "
        "Python 3.13+)"
    )

    def add(
        name: str,
        goal: str,
        check: Callable[[float], bool],
        got: Any,
        what: str,
        note: str = "",
        *,
        applies: bool = True,
    ) -> None:
        row = {
            "target": name,
            "goal": goal,
            "figure": None,
            "range": None,
            "met": None,
            "applies": applies,
            "indicative": quick,
            "measured": what,
            "note": note,
        }
        if not applies:
            row["note"] = no_hybrid
        elif got is None:
            row["note"] = note or "not measured in this run"
        else:
            row["figure"], row["range"] = got
            row["met"] = bool(check(got[0]))
        out.append(row)

    tri = _section(res, "trivial", "trivial-sync", 1)
    add(
        "thread vs stdlib thread hop",
        "<= 1.02x",
        lambda f: f <= 1.02,
        _ratio(
            _find(tri, lambda n: n == "thread"),
            _find(tri, lambda n: n.startswith("ThreadPoolExecutor(1)")),
        ),
        "trivial sync graph, 1 run at a time: thread tier run() / ThreadPoolExecutor(1).submit(graph.invoke).result(), time per run",
        _bookkeeping(tri),
    )
    inline = _find(tri, lambda n: n == "inline")
    floor = _ratio(_find(tri, lambda n: n.startswith("bare worker process")), inline)
    add(
        "process vs inline",
        "<= 1.25x",
        lambda f: f <= 1.25,
        _ratio(_find(tri, lambda n: n == "process"), inline),
        "trivial sync graph, 1 run at a time: process tier run() / inline tier run(), time per run",
        ""
        if floor is None
        else f"the floor, a bare worker process (a pipe each way, graph.invoke, nothing encoded), "
        f"measured {floor[0]:.2f}x inline in the same rounds ({floor[1][0]:.2f}-{floor[1][1]:.2f})",
    )
    add(
        "process vs its floor (trivial)",
        "<= 1.05x",
        lambda f: f <= 1.05,
        _ratio(
            _find(tri, lambda n: n == "process"),
            _find(tri, lambda n: n.startswith("bare worker process")),
        ),
        "trivial sync graph, 1 run at a time: process tier run() / a bare worker process (a pipe "
        "each way, graph.invoke, nothing encoded), time per run",
    )
    cpu = _section(res, "cpu", "cpu", 8)
    hyb = _find(cpu, lambda n: n.startswith("subinterpreter"))
    add(
        "hybrid vs bare interpreter pool",
        ">= 0.95x",
        lambda f: f >= 0.95,
        _ratio(hyb, _find(cpu, lambda n: n.startswith("InterpreterPoolExecutor")), invert=True),
        "8 CPU-bound runs in flight, 2 workers: throughput of the subinterpreter tier (hybrid) / the node function on a bare InterpreterPoolExecutor(2)",
        applies=hybrid_here,
    )
    add(
        "hybrid vs thread tier",
        ">= 1.8x",
        lambda f: f >= 1.8,
        _ratio(hyb, _find(cpu, lambda n: n.startswith("thread (")), invert=True),
        "8 CPU-bound runs, 2 workers each: throughput hybrid / thread tier",
        applies=hybrid_here,
    )
    add(
        "hybrid vs process tier",
        ">= 1.0x",
        lambda f: f >= 1.0,
        _ratio(hyb, _find(cpu, lambda n: n.startswith("process (2")), invert=True),
        "8 CPU-bound runs, 2 workers each: throughput hybrid / process tier",
        applies=hybrid_here,
    )
    add(
        "process 2 workers vs 1",
        ">= 1.85x",
        lambda f: f >= 1.85,
        _ratio(
            _find(cpu, lambda n: n.startswith("process (2")),
            _find(cpu, lambda n: n.startswith("process (1")),
            invert=True,
        ),
        "8 CPU-bound runs: throughput process tier 2 workers / 1 worker",
    )
    # named by the concurrency measured (256 in a full run; the largest a quick run has)
    io_c = max((s["concurrency"] for s in res["sections"] if s["section"] == "io"), default=256)
    io = _section(res, "io", "io", io_c)
    add(
        f"I/O c={io_c}: thread vs graph.abatch",
        ">= 0.9x",
        lambda f: f >= 0.9,
        _ratio(
            _find(io, lambda n: n == "thread"),
            _find(io, lambda n: n.startswith("graph.abatch")),
            invert=True,
        ),
        f"I/O fan-out graph, {io_c} runs in flight: throughput thread tier (arun on the caller's loop, 2 workers) / graph.abatch(max_concurrency={io_c}) on the caller's loop",
        "; ".join(
            n
            for n in (
                "" if io_c == 256 else "quick run: the target is defined at c=256",
                _hop_floor(io),
            )
            if n
        ),
    )
    for key in PAYLOADS:
        _payload_targets(add, _section(res, "payload", key, 1), key)
    fresh = _section(res, "fresh")
    add(
        "first result: hybrid vs process",
        "<= 0.15x",
        lambda f: f <= 0.15,
        _ratio(
            _find(fresh, lambda n: n == "subinterpreter"), _find(fresh, lambda n: n == "process")
        ),
        "fresh process each: constructor to first CPU-graph result, SubinterpreterExecutor(2) / ProcessExecutor(2)",
        applies=hybrid_here,
    )
    sc = _section(res, "scaling")
    big = max((x.get("burst", 0) for x in sc["contenders"]), default=10_000) if sc else 10_000
    for tier in ("thread", "process"):
        add(
            f"scaling {tier}: x{big} vs x100 per run",
            "within 10% (0.90-1.10x)",
            lambda f: 0.9 <= f <= 1.1,
            _ratio(
                _find(sc, f"{tier} x{big}".__eq__),
                _find(sc, f"{tier} x100".__eq__),
            ),
            f"trivial sync graph, 1 worker: cost per run in a burst of {big} / in a burst of 100",
            "" if big == 10_000 else "quick run: the target is defined at 10,000",
        )
    return out


def _payload_targets(add: Callable[..., None], sec: Result | None, key: str) -> None:
    """A payload workload's three targets: against ProcessPoolExecutor(1) (pickle), against
    the bare worker moving the same state with subiso's codec through a pipe, and the latency
    tail."""
    from subiso.bench.contenders import CODED_FLOOR

    tier = _find(sec, "process".__eq__)
    bytes_only = [
        (how, _ratio(tier, _find(sec, _starting(f"bare worker process: {how}, the same bytes"))))
        for how in ("pipe", "shared memory")
    ]
    add(
        f"payload {key}: process vs ProcessPoolExecutor(1)",
        "<= 0.8x",
        lambda f: f <= 0.8,
        _ratio(tier, _find(sec, "ProcessPoolExecutor(1)".__eq__)),
        f"{key} state, 1 run at a time: process tier run() / ProcessPoolExecutor(1)"
        ".submit(graph.invoke).result() (pickle both ways), time per run",
    )
    add(
        f"payload {key}: process vs its floor",
        "<= 1.2x",
        lambda f: f <= 1.2,
        _ratio(tier, _find(sec, CODED_FLOOR.__eq__)),
        f"{key} state: process tier run() / a bare worker process that encodes the state with "
        "subiso's codec, moves it through a pipe, decodes it for graph.invoke and the output "
        "back the same way (none of subiso's bookkeeping)",
        "; ".join(
            f"the encoded bytes alone through {'a ' if how == 'pipe' else ''}{how}, nothing "
            f"decoded: process tier {r[0]:.2f}x that ({r[1][0]:.2f}-{r[1][1]:.2f})"
            for how, r in bytes_only
            if r is not None
        ),
    )
    p50, p99 = (tier or {}).get("p50_ms"), (tier or {}).get("p99_ms")
    add(
        f"payload {key}: process p99 vs p50",
        "<= 3x",
        lambda f: f <= 3,
        None if not (p50 and p99) else (p99 / p50, None),
        f"{key} state: the process tier's 99th percentile run time / its median (every run "
        "of every round)",
    )


def _bookkeeping(tri: Result | None) -> str:
    """What a run costs in any tier before any hop: the inline tier against graph.invoke."""
    own = _ratio(_find(tri, lambda n: n == "inline"), _find(tri, lambda n: n == "graph.invoke"))
    if own is None:
        return ""
    return (
        f"subiso's own bookkeeping (config checks, report), the inline tier against graph.invoke "
        f"in the same rounds: {own[0]:.2f}x"
    )


def _hop_floor(io: Result | None) -> str:
    """The stdlib's own way to run those coroutines on another thread's loop, same rounds."""
    hop = _ratio(
        _find(io, lambda n: n.startswith("loop thread")),
        _find(io, lambda n: n.startswith("graph.abatch")),
        invert=True,
    )
    if hop is None:
        return ""
    return (
        f"the stdlib's hop to a loop thread (run_coroutine_threadsafe) measured {hop[0]:.2f}x "
        "graph.abatch in the same rounds"
    )
