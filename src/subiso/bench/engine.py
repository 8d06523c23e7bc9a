"""The benchmark engine: sections of interleaved rounds, each timing subiso's tiers next to the
peers a user would pick instead (the graph called directly, stdlib pools, anyio).

Sections (``Options.sections``):

* ``trivial`` - ``sync_graph`` at concurrency 1, 2, 8 and ``async_graph`` at 1: per-run
  overhead vs ``graph.invoke`` on the caller (the no-isolation floor), a bare worker process
  (the process floor) and the stdlib thread hop ``ThreadPoolExecutor(1).submit(graph.invoke)``;
* ``cpu`` - a graph whose one ``@offload`` node burns ~``node_ms`` of pure Python, 8 (and 1) runs
  in flight on 2 workers: tiers vs ``graph.batch``, stdlib thread/process/interpreter pools and
  ``anyio.to_interpreter``/``to_process`` running the node function;
* ``io`` - ``io_graph`` (4-way ``asyncio.sleep`` fan-out) at 1, 2, 8, 32, 256 runs in flight vs
  ``graph.abatch(max_concurrency=)`` on the caller's loop;
* ``payload`` - states whose bytes dominate, one run at a time: ~1 MB of LangChain messages, a
  ~10 MB state of plain documents, a chat of 2,000 short messages; next to
  ``ProcessPoolExecutor(1)``, a bare worker process moving the state with subiso's codec (the
  floor) and bare workers moving the encoded bytes alone;
* ``demo`` - ``examples.contract_review.graph:graph`` at 1 and 8 in flight;
* ``scaling`` - bursts of 10, 100, 1000 (10000 in the full run) trivial runs on thread and
  process tiers: cost per run as the burst grows;
* ``fresh`` - per kind, in a fresh process: constructor to first result of the CPU graph, and
  tree RSS growth after warming 2 workers.

Who competes is :mod:`~subiso.bench.contenders`; what they run, :mod:`~subiso.bench.workloads`;
how a comparison is timed, :mod:`~subiso.bench.rounds`; the files, :mod:`~subiso.bench.report`.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subiso.bench import PAYLOADS, measure
from subiso.bench import contenders as cs
from subiso.bench.contenders import PEER, TIER, Contender
from subiso.bench.rounds import Progress, Section, compare, summarise
from subiso.bench.workloads import Workload

ALL_SECTIONS = ("trivial", "cpu", "io", "payload", "demo", "scaling", "fresh")
TIERS = ("inline", "context", "thread", "subinterpreter", "process")
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
        self.pools = cs.Pools(lambda: [w.target for w in self.workloads().values()])
        self.node_n = 0
        self.node_ms = options.node_ms or (5.0 if options.quick else 40.0)
        self._workloads: dict[str, Workload] | None = None

    def workloads(self) -> dict[str, Workload]:
        if self._workloads is None:
            from subiso.bench.workloads import catalog

            if self.root is None:
                self.notes.append(
                    "examples/ not found (run from the repository root): the demo is skipped"
                )
            if not self.node_n:
                from subiso.bench.cpu import calibrate

                self.node_n = calibrate(self.node_ms)
            self._workloads = catalog(quick=self.opt.quick, node_n=self.node_n, root=self.root)
        return self._workloads

    def close(self) -> None:
        self.pools.close()
        self.notes += self.pools.notes
        self.progress.done()

    def contenders(
        self,
        w: Workload,
        c: int,
        runs: int,
        tiers: list[tuple[str, str, int]],
        skipped: dict[str, str],
        *,
        payload: bool = False,
    ) -> list[Contender]:
        return cs.for_workload(
            self.pools, w, c, runs, tiers, skipped, payload=payload, lean=payload and self.opt.quick
        )

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
        sec = compare(
            self.progress,
            section,
            w.key,
            c,
            runs,
            contenders,
            skipped,
            rounds=rounds or self.opt.n_rounds,
            reference=reference,
            note=note,
        )
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
            tiers = [(t, t, workers) for t in TIERS]
            skipped: dict[str, str] = {}
            self.run_section(
                "trivial", w, c, runs, self.contenders(w, c, runs, tiers, skipped), skipped
            )
        w = ws["trivial-async"]
        skipped = {}
        tiers = [(t, t, 1) for t in TIERS]
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
            contenders = self.contenders(w, c, runs, tiers, skipped)
            # the floor here is graph.batch on the caller (threads, one GIL); the stdlib peers
            # run the graph on 2 workers
            if c == 1:
                contenders = [x for x in contenders if "(1)" not in x.name]
                tpe, ppe = self.pools.pool("thread", 2), self.pools.pool("process", 2)
                from subiso.bench import peers

                contenders.insert(
                    1,
                    Contender(
                        "ThreadPoolExecutor(2).submit(graph.invoke)",
                        PEER,
                        cs.pool_round(tpe, runs, w.graph.invoke, w.input),
                    ),
                )
                contenders.insert(
                    2,
                    Contender(
                        "ProcessPoolExecutor(2)",
                        PEER,
                        cs.pool_round(ppe, runs, peers.invoke, w.target, w.input, False),
                    ),
                )
            contenders += cs.offload_peers(self.pools, self.node_n, c, runs, skipped)
            self.run_section(
                "cpu",
                w,
                c,
                runs,
                contenders,
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
            tiers = [(t, t, workers) for t in TIERS]
            self.run_section(
                "io",
                w,
                c,
                runs,
                self.contenders(w, c, runs, tiers, skipped),
                skipped,
                rounds=max(2, self.opt.n_rounds - 2),
                note=f"4 branches x asyncio.sleep({w.input['delay']})",
            )

    def sec_payload(self) -> None:
        """States whose bytes dominate, one run at a time, every tier next to
        ``ProcessPoolExecutor(1)`` and the bare workers moving the same state."""
        ws = self.workloads()
        runs = 2 if self.opt.quick else 10
        # a quick run keeps what the targets compare: graph.invoke, the codec and pipe floors,
        # ProcessPoolExecutor(1) and the process tier
        names = ("process",) if self.opt.quick else TIERS
        for key in PAYLOADS:
            w = ws[key]
            skipped: dict[str, str] = {}
            tiers = [(t, t, 1) for t in names]
            self.run_section(
                "payload",
                w,
                1,
                runs,
                self.contenders(w, 1, runs, tiers, skipped, payload=True),
                skipped,
                rounds=max(2, self.opt.n_rounds - 2),
                reference="graph.invoke",
                note=w.note,
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
            tiers = [(t, t, workers) for t in TIERS]
            if c > 1:
                tiers = [x for x in tiers if x[1] not in ("inline", "context")]
            contenders = self.contenders(w, c, runs, tiers, skipped)
            self.run_section(
                "demo", w, c, runs, contenders, skipped, rounds=max(2, self.opt.n_rounds - 2)
            )

    def sec_scaling(self) -> None:
        """Bursts of N trivial runs submitted at once; cost per run as N grows."""
        from subiso import GraphConfig

        w = self.workloads()["trivial-sync"]
        cfg = GraphConfig(graph=w.target, input=w.input)
        sizes = (10, 100, 1000) if self.opt.quick else (10, 100, 1000, 10_000)
        contenders: list[Contender] = []
        skipped: dict[str, str] = {}
        for tier in ("thread", "process"):
            why = self.pools.tier_available(tier)
            if why:
                skipped[tier] = why
                continue
            try:
                ex = self.pools.tier(tier, 1)
            except Exception as exc:
                skipped[tier] = f"could not start: {type(exc).__name__}: {exc}"
                continue
            for n in sizes:
                contenders.append(Contender(f"{tier} x{n}", TIER, cs.burst(ex, cfg, n)))
        self.progress.section(f"scaling: bursts of {', '.join(map(str, sizes))} {w.key} runs:")
        rounds = 1 if self.opt.quick else 3
        failed: dict[str, str] = {}
        times, lats = measure.interleaved(
            {x.name: x.run for x in contenders}, rounds, progress=self.progress.line, failed=failed
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
            # What this process holds from here on lives as long as the run (LangGraph, the
            # workloads' inputs): frozen, as a service would after start-up, so a full
            # collection walks what the contenders allocate, not the bench's own heap (the
            # process tier's workers freeze theirs the same way).
            gc.collect()
            gc.freeze()
            self.notes.append(
                "the bench froze its long-lived objects after building the workloads "
                "(gc.freeze): full collections walk what the runs allocate"
            )
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
