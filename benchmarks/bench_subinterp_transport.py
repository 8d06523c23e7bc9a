"""Subinterpreter transport benchmark: subiso's InterpreterPool vs the raw interpreter pool.

Run from the repository root, e.g. ``/tmp/v3.14/bin/python benchmarks/bench_subinterp_transport.py``.

Measures, interleaved round by round so machine noise hits every contender alike:

* per-call overhead of a trivial function (submit -> result, 2 warm workers) through
  ``subiso.executors.subinterpreter.InterpreterPool`` vs the stdlib ``InterpreterPoolExecutor`` (3.14) or
  the backport's (3.13), with ``ThreadPoolExecutor`` as a floor;
* 2 CPU-bound calls on 2 interpreters at once vs the same 2 calls one after the other;
* time to first result of a fresh 2-interpreter pool.

Interpreters compute ``sys.path`` when created, so the script re-executes itself once with the
repository root on ``PYTHONPATH`` for the raw pool's interpreters to import the target module.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import ensure_repo_importable, raw_interpreter_pool


def _per_call_us(call: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def bench_trivial(rounds: int, n: int) -> dict[str, list[float]]:
    """us per submit->result of ``pure.trivial`` for each contender, interleaved by round."""
    from subiso.executors.subinterpreter import CallSpec, InterpreterPool
    from tests.isolation_targets import pure

    ours = InterpreterPool(2)
    raw = raw_interpreter_pool(2)
    threads = ThreadPoolExecutor(2)
    spec = CallSpec("tests.isolation_targets.pure:trivial", (1,))
    contenders: dict[str, Callable[[], Any]] = {
        "subiso InterpreterPool": lambda: ours.submit(spec).result(),
        "raw InterpreterPoolExecutor": lambda: raw.submit(pure.trivial, 1).result(),
        "ThreadPoolExecutor (floor)": lambda: threads.submit(pure.trivial, 1).result(),
    }
    try:
        for call in contenders.values():  # warm every worker
            for _ in range(50):
                call()
        results: dict[str, list[float]] = {name: [] for name in contenders}
        for i in range(rounds):  # alternate the order, so no contender always goes first
            for name, call in list(contenders.items())[:: -1 if i % 2 else 1]:
                results[name].append(_per_call_us(call, n))
        return results
    finally:
        ours.close()
        raw.shutdown()
        threads.shutdown()


def bench_parallel(rounds: int, n: int) -> tuple[list[float], list[float]]:
    """Seconds for 2 CPU calls back to back vs at once, 2 warm interpreters, interleaved."""
    from subiso.executors.subinterpreter import CallSpec, InterpreterPool

    spec = CallSpec("tests.isolation_targets.pure:cpu", (n,))
    serial: list[float] = []
    parallel: list[float] = []
    with InterpreterPool(2) as pool:
        pool.submit(spec).result()
        pool.submit(spec).result()

        def run_serial() -> None:
            pool.submit(spec).result()
            pool.submit(spec).result()

        def run_parallel() -> None:
            for future in [pool.submit(spec), pool.submit(spec)]:
                future.result()

        for i in range(rounds):  # alternate the order, so neither side always goes first
            for samples, run in [(serial, run_serial), (parallel, run_parallel)][
                :: -1 if i % 2 else 1
            ]:
                started = time.perf_counter()
                run()
                samples.append(time.perf_counter() - started)
    return serial, parallel


def bench_first_result() -> float:
    """ms from constructing a fresh 2-interpreter pool to its first result."""
    from subiso.executors.subinterpreter import CallSpec, InterpreterPool

    started = time.perf_counter()
    pool = InterpreterPool(2)
    pool.submit(CallSpec("tests.isolation_targets.pure:trivial", (1,))).result()
    elapsed = (time.perf_counter() - started) * 1e3
    pool.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cpu-n", type=int, default=2_000_000)
    args = parser.parse_args()
    ensure_repo_importable()

    from subiso.executors.subinterpreter import backend, probe_msgspec

    found = backend()
    print(f"Python {sys.version.split()[0]}  backend: {found.name or found.reason}")
    if not found:
        return
    verdict = probe_msgspec()
    print(f"msgspec in a subinterpreter: {'yes' if verdict.ok else verdict.blocked_by}")
    print(f"first result of a fresh 2-interpreter pool: {bench_first_result():.1f} ms\n")

    trivial = bench_trivial(args.rounds, args.calls)
    raw_median = statistics.median(trivial["raw InterpreterPoolExecutor"])
    print(f"{'trivial call, 2 warm workers':32s} {'median us':>10s} {'min us':>8s} {'vs raw':>7s}")
    for name, samples in trivial.items():
        median = statistics.median(samples)
        print(f"{name:32s} {median:10.1f} {min(samples):8.1f} {median / raw_median:6.2f}x")

    serial, parallel = bench_parallel(args.rounds, args.cpu_n)
    ratios = [s / p for s, p in zip(serial, parallel, strict=True)]
    print(f"\n{'2 CPU calls, 2 interpreters':32s} {'median s':>10s}")
    print(f"{'one after the other':32s} {statistics.median(serial):10.3f}")
    print(f"{'at once':32s} {statistics.median(parallel):10.3f}")
    print(f"{'speed-up (serial / parallel)':32s} {statistics.median(ratios):9.2f}x")


if __name__ == "__main__":
    main()
