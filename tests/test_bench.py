"""``subiso bench --quick``: a smoke run of every section in a subprocess; checks what it writes
(JSON schema, Markdown, PNG plots when matplotlib is installed). No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

CONTENDER_KEYS = {
    "name",
    "kind",
    "round_s",
    "per_run_us",
    "throughput_per_s",
    "p50_ms",
    "p99_ms",
    "ratio",
    "ratio_range",
}


@pytest.mark.timeout(240)  # a bound against a hang; a quick run takes about a minute
def test_bench_quick_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "subiso", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Targets are indicative only" in proc.stdout  # a quick run scores nothing
    assert all(len(line) <= 100 for line in proc.stdout.splitlines()), proc.stdout
    # progress (not a terminal: a line per step) says which section of how many, and what
    for step in (
        "] 1/7 trivial: trivial-sync, concurrency 1:",
        "] 3/7 io: io, concurrency 32:",
        "] 7/7 fresh: round 1/1, first result of process",
    ):
        assert step in proc.stderr, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["schema"] == "subiso-bench/1"
    assert res["quick"] is True
    assert res["python"]["tag"].startswith(sys.implementation.name)
    assert {"cpus", "loadavg_before", "loadavg_after"} <= set(res["machine"])
    sections = {s["section"] for s in res["sections"]}
    assert {"trivial", "cpu", "io", "payload", "demo", "scaling", "fresh"} <= sections
    for s in res["sections"]:
        assert {
            "workload",
            "concurrency",
            "rounds",
            "reference",
            "contenders",
            "skipped",
            "tree_rss_kib",
        } <= set(s)
        for c in s["contenders"]:
            assert set(c) >= CONTENDER_KEYS, c
            assert c["kind"] in ("floor", "peer", "tier")
            assert len(c["round_s"]) == s["rounds"]
    trivial = next(s for s in res["sections"] if s["section"] == "trivial")
    names = {c["name"] for c in trivial["contenders"]}
    assert "graph.invoke" in names and any(n.startswith("ThreadPoolExecutor") for n in names)
    payloads = {s["workload"]: s for s in res["sections"] if s["section"] == "payload"}
    assert set(payloads) == {"messages", "state-10mb", "many-small"}
    for s in payloads.values():
        names = {c["name"] for c in s["contenders"]}
        assert {"ProcessPoolExecutor(1)", "process"} <= names, names
        assert "bare worker process: subiso's codec each way, a pipe" in names, names
        assert "bare worker process: pipe, the same bytes each way, nothing decoded" in names
    targets = {t["target"]: t for t in res["targets"]}
    assert len(targets) >= 18
    for t in targets.values():
        assert {"goal", "figure", "range", "met", "measured", "applies", "indicative"} <= set(t)
        assert t["indicative"] is True
    for key in ("messages", "state-10mb", "many-small"):
        assert targets[f"payload {key}: process vs ProcessPoolExecutor(1)"]["figure"] is not None
    md = (tmp_path / "results.md").read_text()
    assert "## Targets" in md and "## Sections" in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("matplotlib" in n for n in res["notes"])
        return
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert {"per_run.png", "io_throughput.png", "cpu_throughput.png", "scaling.png"} <= set(pngs)
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.timeout(180)
def test_bench_serve_section_quick(tmp_path: Path) -> None:
    """``--sections serve`` (opt-in): subiso serve on the thread and process tiers, and
    langgraph dev where it is installed - skipped with the reason where it is not."""
    pytest.importorskip("starlette")
    pytest.importorskip("langgraph_sdk")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "subiso", "bench", "--quick", "--sections", "serve",
         "--rounds", "1", "--out", str(tmp_path), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    sections = [s for s in res["sections"] if s["section"] == "serve"]
    assert [s["workload"] for s in sections] == [
        "runs.wait echo, on a thread",
        "runs.wait echo, stateless",
        "GET /ok while CPU-bound runs execute",
    ]
    for s in sections:
        names = {c["name"] for c in s["contenders"]}
        assert {"subiso serve thread", "subiso serve process"} <= names, s
        assert "langgraph dev" in names or "langgraph dev" in s["skipped"], s
        for c in s["contenders"]:
            assert set(c) >= CONTENDER_KEYS, c
    assert "| subiso serve process | tier |" in (tmp_path / "results.md").read_text()


def _canned_result(quick: bool, version: str = "3.14.0", subinterpreters: Any = "x") -> Any:
    """What Bench.run returns, with no sections measured."""
    from subiso.bench.targets import targets

    res = {
        "schema": "subiso-bench/1",
        "python": {"tag": "cpython-x", "version": version, "subinterpreters": subinterpreters},
        "machine": {"cpus": 2, "loadavg_before": 0.5, "loadavg_after": 0.5},
        "subiso_version": "0",
        "started_at": "2026-12-07T00:00:00+0000",
        "quick": quick,
        "wall_s": 1.0,
        "notes": ["a note long enough to need wrapping at one hundred columns " * 3],
        "sections": [],
    }
    res["targets"] = targets(res)
    return res


@pytest.mark.parametrize("args", [["--quick"], ["--sections", "payload"]])
def test_smoke_runs_write_to_a_scratch_directory_and_fit_100_columns(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """A quick run, or a run of a few sections, never writes over benchmarks/results/; what
    it prints fits 100 columns (the Markdown table goes to the file)."""
    import tempfile

    from click.testing import CliRunner

    from subiso.bench import engine
    from subiso.cli import main

    class Canned:
        root = ROOT

        def __init__(self, options: Any) -> None:
            self.options = options

        def run(self) -> Any:
            return _canned_result(self.options.quick)

    monkeypatch.setattr(engine, "Bench", Canned)
    committed = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").rglob("*")}
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 0, result.output
    (md,) = [line.strip() for line in result.stdout.splitlines() if line.endswith("results.md")]
    out = Path(md).parent
    assert out.is_relative_to(tempfile.gettempdir()) and (out / "results.json").is_file()
    assert json.loads((out / "results.json").read_text())["quick"] == ("--quick" in args)
    assert {p: p.stat().st_mtime_ns for p in committed} == committed
    assert all(len(line) <= 100 for line in result.stdout.splitlines()), result.stdout
    assert ("indicative" in result.stdout) == ("--quick" in args)


def test_targets_that_do_not_apply_on_this_python_are_not_scored() -> None:
    from subiso.bench.report import target_table, terminal_summary

    res = _canned_result(quick=False, version="3.11.9", subinterpreters=None)
    hybrid = [t for t in res["targets"] if "hybrid" in t["target"]]
    assert len(hybrid) == 4
    for t in hybrid:
        assert t["applies"] is False and t["met"] is None and "3.11.9" in t["note"]
    assert "does not apply" in target_table(res)
    assert "does not apply" in terminal_summary(res, ROOT)
    here = _canned_result(quick=False)
    assert all(t["applies"] for t in here["targets"])
