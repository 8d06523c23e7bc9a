"""Per-run overhead of each tier against InlineExecutor, warm, same call style.

    python benchmarks/bench_tiers.py [--runs 200] [--rounds 7] [--tiers inline,context,thread]

For each workload (trivial 3-node sync graph, the same with async nodes, the contract-review
demo) and each call style (``run`` from sync code; ``arun`` from a running loop), every tier
runs ``--runs`` runs per round (the demo, ~50 ms a run, ``--runs``/20); rounds interleave the
tiers. Prints medians per run and the ratio to inline measured in the same rounds. The defaults
take about a minute on 2 cores; stderr says which workload, call style and tier is being timed.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
from collections.abc import Callable
from typing import Any

from _common import ensure_repo_importable, interleaved, median, python_tag, table

ensure_repo_importable()

import subiso  # noqa: E402
from subiso import GraphConfig  # noqa: E402

WORKLOADS = {
    "sync 3-node": GraphConfig(graph="tests.workloads:sync_graph", input={"x": 1}),
    "async 3-node": GraphConfig(graph="tests.workloads:async_graph", input={"x": 1}),
    "demo": GraphConfig(
        graph="examples.contract_review.graph:graph",
        input={"path": "examples/contract_review/sample_contract.txt"},
    ),
}


FLOOR = "(stdlib thread hop)"


def sync_style(ex: subiso.Executor, cfg: GraphConfig, runs: int) -> Callable[[], None]:
    def go() -> None:
        for _ in range(runs):
            ex.run(cfg)

    return go


def async_style(
    ex: subiso.Executor, cfg: GraphConfig, runs: int, loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    async def many() -> None:
        for _ in range(runs):
            await ex.arun(cfg)

    return lambda: loop.run_until_complete(many())


class StdlibFloor:
    """The cheapest hand-over the stdlib offers to one dedicated thread, doing the same work:
    ``ThreadPoolExecutor(1).submit(graph.invoke)`` for sync graphs and
    ``run_coroutine_threadsafe(graph.ainvoke)`` onto a loop thread for async ones. It is no
    subiso tier; it shows what any thread hop costs on this machine in the same rounds."""

    def __init__(self) -> None:
        import concurrent.futures as cf
        import threading

        self.pool = cf.ThreadPoolExecutor(1)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def contender(
        self, cfg: GraphConfig, runs: int, style: str, caller: asyncio.AbstractEventLoop
    ) -> Callable[[], None]:
        from subiso.runtime.targets import import_attr

        graph = import_attr(cfg.graph)
        sync = all(getattr(n.bound, "func", None) for n in graph.nodes.values())

        def hop() -> Any:
            if sync:
                return self.pool.submit(graph.invoke, cfg.input)
            return asyncio.run_coroutine_threadsafe(graph.ainvoke(cfg.input), self.loop)

        if style == "run":
            return lambda: [hop().result() for _ in range(runs)] and None

        async def many() -> None:
            for _ in range(runs):
                await asyncio.wrap_future(hop())

        return lambda: caller.run_until_complete(many())

    def close(self) -> None:
        self.pool.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def main() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tiers", default="inline,context,thread")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    tiers = args.tiers.split(",")
    if tiers[0] != "inline":
        tiers.insert(0, "inline")
    executors = {
        t: subiso.get_executor(
            t, **({"max_workers": 1} if t != "inline" and t != "context" else {})
        )
        for t in tiers
    }
    loop = asyncio.new_event_loop()
    floor = StdlibFloor() if "thread" in tiers else None
    rows = []
    groups = [(w, style) for w in args.workloads.split(",") for style in ("run", "arun")]
    try:
        for i, (wname, style) in enumerate(groups, 1):
            cfg = WORKLOADS[wname]
            # the demo's runs take ~50 ms: 10 a round keep it to ~30 s of the default minute
            runs = args.runs if wname != "demo" else max(1, args.runs // 20)
            label = f"[{i}/{len(groups)}] {wname} via {style}, {runs} runs/round"
            contenders = {
                t: sync_style(ex, cfg, runs) if style == "run" else async_style(ex, cfg, runs, loop)
                for t, ex in executors.items()
            }
            if floor is not None:
                contenders[FLOOR] = floor.contender(cfg, runs, style, loop)
            times = interleaved(contenders, args.rounds, label=label)
            base = median(times["inline"]) / runs
            for t in contenders:
                per_run = median(times[t]) / runs
                rows.append((wname, style, t, runs, per_run * 1e6, per_run / base))
    finally:
        for ex in executors.values():
            ex.close()
        if floor is not None:
            floor.close()
        loop.close()
    print(
        table(
            f"subiso per-run cost vs inline, warm ({python_tag()}, {os.cpu_count()} cores, "
            f"{args.rounds} interleaved rounds)",
            ["workload", "style", "tier", "runs/round", "us/run (median)", "x inline"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
