"""Process tier benchmark: ratios measured interleaved in one run, printed as a table.

Run from the repository root: ``python benchmarks/bench_process.py [--quick]``.

The host's core speed drifts from one second to the next (see the round spreads printed), so every comparison
alternates its two sides in rounds and reports the median of the per-round ratios:

1. per-run overhead of ``ProcessExecutor.run`` vs ``InlineExecutor.run`` on the trivial
   3-node sync graph (warm; target <= 1.5x);
2. time to first result: a cold executor vs one built with ``prestart=True`` (forkserver, whose
   preload already holds langgraph, and spawn, which pays the imports in every worker);
3. CPU throughput: 8 runs of a graph with a ~40 ms pure-Python node, 2 workers vs 1
   (target >= 1.8x on 2 cores);
4. payload cost of a ~1 MB state: subiso's msgspec codec vs pickle (encode + decode).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import ROOT, ensure_repo_importable

ensure_repo_importable()

from subiso import codec  # noqa: E402
from subiso.executors.inline import InlineExecutor  # noqa: E402
from subiso.executors.process import ProcessExecutor  # noqa: E402

TRIVIAL = {"graph": "tests.workloads:sync_graph", "input": {"x": 3}}
Row = tuple[str, str, str]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(a: Callable[[], Any], b: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, alternating which goes first each round."""
    ta: list[float] = []
    tb: list[float] = []
    for i in range(rounds):
        if i % 2:
            tb.append(timed(b))
            ta.append(timed(a))
        else:
            ta.append(timed(a))
            tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def ratio_of_rounds(a: Callable[[], Any], b: Callable[[], Any], rounds: int) -> float:
    """Median over rounds of time(b) / time(a), each pair measured back to back."""
    return statistics.median(round_ratios(a, b, rounds))


def round_ratios(a: Callable[[], Any], b: Callable[[], Any], rounds: int) -> list[float]:
    """time(b) / time(a) of each round, the pair measured back to back, order alternating."""
    ratios = []
    for i in range(rounds):
        if i % 2:
            tb, ta = timed(b), timed(a)
        else:
            ta, tb = timed(a), timed(b)
        ratios.append(tb / ta)
    return ratios


def spread(ratios: list[float]) -> str:
    """Lowest and highest round, so a swing of the cores' speed shows instead of hiding."""
    return f"rounds {min(ratios):.2f}-{max(ratios):.2f}x"


# -- 1. per-run overhead -------------------------------------------------------------------------
def bench_overhead(runs: int, rounds: int) -> list[Row]:
    inline = InlineExecutor()
    with ProcessExecutor(max_workers=1, prestart=True, preload=[TRIVIAL["graph"]]) as proc:
        for _ in range(50):
            inline.run(TRIVIAL)
            proc.run(TRIVIAL)

        def run_inline() -> None:
            for _ in range(runs):
                inline.run(TRIVIAL)

        def run_process() -> None:
            for _ in range(runs):
                proc.run(TRIVIAL)

        ratios = round_ratios(run_inline, run_process, rounds)
        t_inline, t_proc = interleaved(run_inline, run_process, 3)
        reports = [proc.execute(TRIVIAL).report for _ in range(200)]
    enc = statistics.median(r.encode_s for r in reports) * 1e6
    tra = statistics.median(r.transfer_s for r in reports) * 1e6
    dec = statistics.median(r.decode_s for r in reports) * 1e6
    return [
        (
            "per-run overhead, trivial sync graph (warm)",
            f"{statistics.median(ratios):.2f}x inline",
            f"{spread(ratios)}; inline {t_inline / runs * 1e3:.3f} ms, process "
            f"{t_proc / runs * 1e3:.3f} ms/run; "
            f"encode {enc:.0f} us, transfer {tra:.0f} us, decode {dec:.0f} us",
        )
    ]


# -- 2. time to first result ---------------------------------------------------------------------
def first_result_cold(method: str) -> float:
    start = time.perf_counter()
    with ProcessExecutor(max_workers=1, start_method=method) as ex:
        ex.run(TRIVIAL)
        return time.perf_counter() - start


def first_result_prestarted(method: str) -> tuple[float, float]:
    start = time.perf_counter()
    with ProcessExecutor(
        max_workers=1, start_method=method, prestart=True, preload=[TRIVIAL["graph"]]
    ) as ex:
        built = time.perf_counter()
        ex.run(TRIVIAL)
        return built - start, time.perf_counter() - built


def bench_first_result(reps: int) -> list[Row]:
    rows: list[Row] = []
    first_result_cold("forkserver")  # the forkserver itself starts once per host process
    for method in ("forkserver", "spawn"):
        cold: list[float] = []
        ctor: list[float] = []
        first: list[float] = []
        for _ in range(reps):
            cold.append(first_result_cold(method))
            c, f = first_result_prestarted(method)
            ctor.append(c)
            first.append(f)
        c_ms, p_ms = statistics.median(cold) * 1e3, statistics.median(first) * 1e3
        rows.append(
            (
                f"time to first result, {method}",
                f"{c_ms / p_ms:.0f}x faster with prestart",
                f"cold {c_ms:.1f} ms; prestart=True: {p_ms:.2f} ms "
                f"(constructor {statistics.median(ctor) * 1e3:.1f} ms)",
            )
        )
    return rows


# -- 3. CPU throughput ---------------------------------------------------------------------------
def calibrate(target_s: float) -> int:
    from tests.process_workloads import burn

    n = 100_000
    while True:
        t = statistics.median(timed(lambda n=n: burn(n)) for _ in range(3))
        if t > target_s / 4:
            return int(n * target_s / t)
        n *= 2


def bench_throughput(rounds: int) -> list[Row]:
    n = calibrate(0.040)
    cfgs = [{"graph": "tests.process_workloads:cpu_graph", "input": {"n": n, "total": 0}}] * 8
    with (
        ProcessExecutor(max_workers=1, prestart=True) as one,
        ProcessExecutor(max_workers=2, prestart=True) as two,
    ):
        list(one.map(cfgs))
        list(two.map(cfgs))
        ratios = round_ratios(lambda: list(two.map(cfgs)), lambda: list(one.map(cfgs)), rounds)
        t_two, t_one = interleaved(lambda: list(two.map(cfgs)), lambda: list(one.map(cfgs)), 3)
    return [
        (
            "CPU throughput, 8 runs x 40 ms node",
            f"{statistics.median(ratios):.2f}x with 2 workers vs 1",
            f"{spread(ratios)}; 1 worker {t_one * 1e3:.0f} ms, 2 workers {t_two * 1e3:.0f} ms "
            f"({os.cpu_count()} CPUs; 2 workers are only as fast as the slower core)",
        )
    ]


# -- 4. payload ------------------------------------------------------------------------------------
def make_state(target_bytes: int) -> dict[str, Any]:
    """A contract-review-like state; every string its own object, as after parsing JSON (pickle
    would otherwise memoise repeated objects and look smaller than any real payload)."""
    docs = []
    while True:
        i = len(docs)
        docs.append(
            {
                "id": i,
                "title": f"Clause {i}: limitation of liability",
                "text": f"The supplier shall not be liable for indirect losses above {i} EUR. " * 3,
                "score": i * 0.25,
                "tags": [f"liability-{i % 5}", f"cap-{i % 3}", f"section-{i % 17}"],
                "flagged": i % 3 == 0,
            }
        )
        if i % 100 == 0 and len(pickle.dumps(docs)) >= target_bytes:
            return {"contract": "msa-2024", "docs": docs}


def bench_payload(reps: int) -> list[Row]:
    state = make_state(1 << 20)
    size_mp = len(codec.encode(state))
    size_pk = len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def via_codec() -> None:
        for _ in range(10):
            codec.decode(codec.encode(state))

    def via_pickle() -> None:
        for _ in range(10):
            pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    assert codec.decode(codec.encode(state)) == state
    ratio = ratio_of_rounds(via_codec, via_pickle, reps)
    t_codec, t_pickle = interleaved(via_codec, via_pickle, 3)
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        echo = {"graph": "tests.process_workloads:echo", "input": state}
        ex.run(echo)
        reports = [ex.execute(echo).report for _ in range(10)]
    enc = statistics.median(r.encode_s for r in reports) * 1e3
    tra = statistics.median(r.transfer_s for r in reports) * 1e3
    dec = statistics.median(r.decode_s for r in reports) * 1e3
    return [
        (
            f"payload ~1 MB state ({len(state['docs'])} docs), encode+decode",
            f"pickle {ratio:.2f}x msgspec",
            f"msgspec {t_codec / 10 * 1e3:.2f} ms ({size_mp / 1e6:.2f} MB), pickle "
            f"{t_pickle / 10 * 1e3:.2f} ms ({size_pk / 1e6:.2f} MB); echo through a worker: "
            f"encode {enc:.2f} ms, transfer {tra:.2f} ms, decode {dec:.2f} ms (both ways)",
        )
    ]


def print_table(rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print(f"{'measure':<{widths[0]}}  {'ratio':<{widths[1]}}  detail")
    print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 6}")
    for name, ratio, detail in rows:
        print(f"{name:<{widths[0]}}  {ratio:<{widths[1]}}  {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument(
        "--only",
        choices=["overhead", "first", "throughput", "payload"],
        action="append",
        help="run only these sections (repeatable)",
    )
    args = parser.parse_args()
    rounds, reps = (3, 1) if args.quick else (9, 3)
    sections: dict[str, Callable[[], list[Row]]] = {
        # Many short rounds: the core's speed swings within seconds, and a ratio is only as
        # good as the two halves of its round being timed at the same speed.
        "overhead": lambda: bench_overhead(50, 5 if args.quick else 41),
        "first": lambda: bench_first_result(reps),
        "throughput": lambda: bench_throughput(3 if args.quick else 15),
        "payload": lambda: bench_payload(rounds),
    }
    os.chdir(ROOT)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    rows: list[Row] = []
    for name, section in sections.items():
        if not args.only or name in args.only:
            rows += section()
    print_table(rows)


if __name__ == "__main__":
    main()
