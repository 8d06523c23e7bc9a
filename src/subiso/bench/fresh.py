"""One sample of ``subiso bench``'s "fresh" section, in a fresh process:

    python -m subiso.bench.fresh KIND N

The host app has imported subiso and its graph (not measured); then: constructor to the first
result of the CPU graph (``burn(N)`` node), two rounds of 2 runs in flight, tree RSS growth.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from subiso.bench import peers
from subiso.bench.contenders import forkserver, raw_interpreter_pool
from subiso.bench.cpu import burn
from subiso.bench.measure import tree_rss_kib

TARGET = "subiso.bench.workloads:cpu_graph"
WORKERS = 2


def main(kind: str, n: int) -> dict[str, Any]:
    import subiso.bench.workloads

    cfg = subiso.GraphConfig(graph=TARGET, input={"n": n})
    before = tree_rss_kib()
    mode = None
    started = time.perf_counter()
    if kind in ("subinterpreter", "process", "thread"):
        ex: Any = subiso.get_executor(kind, max_workers=WORKERS)
        first = ex.execute(cfg)
        first_s = time.perf_counter() - started
        mode = first.report.mode

        def submit() -> Any:
            return ex.submit(cfg)

        close = ex.close
    elif kind == "ProcessPoolExecutor":
        import concurrent.futures as cf

        pool = cf.ProcessPoolExecutor(
            WORKERS,
            mp_context=forkserver(),
            initializer=peers.init_worker,
            initargs=(list(sys.path), [TARGET]),
        )
        pool.submit(peers.invoke, TARGET, {"n": n}, False).result()
        first_s = time.perf_counter() - started

        def submit() -> Any:
            return pool.submit(peers.invoke, TARGET, {"n": n}, False)

        close = pool.shutdown
    elif kind == "InterpreterPoolExecutor":
        ipool = raw_interpreter_pool(WORKERS)
        ipool.submit(burn, n).result()
        first_s = time.perf_counter() - started

        def submit() -> Any:
            return ipool.submit(burn, n)

        close = ipool.shutdown
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    for _ in range(2):
        for f in [submit() for _ in range(WORKERS)]:
            f.result()
    after = tree_rss_kib()
    close()
    return {"kind": kind, "first_s": first_s, "rss_kib": after - before, "mode": mode}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
