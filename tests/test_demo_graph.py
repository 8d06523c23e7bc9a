"""The contract-review demo graph itself, run directly (no subiso executor)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.contract_review import clauses
from examples.contract_review.graph import NODES, builder, graph, make_graph

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "contract_review" / "sample_contract.txt"
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")
SAMPLE_CLAUSES = 70  # sections 1-15 of the sample, every numbered clause


@pytest.fixture(scope="module")
def output() -> dict[str, Any]:
    return graph.invoke({"text": SAMPLE_TEXT})


def findings_by_id(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["clause_id"]: f for f in output["findings"]}


def test_graph_shape() -> None:
    assert set(NODES) <= set(graph.get_graph().nodes)
    assert make_graph() is not graph
    assert set(make_graph().invoke({"text": SAMPLE_TEXT})) == {"title", "findings", "report"}
    assert builder.compile().invoke({"text": SAMPLE_TEXT}) == graph.invoke({"text": SAMPLE_TEXT})


def test_clause_count_and_segmentation() -> None:
    state = clauses.split_clauses({"text": SAMPLE_TEXT})
    ids = [c["id"] for c in state["clauses"]]
    assert len(ids) == SAMPLE_CLAUSES
    assert ids[0] == "1.1" and ids[-1] == "15.9"
    assert len(set(ids)) == len(ids)
    assert state["title"] == "Master Services Agreement"
    assert state["parties"] == ["Provider", "Customer"]
    by_id = {c["id"]: c for c in state["clauses"]}
    liability = by_id["11.3"]
    assert liability["section_title"] == "Limitation Of Liability"
    assert liability["heading"] == "Customer's Liability"
    assert liability["references"] == ["5", "10.1"]
    assert "liability" in liability["keywords"]
    assert by_id["3.2"]["durations_days"] == [90, 360]
    assert by_id["4.3"]["percentages"] == [2.0]
    assert by_id["4.5"]["money"] == [2500.0]
    # No text from the signature block leaks into the last clause.
    assert "WITNESS" not in by_id["15.9"]["text"] and "By:" not in by_id["15.9"]["text"]


@pytest.mark.parametrize(
    ("clause_id", "level", "rule"),
    [
        ("11.3", "high", "unlimited_liability"),
        ("10.1", "high", "broad_indemnity"),
        ("11.2", "high", "low_liability_cap"),
        ("8.2", "high", "provider_owns_deliverables"),
        ("12.3", "high", "termination_for_convenience"),
        ("15.3", "high", "unilateral_changes"),
        ("3.2", "medium", "auto_renewal"),
        ("12.2", "medium", "termination_for_convenience"),
        ("4.3", "medium", "high_late_interest"),
        ("6.4", "medium", "short_confidentiality"),
        ("7.3", "medium", "slow_breach_notice"),
        ("14.1", "low", "foreign_forum"),
    ],
)
def test_risky_clauses_flagged(
    output: dict[str, Any], clause_id: str, level: str, rule: str
) -> None:
    finding = findings_by_id(output)[clause_id]
    assert finding["level"] == level
    assert rule in finding["rules"]
    assert finding["reasons"]


@pytest.mark.parametrize("clause_id", ["1.1", "6.2", "11.4", "15.6", "15.9"])
def test_benign_clauses_not_flagged(output: dict[str, Any], clause_id: str) -> None:
    finding = findings_by_id(output)[clause_id]
    assert finding["level"] == "none" and finding["score"] == 0.0 and not finding["rules"]


def test_aggregation_consistent(output: dict[str, Any]) -> None:
    report, findings = output["report"], output["findings"]
    assert report["clause_count"] == len(findings) == SAMPLE_CLAUSES
    assert list(report["counts_by_level"]) == ["high", "medium", "low", "none"]
    assert sum(report["counts_by_level"].values()) == report["clause_count"]
    for level, count in report["counts_by_level"].items():
        assert count == sum(1 for f in findings if f["level"] == level)
    for category, count in report["counts_by_category"].items():
        assert count == sum(1 for f in findings if category in f["categories"])
    flagged = [f for f in findings if f["score"] > 0]
    assert sum(report["counts_by_level"][lvl] for lvl in ("high", "medium", "low")) == len(flagged)

    top = report["top_risks"]
    assert len(top) == clauses.TOP_N
    assert [f["score"] for f in top] == sorted((f["score"] for f in top), reverse=True)
    assert top[0]["clause_id"] == "11.3"
    assert min(f["score"] for f in top) >= max(f["score"] for f in flagged if f not in top)
    assert report["risk_score"] == round(10 * sum(f["score"] for f in top) / clauses.TOP_N, 1)
    assert report["overall_risk"] == "high"
    assert "insurance" in report["missing_protections"]
    assert "confidentiality" not in report["missing_protections"]


def test_output_is_json_like_and_deterministic(output: dict[str, Any]) -> None:
    assert json.loads(json.dumps(output)) == output
    assert graph.invoke({"text": SAMPLE_TEXT}) == output


def test_ainvoke_matches_invoke(output: dict[str, Any]) -> None:
    async def main() -> dict[str, Any]:
        return await graph.ainvoke({"text": SAMPLE_TEXT})

    assert asyncio.run(main()) == output


def test_score_node_fans_out_one_task_per_clause() -> None:
    state = clauses.split_clauses({"text": SAMPLE_TEXT})
    seen: list[str] = []

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:
            seen.append(getattr(coro, "__qualname__", ""))
            if factory is not None:
                return factory(loop, coro, **kwargs)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)
        return await clauses.score_clauses(state)

    result = asyncio.run(main())
    assert seen.count("_score_one") == SAMPLE_CLAUSES
    assert result == clauses.score_clauses_sync(state)


def test_path_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, output: dict[str, Any]
) -> None:
    assert graph.invoke({"path": str(SAMPLE)}) == output
    monkeypatch.chdir(tmp_path)  # relative paths fall back to the project root
    assert graph.invoke({"path": "examples/contract_review/sample_contract.txt"}) == output


def test_missing_input_raises() -> None:
    with pytest.raises(ValueError, match=r"'text'.*'path'"):
        graph.invoke({})


def test_empty_contract() -> None:
    out = graph.invoke({"text": "NOTHING TO SEE\n\nJust a letter without numbered sections."})
    assert out["findings"] == []
    assert out["report"]["clause_count"] == 0
    assert out["report"]["overall_risk"] == "none"
    assert out["report"]["risk_score"] == 0.0


def test_split_is_offloadable() -> None:
    from subiso.executors.subinterpreter.offload import is_offloaded

    assert is_offloaded(clauses.split_clauses)
    assert not is_offloaded(clauses.aggregate_report)


def test_clauses_module_does_not_import_langgraph() -> None:
    code = (
        "import sys, examples.contract_review.clauses; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langgraph', 'langchain_core', 'pydantic', 'pydantic_core', 'msgspec')); "
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def _interpreters_import() -> str | None:
    """How to import PEP 734 interpreters here: stdlib on 3.14, the backport on 3.13."""
    if sys.version_info >= (3, 14):
        return "from concurrent import interpreters"
    try:
        from interpreters_backport import interpreters  # noqa: F401
    except ImportError:
        return None
    return "from interpreters_backport import interpreters"


@pytest.mark.skipif(_interpreters_import() is None, reason="no PEP 734 interpreters here")
def test_clauses_module_loads_in_subinterpreter() -> None:
    """The offloaded node's module imports and runs in an isolated (own-GIL) interpreter."""
    code = (
        "import sys\n"
        f"{_interpreters_import()}\n"
        "interp = interpreters.create()\n"
        "try:\n"
        "    interp.prepare_main(p=tuple(sys.path))\n"  # lists are not shareable
        "    interp.exec('import sys; sys.path[:] = p; import examples.contract_review.clauses as c;"
        ' assert len(c.split_clauses({"path": "examples/contract_review/sample_contract.txt"})'
        '["clauses"]) == 70\')\n'
        "finally:\n"
        "    interp.close()\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# -- the demo command: checkpoints in the per-user data directory, a new thread per run ---------
def _demo(cwd: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBISO_")}
    env.update(PYTHONPATH=str(ROOT), SUBISO_DATA_DIR=str(data))
    return subprocess.run(
        [sys.executable, "-m", "examples.contract_review", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _thread_of(stdout: str) -> str:
    match = re.search(r"^checkpoints: thread (\S+) in (.+) \(", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_demo_keeps_checkpoints_out_of_the_working_directory(tmp_path: Path) -> None:
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    first = _demo(work, data, "--executor", "auto")
    assert first.returncode == 0, first.stderr
    assert "RunReport:" in first.stdout and "selected_by     auto: " in first.stdout
    second = _demo(work, data, "--executor", "inline")
    assert second.returncode == 0, second.stderr
    assert list(work.iterdir()) == []  # nothing written where the demo was started
    db = data / "contract_review.db"
    assert db.is_file() and str(db) in first.stdout
    assert _thread_of(first.stdout) != _thread_of(second.stdout)  # a new thread per run
    again = _demo(work, data, "--executor", "inline", "--thread-id", "mine")
    assert again.returncode == 0, again.stderr
    assert _thread_of(again.stdout) == "mine"


def test_demo_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from examples.contract_review.__main__ import data_dir

    monkeypatch.setenv("SUBISO_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "explicit" and data_dir().is_dir()
    monkeypatch.delenv("SUBISO_DATA_DIR")
    assert data_dir() == tmp_path / "xdg" / "subiso"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "subiso"


def test_demo_config_names_no_fixed_thread_or_database() -> None:
    from subiso import GraphConfig

    cfg = GraphConfig.from_file(ROOT / "examples" / "contract_review" / "contract_review.toml")
    assert cfg.checkpointer is None and cfg.thread_id is None
    assert cfg.durability is None  # "exit" comes with the demo's checkpointer, see below


def test_demo_config_runs_without_langgraphs_durability_warning(tmp_path: Path) -> None:
    """LangGraph warns "`durability` has no effect when no checkpointer is present": subiso's
    own defaults never make it (once per worker under --repeat, before). The demo adds its
    durability with its checkpointer."""
    from examples.contract_review.__main__ import prepare
    from subiso import GraphConfig

    toml = ROOT / "examples" / "contract_review" / "contract_review.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBISO_")}
    env.update(PYTHONPATH=str(ROOT), SUBISO_DATA_DIR=str(tmp_path / "data"))
    command = ["run", str(toml), "--output", "none", "--repeat", "3", "--concurrency", "2"]
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-m", "subiso", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "durability" not in proc.stderr, proc.stderr
    demo = _demo(tmp_path, tmp_path / "data", "--executor", "inline")
    assert demo.returncode == 0 and "durability" not in demo.stderr, demo.stderr
    cfg = prepare(GraphConfig.from_file(toml), None)
    assert cfg.durability == "exit" and cfg.checkpointer is not None
