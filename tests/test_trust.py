"""Allow-lists: every tier refuses a graph or location outside them before importing or opening
anything; a settings file sets them for whichever tier it selects."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import ConfigError, GraphConfig
from tests.workloads import expected

TIERS = ["inline", "context", "thread", "subinterpreter", "process"]


def options(tier: str, **extra: Any) -> dict[str, Any]:
    return extra if tier in ("inline", "context") else {"max_workers": 1, **extra}


@pytest.mark.parametrize("tier", TIERS)
def test_allowed_graphs_refuse_before_import(make_executor: Any, tier: str) -> None:
    ex = make_executor(tier, **options(tier, allowed_graphs=["tests.workloads:*"]))
    assert ex.run(GraphConfig(graph="tests.workloads:square", input=3)) == 9
    sys.modules.pop("tests.never_imported", None)
    with pytest.raises(ConfigError, match=r"allowed_graphs=\['tests\.workloads:\*'\]"):
        ex.run(GraphConfig(graph="tests.never_imported:graph"))
    with pytest.raises(ConfigError, match="refused"):
        ex.run({"graph": "os:system", "input": "echo pwned"})
    assert "tests.never_imported" not in sys.modules


@pytest.mark.parametrize("tier", ["inline", "thread"])
def test_allowed_locations_refuse_before_opening(
    make_executor: Any, tier: str, tmp_path: Path
) -> None:
    ok = tmp_path / "ok"
    ex = make_executor(tier, **options(tier, allowed_locations=[f"sqlite:///{ok}/*"]))
    cfg = GraphConfig(
        graph="tests.workloads:sync_graph",
        input={"x": 1},
        config={"configurable": {"thread_id": "t"}},
        checkpointer=f"sqlite:///{ok}/runs.db",
    )
    assert ex.run(cfg) == {"x": expected(1)}
    outside = tmp_path / "elsewhere.db"
    with pytest.raises(ConfigError, match="allowed_locations"):
        ex.run(cfg.replace(checkpointer=f"sqlite:///{outside}"))
    assert not outside.exists()
    assert ex.run(cfg.replace(checkpointer="memory")) == {"x": expected(1)}  # opens nothing


def test_settings_file_allow_lists_reach_the_selected_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUBISO_CONFIG", raising=False)
    monkeypatch.delenv("SUBISO_EXECUTOR", raising=False)
    Path("subiso.toml").write_text(
        'executor = "inline"\nallowed_graphs = ["tests.workloads:square"]\n', encoding="utf-8"
    )
    with subiso.load_executor() as ex:
        assert ex.run({"graph": "tests.workloads:square", "input": 4}) == 16
        with pytest.raises(ConfigError, match="refused"):
            ex.run({"graph": "tests.workloads:sync_graph"})


def test_allow_lists_must_be_lists_of_patterns() -> None:
    with pytest.raises(ConfigError, match="allowed_graphs must be a list"):
        subiso.InlineExecutor(allowed_graphs="tests.*")  # type: ignore[typeddict-item]
