"""``subiso bench --quick``: a smoke run of every section in a subprocess; checks what it writes
(JSON schema, Markdown, PNG plots when matplotlib is installed). No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.timeout(90)
def test_bench_quick_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "subiso", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=85,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| target |" in proc.stdout
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
    assert {"trivial", "cpu", "io", "messages", "demo", "scaling", "fresh"} <= sections
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
    targets = {t["target"]: t for t in res["targets"]}
    assert len(targets) >= 9
    for t in targets.values():
        assert {"goal", "figure", "range", "met", "measured"} <= set(t)
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
