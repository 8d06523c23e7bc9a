"""Who runs a workload in a comparison: subiso's tiers, the peers a user would pick instead
(the stdlib's thread/process/interpreter pools, anyio), and the floors (the graph called
directly; a bare worker process), each as a :class:`Contender` whose round runs it
``runs`` times.

:class:`Pools` holds what contenders share over a bench run (executors, pools, bare workers,
the caller's event loop), made on first use and closed at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from subiso.bench import measure
from subiso.bench.measure import Round

if TYPE_CHECKING:
    from subiso.bench.workloads import Workload

#: Contender kinds: ``floor`` = no isolation, or isolation with nothing of subiso's (what a
#: tier cannot go below); ``peer`` = what a user would pick instead; ``tier`` = subiso.
FLOOR = "floor"
PEER = "peer"
TIER = "tier"


@dataclass
class Contender:
    name: str
    kind: str
    run: Round


class Pools:
    """Executors, stdlib pools, bare workers and the caller's loop, shared by the contenders
    of a bench run. ``targets`` lists the graphs a ``ProcessPoolExecutor``'s workers import as
    they start (as a user's worker module would)."""

    def __init__(self, targets: Callable[[], list[str]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.notes: list[str] = []
        self._targets = targets
        self._executors: dict[tuple[str, int], Any] = {}
        self._pools: dict[tuple[str, int], Any] = {}
        self._closers: list[Callable[[], None]] = []

    def tier(self, name: str, workers: int) -> Any:
        key = (name, workers)
        if key not in self._executors:
            import subiso

            opts: dict[str, Any] = {} if name in ("inline", "context") else {"max_workers": workers}
            if name == "process":
                opts["prestart"] = True
            self._executors[key] = subiso.get_executor(name, **opts)
        return self._executors[key]

    @staticmethod
    def tier_available(name: str) -> str | None:
        """None, or why the tier cannot run here."""
        from subiso.executors import tier_class

        try:
            from subiso import capabilities

            ok, why = tier_class(name).availability(capabilities())  # type: ignore[attr-defined]
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if ok else why

    def pool(self, kind: str, workers: int) -> Any:
        key = (kind, workers)
        if key in self._pools:
            return self._pools[key]
        if kind == "thread":
            pool: Any = cf.ThreadPoolExecutor(workers)
        elif kind == "process":
            from subiso.bench import peers

            pool = cf.ProcessPoolExecutor(
                workers,
                mp_context=forkserver(),
                initializer=peers.init_worker,
                initargs=(list(sys.path), self._targets()),
            )
        elif kind == "interpreter":
            pool = raw_interpreter_pool(workers)
        elif kind == "loopthread":
            pool = LoopThread()
        else:  # pragma: no cover
            raise ValueError(kind)
        self._pools[key] = pool
        return pool

    def bare(self, w: Workload, **bytes_each_way: Any) -> Any:
        """A bare worker process running ``w``'s graph (see :class:`~subiso.bench.peers.PipeWorker`)."""
        from subiso.bench.peers import PipeWorker

        bare = PipeWorker(forkserver(), w.target, w.input, **bytes_each_way)
        self._closers.append(bare.shutdown)
        return bare

    def close(self) -> None:
        for ex in self._executors.values():
            try:
                ex.close()
            except Exception as exc:  # pragma: no cover
                self.notes.append(f"closing {ex!r}: {exc!r}")
        for pool in self._pools.values():
            pool.shutdown()
        for closer in self._closers:
            closer()
        loop = self.loop
        try:
            # anyio.to_process keeps a task that terminates its workers when cancelled
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


# -- a workload's contenders ---------------------------------------------------------------------
def for_workload(
    pools: Pools,
    w: Workload,
    c: int,
    runs: int,
    tiers: list[tuple[str, str, int]],
    skipped: dict[str, str],
    *,
    payload: bool = False,
    lean: bool = False,
) -> list[Contender]:
    """The floors, the stdlib peers and ``tiers`` ((label, tier, workers)) for ``w`` at ``c``
    in flight. ``payload``: the bare workers move ``w``'s encoded input and output each way
    (:func:`payload_floors`) rather than a byte. ``lean``: only the contenders targets compare
    (a quick run): no thread-pool peer, no shared-memory floor."""
    from subiso import GraphConfig

    cfg = GraphConfig(graph=w.target, input=w.input)
    graph, value, loop = w.graph, w.input, pools.loop
    out: list[Contender] = []
    if not w.is_async:
        if c == 1:
            out.append(
                Contender(
                    "graph.invoke", FLOOR, measure.sequential(lambda: graph.invoke(value), runs)
                )
            )
        else:
            out.append(
                Contender(
                    f"graph.batch(max_concurrency={c})",
                    FLOOR,
                    measure.batch(
                        lambda: graph.batch([value] * runs, config={"max_concurrency": c})
                    ),
                )
            )
        if c == 1 and payload:
            out += payload_floors(pools, w, runs, shared=not lean)
        elif c == 1:
            bare = pools.bare(w)
            out.append(
                Contender(
                    "bare worker process: pipe + graph.invoke",
                    FLOOR,
                    measure.sequential(bare.call, runs),
                )
            )
        if not lean:
            out.append(_thread_pool_peer(pools, graph, value, c, runs))
    else:
        if c == 1:
            out.append(
                Contender(
                    "graph.ainvoke",
                    FLOOR,
                    measure.on_loop(loop, lambda: graph.ainvoke(value), runs, 1),
                )
            )
        else:
            out.append(
                Contender(
                    f"graph.abatch(max_concurrency={c})",
                    FLOOR,
                    measure.on_loop_batch(
                        loop, lambda: graph.abatch([value] * runs, config={"max_concurrency": c})
                    ),
                )
            )
        lt = pools.pool("loopthread", 1)
        out.append(
            Contender(
                "loop thread: run_coroutine_threadsafe(graph.ainvoke)",
                PEER,
                measure.on_loop(
                    loop, lambda: asyncio.wrap_future(lt.submit(graph.ainvoke(value))), runs, c
                ),
            )
        )
    out += _process_pool_peer(pools, w, c, runs, skipped)
    for label, tier, n in tiers:
        why = pools.tier_available(tier)
        if why:
            skipped[label] = why
            continue
        try:
            ex = pools.tier(tier, n)
        except Exception as exc:
            skipped[label] = f"could not start: {type(exc).__name__}: {exc}"
            continue
        out.append(Contender(label, TIER, tier_round(ex, cfg, w.is_async, runs, c, loop)))
    return out


def _thread_pool_peer(pools: Pools, graph: Any, value: Any, c: int, runs: int) -> Contender:
    workers = 1 if c == 1 else 2
    tpe = pools.pool("thread", workers)
    name = f"ThreadPoolExecutor({workers}).submit(graph.invoke)"
    if c == 1:
        return Contender(
            name, PEER, measure.sequential(lambda: tpe.submit(graph.invoke, value).result(), runs)
        )
    return Contender(name, PEER, measure.window(lambda: tpe.submit(graph.invoke, value), runs, c))


def _process_pool_peer(
    pools: Pools, w: Workload, c: int, runs: int, skipped: dict[str, str]
) -> list[Contender]:
    from subiso.bench import peers

    workers = 1 if c == 1 else 2
    name = f"ProcessPoolExecutor({workers})"
    if w.is_async and c > 32:
        skipped[name] = (
            "one asyncio.run per call per worker: 2 workers serialise 256 runs; not a peer "
            "anyone would pick for I/O at this concurrency"
        )
        return []
    ppe = pools.pool("process", workers)

    def submit() -> cf.Future[Any]:
        return ppe.submit(peers.invoke, w.target, w.input, w.is_async)  # type: ignore[no-any-return]

    if w.is_async:
        return [
            Contender(
                name,
                PEER,
                measure.on_loop(pools.loop, lambda: asyncio.wrap_future(submit()), runs, c),
            )
        ]
    if c == 1:
        return [Contender(name, PEER, measure.sequential(lambda: submit().result(), runs))]
    return [Contender(name, PEER, measure.window(submit, runs, c))]


def payload_floors(pools: Pools, w: Workload, runs: int, *, shared: bool = True) -> list[Contender]:
    """Bare worker processes that move ``w``'s input to the worker and its output back, with
    ``graph.invoke`` between: encoded and decoded with subiso's codec through a pipe (the
    floor of the payload targets: objects in, objects out, none of subiso's bookkeeping), and
    the same encoded bytes with nothing encoded or decoded, through a pipe and through the
    process tier's shared-memory ring (what moving the bytes alone costs here)."""
    from subiso import codec

    request = codec.encode(w.input)
    reply = codec.encode(w.graph.invoke(w.input))
    coded = pools.bare(w, coded=True)
    out = [Contender(CODED_FLOOR, FLOOR, measure.sequential(coded.call, runs))]
    for how, through_ring in (("pipe", False), ("shared memory", True))[: 1 + shared]:
        bare = pools.bare(w, request=request, reply=reply, shared=through_ring)
        if through_ring and not bare.shared:
            continue  # no memfd here: the pipe row stands alone
        out.append(
            Contender(
                f"bare worker process: {how}, the same bytes each way, nothing decoded",
                FLOOR,
                measure.sequential(bare.call, runs),
            )
        )
    return out


#: The payload targets' floor row (see :func:`payload_floors`).
CODED_FLOOR = "bare worker process: subiso's codec each way, a pipe"


def offload_peers(
    pools: Pools, node_n: int, c: int, runs: int, skipped: dict[str, str]
) -> list[Contender]:
    """Peers that run only the CPU-bound node function, on 2 workers."""
    from subiso.bench.cpu import burn

    loop, out = pools.loop, []
    try:
        ipe = pools.pool("interpreter", 2)
        out.append(
            Contender(
                "InterpreterPoolExecutor(2): node fn",
                PEER,
                measure.window(lambda: ipe.submit(burn, node_n), runs, c),
            )
        )
    except Exception as exc:
        skipped["InterpreterPoolExecutor(2): node fn"] = f"unavailable here: {exc}"
    try:
        import anyio
        import anyio.to_process

        limiter = anyio.CapacityLimiter(2)
        out.append(
            Contender(
                "anyio.to_process.run_sync(node fn)",
                PEER,
                measure.on_loop(
                    loop, lambda: anyio.to_process.run_sync(burn, node_n, limiter=limiter), runs, c
                ),
            )
        )
        if sys.version_info >= (3, 13):
            import anyio.to_interpreter

            ilimiter = anyio.CapacityLimiter(2)
            out.append(
                Contender(
                    "anyio.to_interpreter.run_sync(node fn)",
                    PEER,
                    measure.on_loop(
                        loop,
                        lambda: anyio.to_interpreter.run_sync(burn, node_n, limiter=ilimiter),
                        runs,
                        c,
                    ),
                )
            )
        else:
            skipped["anyio.to_interpreter.run_sync(node fn)"] = "needs Python 3.13+"
    except ImportError:
        skipped["anyio.to_process / to_interpreter"] = (
            "anyio not installed (pip install 'subiso[bench]')"
        )
    return out


# -- rounds --------------------------------------------------------------------------------------
def tier_round(
    ex: Any, cfg: Any, is_async: bool, runs: int, c: int, loop: asyncio.AbstractEventLoop
) -> Round:
    """A tier's round: ``arun`` on the caller's loop (async graphs), else ``run`` one at a time
    or ``submit`` with ``c`` in flight."""
    if is_async:
        return measure.on_loop(loop, lambda: ex.arun(cfg), runs, c)
    if c == 1:
        return measure.sequential(lambda: ex.run(cfg), runs)
    return measure.window(lambda: ex.submit(cfg), runs, c)


def pool_round(pool: Any, runs: int, fn: Callable[..., Any], *args: Any) -> Round:
    """``pool.submit(fn, *args).result()``, ``runs`` times one after another."""
    return measure.sequential(lambda: pool.submit(fn, *args).result(), runs)


def burst(ex: Any, cfg: Any, n: int) -> Round:
    def go() -> None:
        futures = [ex.submit(cfg) for _ in range(n)]
        for f in futures:
            f.result()

    return go


class LoopThread:
    """One daemon thread running an event loop: ``run_coroutine_threadsafe`` onto it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="bench-loop")
        self.thread.start()

    def submit(self, coro: Any) -> cf.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def forkserver() -> Any:
    """The 3.14 default start method everywhere: forking this many-threaded process (3.13's
    default ``fork``) can crash the child."""
    import multiprocessing

    return multiprocessing.get_context("forkserver")


def raw_interpreter_pool(workers: int) -> Any:
    """The stdlib's InterpreterPoolExecutor (3.14) or the 3.13 backport's."""
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor
    elif sys.version_info >= (3, 13):
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
    else:
        raise RuntimeError("no InterpreterPoolExecutor before Python 3.13")
    return InterpreterPoolExecutor(workers)
