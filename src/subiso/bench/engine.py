"""The benchmark engine: sections of interleaved rounds, each timing subiso's tiers next to the
peers a user would pick instead (the graph called directly, stdlib pools, anyio).

Sections (``Options.sections``):

* ``trivial`` - ``tests.workloads:sync_graph`` at concurrency 1, 2, 8 and ``async_graph`` at 1:
  per-run overhead vs ``graph.invoke`` on the caller (the no-isolation floor) and vs the stdlib
  thread hop ``ThreadPoolExecutor(1).submit(graph.invoke)``;
* ``cpu`` - a graph whose one ``@offload`` node burns ~``node_ms`` of pure Python, 8 (and 1) runs
  in flight on 2 workers: tiers vs ``graph.batch``, stdlib thread/process/interpreter pools and
  ``anyio.to_interpreter``/``to_process`` running the node function;
* ``io`` - ``subiso.bench.workloads:io_graph`` (4-way ``asyncio.sleep`` fan-out) at 1, 2, 8, 32,
  256 runs in flight vs ``graph.abatch(max_concurrency=)`` on the caller's loop;
* ``messages`` - ~1 MB of LangChain messages in and out, one run at a time;
* ``demo`` - ``examples.contract_review.graph:graph`` at 1 and 8 in flight;
* ``scaling`` - bursts of 10, 100, 1000 (10000 in the full run) trivial runs on thread and
  process tiers: cost per run as the burst grows;
* ``fresh`` - per kind, in a fresh process: constructor to first result of the CPU graph, and
  tree RSS growth after warming 2 workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subiso.bench import measure
from subiso.bench.measure import Round

ALL_SECTIONS = ("trivial", "cpu", "io", "messages", "demo", "scaling", "fresh")
FLOOR = "floor"
PEER = "peer"
TIER = "tier"
FRESH_KINDS = (
    "subinterpreter",
    "process",
    "thread",
    "ProcessPoolExecutor",
    "InterpreterPoolExecutor",
)


@dataclass
class Options:
    quick: bool = False
    sections: tuple[str, ...] = ALL_SECTIONS
    rounds: int | None = None
    node_ms: float | None = None
    progress: bool = True

    @property
    def n_rounds(self) -> int:
        return self.rounds or (2 if self.quick else 7)


@dataclass
class Contender:
    name: str
    kind: str  # floor | peer | tier
    run: Round


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
            sys.stderr.write("\r\x1b[K" + msg[:150])
            sys.stderr.flush()
        elif force or elapsed - self._last > 5:
            self._last = elapsed
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


@dataclass
class Workload:
    key: str
    target: str
    input: Any
    is_async: bool
    graph: Any = None


def python_tag() -> str:
    impl = sys.implementation.name
    ft = "t" if getattr(sys, "_is_gil_enabled", None) is not None and _free_threaded() else ""
    return f"{impl}-{sys.version_info.major}.{sys.version_info.minor}{ft}"


def _free_threaded() -> bool:
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def find_root() -> Path | None:
    """The checkout holding ``tests/workloads.py`` and ``examples/``: the working directory or
    the one above the ``src/subiso`` package."""
    import subiso

    for cand in (Path.cwd(), Path(subiso.__file__).resolve().parents[2]):
        if (cand / "tests" / "workloads.py").is_file() and (cand / "examples").is_dir():
            return cand
    return None


class Bench:
    def __init__(self, options: Options) -> None:
        self.opt = options
        self.progress = Progress(options.progress)
        self.notes: list[str] = []
        self.sections: list[Section] = []
        self.root = find_root()
        if self.root is not None and str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        self.loop = asyncio.new_event_loop()
        self._executors: dict[tuple[str, int], Any] = {}
        self._pools: dict[tuple[str, int], Any] = {}
        self._closers: list[Callable[[], None]] = []
        self.node_n = 0
        self.node_ms = options.node_ms or (5.0 if options.quick else 40.0)

    # -- shared executors and pools (created once, closed at the end) -------------------------
    def tier(self, name: str, workers: int) -> Any:
        key = (name, workers)
        if key not in self._executors:
            import subiso

            opts: dict[str, Any] = {} if name in ("inline", "context") else {"max_workers": workers}
            if name == "process":
                opts["prestart"] = True
            self._executors[key] = subiso.get_executor(name, **opts)
        return self._executors[key]

    def tier_available(self, name: str) -> str | None:
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

            targets = [w.target for w in self.workloads().values() if w.target]
            pool = cf.ProcessPoolExecutor(
                workers,
                mp_context=forkserver(),
                initializer=peers.init_worker,
                initargs=(list(sys.path), targets),
            )
        elif kind == "interpreter":
            pool = raw_interpreter_pool(workers)
        elif kind == "loopthread":
            pool = LoopThread()
        else:  # pragma: no cover
            raise ValueError(kind)
        self._pools[key] = pool
        return pool

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
        try:
            # anyio.to_process keeps a task that terminates its workers when cancelled
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
        self.progress.done()

    # -- workloads ----------------------------------------------------------------------------
    _workloads: dict[str, Workload] | None = None

    def workloads(self) -> dict[str, Workload]:
        if self._workloads is not None:
            return self._workloads
        from subiso.bench import workloads as wl

        trivial_mod = "subiso.bench.workloads"
        if self.root is None:
            self.notes.append(
                "examples/ not found (run from the repository root): the demo is skipped"
            )
        if not self.node_n:
            from subiso.bench.cpu import calibrate

            self.node_n = calibrate(self.node_ms)
        ws = {
            "trivial-sync": Workload("trivial-sync", f"{trivial_mod}:sync_graph", {"x": 1}, False),
            "trivial-async": Workload(
                "trivial-async", f"{trivial_mod}:async_graph", {"x": 1}, True
            ),
            "cpu": Workload("cpu", "subiso.bench.workloads:cpu_graph", {"n": self.node_n}, False),
            "io": Workload(
                "io",
                "subiso.bench.workloads:io_graph",
                {"delay": 0.005 if self.opt.quick else 0.01},
                True,
            ),
            "messages": Workload(
                "messages", "subiso.bench.workloads:messages_graph", wl.messages_input(), False
            ),
        }
        if self.root is not None:
            ws["demo"] = Workload(
                "demo",
                "examples.contract_review.graph:graph",
                {"path": str(self.root / "examples/contract_review/sample_contract.txt")},
                False,
            )
        from subiso.runtime.targets import import_attr

        for w in ws.values():
            w.graph = import_attr(w.target)
        self._workloads = ws
        return ws

    # -- contenders ---------------------------------------------------------------------------
    def contenders(
        self,
        w: Workload,
        c: int,
        runs: int,
        tiers: list[tuple[str, str, int]],
        skipped: dict[str, str],
    ) -> list[Contender]:
        """The floor, the stdlib peers and ``tiers`` ((label, tier, workers)) for ``w`` at ``c``."""
        from subiso import GraphConfig

        cfg = GraphConfig(graph=w.target, input=w.input)
        graph, value, loop = w.graph, w.input, self.loop
        out: list[Contender] = []
        workers = 1 if c == 1 else 2
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
            if c == 1:
                from subiso.bench.peers import PipeWorker

                bare = PipeWorker(forkserver(), w.target, value)
                self._closers.append(bare.shutdown)
                out.append(
                    Contender(
                        "bare worker process: pipe + graph.invoke",
                        FLOOR,
                        measure.sequential(bare.call, runs),
                    )
                )
            tpe = self.pool("thread", workers)
            name = f"ThreadPoolExecutor({workers}).submit(graph.invoke)"
            if c == 1:
                out.append(
                    Contender(
                        name,
                        PEER,
                        measure.sequential(lambda: tpe.submit(graph.invoke, value).result(), runs),
                    )
                )
            else:
                out.append(
                    Contender(
                        name, PEER, measure.window(lambda: tpe.submit(graph.invoke, value), runs, c)
                    )
                )
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
                            loop,
                            lambda: graph.abatch([value] * runs, config={"max_concurrency": c}),
                        ),
                    )
                )
            lt = self.pool("loopthread", 1)
            out.append(
                Contender(
                    "loop thread: run_coroutine_threadsafe(graph.ainvoke)",
                    PEER,
                    measure.on_loop(
                        loop, lambda: asyncio.wrap_future(lt.submit(graph.ainvoke(value))), runs, c
                    ),
                )
            )
        from subiso.bench import peers

        if w.is_async and c > 32:
            skipped[f"ProcessPoolExecutor({workers})"] = (
                "one asyncio.run per call per worker: 2 workers serialise 256 runs; not a peer "
                "anyone would pick for I/O at this concurrency"
            )
        else:
            ppe = self.pool("process", workers)
            name = f"ProcessPoolExecutor({workers})"

            def ppe_submit() -> cf.Future[Any]:
                return ppe.submit(peers.invoke, w.target, value, w.is_async)  # type: ignore[no-any-return]

            if w.is_async:
                out.append(
                    Contender(
                        name,
                        PEER,
                        measure.on_loop(loop, lambda: asyncio.wrap_future(ppe_submit()), runs, c),
                    )
                )
            elif c == 1:
                out.append(
                    Contender(name, PEER, measure.sequential(lambda: ppe_submit().result(), runs))
                )
            else:
                out.append(Contender(name, PEER, measure.window(ppe_submit, runs, c)))
        for label, tier, n in tiers:
            why = self.tier_available(tier)
            if why:
                skipped[label] = why
                continue
            try:
                ex = self.tier(tier, n)
            except Exception as exc:
                skipped[label] = f"could not start: {type(exc).__name__}: {exc}"
                continue
            out.append(Contender(label, TIER, tier_round(ex, cfg, w.is_async, runs, c, loop)))
        return out

    def offload_peers(self, c: int, runs: int, skipped: dict[str, str]) -> list[Contender]:
        """Peers that run only the CPU-bound node function, on 2 workers."""
        from subiso.bench.cpu import burn

        n, loop, out = self.node_n, self.loop, []
        try:
            ipe = self.pool("interpreter", 2)
            out.append(
                Contender(
                    "InterpreterPoolExecutor(2): node fn",
                    PEER,
                    measure.window(lambda: ipe.submit(burn, n), runs, c),
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
                        loop, lambda: anyio.to_process.run_sync(burn, n, limiter=limiter), runs, c
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
                            lambda: anyio.to_interpreter.run_sync(burn, n, limiter=ilimiter),
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

    # -- running a section --------------------------------------------------------------------
    def run_section(
        self,
        section: str,
        w: Workload,
        c: int,
        runs: int,
        contenders: list[Contender],
        skipped: dict[str, str],
        *,
        rounds: int | None = None,
        reference: str | None = None,
        note: str = "",
    ) -> Section:
        rounds = rounds or self.opt.n_rounds
        reference = reference or next(x.name for x in contenders if x.kind == FLOOR)
        self.progress.section(f"{section}: {w.key}, concurrency {c}:")
        failed: dict[str, str] = {}
        times, lats = measure.interleaved(
            {x.name: x.run for x in contenders},
            rounds,
            progress=self.progress.line,
            failed=failed,
        )
        sec = Section(section, w.key, c, runs, rounds, reference, skipped=dict(skipped), note=note)
        sec.skipped.update({k: f"failed: {v}" for k, v in failed.items()})
        sec.tree_rss_kib = measure.tree_rss_kib()
        kinds = {x.name: x.kind for x in contenders}
        ref = times.get(reference)
        for name, rt in times.items():
            sec.contenders.append(summarise(name, kinds[name], rt, lats.get(name, []), runs, ref))
        self.sections.append(sec)
        return sec

    # -- sections -----------------------------------------------------------------------------
    def sec_trivial(self) -> None:
        ws = self.workloads()
        q = self.opt.quick
        runs = 10 if q else 200
        for c in (1, 8) if q else (1, 2, 8):
            w = ws["trivial-sync"]
            workers = 1 if c == 1 else 2
            tiers = [
                (t, t, workers)
                for t in ("inline", "context", "thread", "subinterpreter", "process")
            ]
            skipped: dict[str, str] = {}
            cs = self.contenders(w, c, runs, tiers, skipped)
            self.run_section("trivial", w, c, runs, cs, skipped)
        w = ws["trivial-async"]
        skipped = {}
        tiers = [(t, t, 1) for t in ("inline", "context", "thread", "subinterpreter", "process")]
        self.run_section(
            "trivial", w, 1, runs, self.contenders(w, 1, runs, tiers, skipped), skipped
        )

    def sec_cpu(self) -> None:
        w = self.workloads()["cpu"]
        for c in (8,) if self.opt.quick else (1, 8):
            runs = 8 if c == 8 else 4
            skipped: dict[str, str] = {}
            tiers = [
                ("thread (2 workers)", "thread", 2),
                ("subinterpreter (2 workers, hybrid)", "subinterpreter", 2),
                ("process (2 workers)", "process", 2),
                ("process (1 worker)", "process", 1),
            ]
            cs = self.contenders(w, c, runs, tiers, skipped)
            # the floor here is graph.batch on the caller (threads, one GIL); the stdlib peers
            # run the graph on 2 workers
            if c == 1:
                cs = [x for x in cs if "(1)" not in x.name]
                tpe, ppe = self.pool("thread", 2), self.pool("process", 2)
                from subiso.bench import peers

                cs.insert(
                    1,
                    Contender(
                        "ThreadPoolExecutor(2).submit(graph.invoke)",
                        PEER,
                        pool_round(tpe, runs, w.graph.invoke, w.input),
                    ),
                )
                cs.insert(
                    2,
                    Contender(
                        "ProcessPoolExecutor(2)",
                        PEER,
                        pool_round(ppe, runs, peers.invoke, w.target, w.input, False),
                    ),
                )
            cs += self.offload_peers(c, runs, skipped)
            self.run_section(
                "cpu",
                w,
                c,
                runs,
                cs,
                skipped,
                rounds=max(2, self.opt.n_rounds - 2),
                note=f"node: burn({self.node_n}) ~ {self.node_ms:.0f} ms on the host at calibration",
            )

    def sec_io(self) -> None:
        w = self.workloads()["io"]
        plan = (
            ((1, 4), (32, 32))
            if self.opt.quick
            else ((1, 10), (2, 10), (8, 32), (32, 64), (256, 256))
        )
        for c, runs in plan:
            skipped: dict[str, str] = {}
            workers = 1 if c == 1 else 2
            tiers = [
                (t, t, workers)
                for t in ("inline", "context", "thread", "subinterpreter", "process")
            ]
            cs = self.contenders(w, c, runs, tiers, skipped)
            self.run_section(
                "io",
                w,
                c,
                runs,
                cs,
                skipped,
                rounds=max(2, self.opt.n_rounds - 2),
                note=f"{4} branches x asyncio.sleep({w.input['delay']})",
            )

    def sec_messages(self) -> None:
        w = self.workloads()["messages"]
        runs = 2 if self.opt.quick else 10
        skipped: dict[str, str] = {}
        tiers = [(t, t, 1) for t in ("inline", "context", "thread", "subinterpreter", "process")]
        cs = self.contenders(w, 1, runs, tiers, skipped)
        self.run_section(
            "messages",
            w,
            1,
            runs,
            cs,
            skipped,
            rounds=max(2, self.opt.n_rounds - 2),
            note=f"{len(w.input['messages'])} HumanMessages x 10 kB in, the same plus one reply out",
        )

    def sec_demo(self) -> None:
        ws = self.workloads()
        if "demo" not in ws:
            return
        w = ws["demo"]
        plan = ((1, 2),) if self.opt.quick else ((1, 10), (8, 16))
        for c, runs in plan:
            workers = 1 if c == 1 else 2
            skipped: dict[str, str] = {}
            tiers = [
                (t, t, workers)
                for t in ("inline", "context", "thread", "subinterpreter", "process")
            ]
            if c > 1:
                tiers = [x for x in tiers if x[1] not in ("inline", "context")]
            cs = self.contenders(w, c, runs, tiers, skipped)
            self.run_section("demo", w, c, runs, cs, skipped, rounds=max(2, self.opt.n_rounds - 2))

    def sec_scaling(self) -> None:
        """Bursts of N trivial runs submitted at once; cost per run as N grows."""
        from subiso import GraphConfig

        w = self.workloads()["trivial-sync"]
        cfg = GraphConfig(graph=w.target, input=w.input)
        sizes = (10, 100, 1000) if self.opt.quick else (10, 100, 1000, 10_000)
        cs: list[Contender] = []
        skipped: dict[str, str] = {}
        for tier in ("thread", "process"):
            why = self.tier_available(tier)
            if why:
                skipped[tier] = why
                continue
            try:
                ex = self.tier(tier, 1)
            except Exception as exc:
                skipped[tier] = f"could not start: {type(exc).__name__}: {exc}"
                continue
            for n in sizes:
                cs.append(Contender(f"{tier} x{n}", TIER, burst(ex, cfg, n)))
        self.progress.section(f"scaling: bursts of {', '.join(map(str, sizes))} {w.key} runs:")
        rounds = 1 if self.opt.quick else 3
        failed: dict[str, str] = {}
        times, lats = measure.interleaved(
            {x.name: x.run for x in cs}, rounds, progress=self.progress.line, failed=failed
        )
        sec = Section("scaling", w.key, 0, 0, rounds, "thread x100", unit="burst", skipped=skipped)
        sec.note = "a burst of N runs submitted at once to a 1-worker executor, then awaited"
        sec.skipped.update({k: f"failed: {v}" for k, v in failed.items()})
        sec.tree_rss_kib = measure.tree_rss_kib()
        for tier in ("thread", "process"):
            ref = times.get(f"{tier} x100")
            for n in sizes:
                name = f"{tier} x{n}"
                if name in times:
                    ref_per_run = [t / 100 for t in ref] if ref else None
                    d = summarise(
                        name, TIER, [t / n for t in times[name]], lats.get(name, []), 1, ref_per_run
                    )
                    d["burst"] = n
                    d["tier"] = tier
                    sec.contenders.append(d)
        self.sections.append(sec)

    def sec_fresh(self) -> None:
        """Each kind in a fresh process per round (kinds alternate); first result and RSS."""
        self.workloads()
        kinds = ("subinterpreter", "process") if self.opt.quick else FRESH_KINDS
        rounds = 1 if self.opt.quick else 3
        samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        skipped: dict[str, str] = {}
        for r in range(rounds):
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            for kind in order:
                if kind in skipped:
                    continue
                self.progress.section(f"fresh: round {r + 1}/{rounds}, first result of {kind}")
                try:
                    samples[kind].append(self._fresh_child(kind))
                except Exception as exc:
                    skipped[kind] = f"{type(exc).__name__}: {str(exc)[-300:]}"
        ref = samples.get("process") or []
        sec = Section(
            "fresh", "cpu", 2, 1, rounds, "process", unit="fresh executor", skipped=skipped
        )
        sec.note = (
            "a fresh python per sample that has imported subiso and the graph; measured: the "
            "executor's constructor to its first CPU-graph result, then tree RSS growth after "
            "2 rounds of 2 runs in flight (2 workers)"
        )
        for kind in kinds:
            got = samples[kind]
            if kind in skipped or not got:
                continue
            first = [s["first_s"] for s in got]
            rss = [s["rss_kib"] for s in got]
            d = summarise(
                kind,
                TIER if kind in ("subinterpreter", "process", "thread") else PEER,
                first,
                [],
                1,
                [s["first_s"] for s in ref] if len(ref) == len(got) else None,
            )
            d["first_result_ms"] = measure.median(first) * 1e3
            d["rss_growth_mib"] = measure.median(rss) / 1024
            d["rss_round_kib"] = rss
            d["mode"] = got[0].get("mode")
            if len(ref) == len(got):
                pr = [s["rss_kib"] for s in ref]
                d["rss_ratio"] = (
                    measure.median(rss) / measure.median(pr) if measure.median(pr) else None
                )
            sec.contenders.append(d)
        self.sections.append(sec)

    def sec_serve(self) -> None:
        """subiso serve next to langgraph dev (opt-in: subiso.bench.serve)."""
        from subiso.bench.serve import section

        section(self)

    def _fresh_child(self, kind: str) -> dict[str, Any]:
        import json

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        cmd = [sys.executable, "-m", "subiso.bench.fresh", kind, str(self.node_n)]
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=str(self.root) if self.root else None,
        )
        if out.returncode != 0:
            raise RuntimeError(
                out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode
            )
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    # -- everything ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import platform

        import subiso

        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        caps = subiso.capabilities()
        try:
            self.progress.section("calibrating and importing workloads")
            self.workloads()
            for k, name in enumerate(self.opt.sections, 1):
                self.progress.stage = f"{k}/{len(self.opt.sections)}"
                getattr(self, f"sec_{name}")()
        finally:
            self.close()
        from subiso.bench.targets import targets

        result = {
            "schema": "subiso-bench/1",
            "python": {
                "tag": python_tag(),
                "version": sys.version.split()[0],
                "implementation": sys.implementation.name,
                "executable": sys.executable,
                "free_threaded": _free_threaded(),
                "subinterpreters": getattr(caps, "subinterpreters", None),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg()[0],
            },
            "subiso_version": subiso.__version__,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": self.opt.quick,
            "wall_s": time.perf_counter() - started,
            "node_ms": self.node_ms,
            "node_n": self.node_n,
            "notes": self.notes,
            "sections": [s.as_dict() for s in self.sections],
        }
        result["targets"] = targets(result)
        return result


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
