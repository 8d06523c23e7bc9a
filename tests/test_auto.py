"""The "auto" tier: its decision table for simulated interpreters, and the choice it states in
logs and in every RunReport."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import subiso
from subiso import Capabilities, GraphConfig
from subiso.auto import auto_executor, choose_tier, current_capabilities, decide
from subiso.executors.thread import ThreadExecutor
from subiso.settings import ENV_CONFIG, ENV_EXECUTOR
from tests.conftest import BACKEND


def caps(
    python: str = "3.14.0",
    *,
    free_threaded: bool = False,
    gil_enabled: bool = True,
    subinterpreters: str | None = None,
    reason: str | None = None,
    implementation: str = "cpython",
) -> Capabilities:
    return Capabilities(
        python=python,
        implementation=implementation,
        free_threaded=free_threaded,
        gil_enabled=gil_enabled,
        subinterpreters=subinterpreters,
        subinterpreters_reason=reason if subinterpreters is None else None,
    )


FREE_THREADED_OFF = caps("3.14.0", free_threaded=True, gil_enabled=False)

# (capabilities, expected tier, words the reason must contain)
TABLE = {
    "3.14t GIL disabled": (FREE_THREADED_OFF, "thread", ["free-threaded", "GIL disabled"]),
    "3.13t GIL disabled, backend present": (
        caps(
            "3.13.5",
            free_threaded=True,
            gil_enabled=False,
            subinterpreters="interpreters_backport",
        ),
        "thread",
        ["free-threaded"],
    ),
    "3.14t GIL re-enabled, stdlib interpreters": (
        caps(
            "3.14.0",
            free_threaded=True,
            gil_enabled=True,
            subinterpreters="concurrent.interpreters",
        ),
        "subinterpreter",
        ["GIL is enabled", "concurrent.interpreters"],
    ),
    "3.14t GIL re-enabled, no interpreters": (
        caps("3.14.0", free_threaded=True, gil_enabled=True, reason="module missing"),
        "process",
        ["GIL is enabled", "module missing"],
    ),
    "3.14 GIL build, stdlib interpreters": (
        caps("3.14.2", subinterpreters="concurrent.interpreters"),
        "subinterpreter",
        ["GIL build", "concurrent.interpreters"],
    ),
    "3.13 GIL build, backport installed": (
        caps("3.13.1", subinterpreters="interpreters_backport"),
        "subinterpreter",
        ["interpreters_backport"],
    ),
    "3.13 GIL build, backport missing": (
        caps("3.13.1", reason="Python 3.13 needs the 'interpreters-pep-734' package"),
        "process",
        ["interpreters-pep-734"],
    ),
    "3.12": (caps("3.12.9", reason="no API"), "process", ["needs 3.13+"]),
    "3.12 even if a backend claimed to exist": (
        caps("3.12.9", subinterpreters="interpreters_backport"),
        "process",
        ["needs 3.13+"],
    ),
    "3.10": (caps("3.10.14", reason="no API"), "process", ["Python 3.10"]),
    "PyPy": (caps("3.11.9", implementation="pypy"), "process", ["pypy"]),
}


@pytest.mark.parametrize("case", list(TABLE))
def test_decision_table(case: str) -> None:
    capabilities, tier, words = TABLE[case]
    chosen, reason = choose_tier(capabilities)
    assert chosen == tier
    for word in words:
        assert word in reason, (word, reason)


def test_decision_for_this_interpreter_is_consistent() -> None:
    here = current_capabilities()
    assert decide() == choose_tier(here)
    tier, _ = decide()
    if here.parallel_threads:
        assert tier == "thread"
    elif here.subinterpreters is not None:
        assert tier == "subinterpreter"
    else:
        assert tier == "process"


def test_auto_executor_states_its_choice(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="subiso.auto")
    with auto_executor(capabilities=FREE_THREADED_OFF, max_workers=2) as executor:
        assert type(executor) is ThreadExecutor and executor.max_workers == 2
        expected = "auto: " + choose_tier(FREE_THREADED_OFF)[1]
        assert executor.selected_by == expected
        result = executor.execute(GraphConfig(graph="tests.workloads:sync_graph", input={"x": 4}))
    assert result.output == {"x": 7}
    assert result.report.tier == "thread"
    assert result.report.selected_by == expected
    logged = [r.getMessage() for r in caplog.records if r.name == "subiso.auto"]
    assert any("chose the 'thread' tier" in m and "free-threaded" in m for m in logged)


def test_get_executor_auto_takes_settings_shaped_options() -> None:
    executor = subiso.get_executor(
        "auto",
        capabilities=FREE_THREADED_OFF,
        timeout=12,
        thread={"max_workers": 3},
        process={"start_method": "spawn"},  # applies only if "process" were chosen
    )
    executor.close()
    assert type(executor) is ThreadExecutor
    assert (executor.max_workers, executor.timeout) == (3, 12.0)


def test_auto_options_are_validated() -> None:
    with pytest.raises(subiso.ConfigError, match=r"'process\.start_mode'"):
        auto_executor(capabilities=FREE_THREADED_OFF, process={"start_mode": "spawn"})


def test_auto_from_settings_file_on_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real decision, the real tier: its reports carry ``selected_by``."""
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_EXECUTOR, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subiso.toml").write_text('executor = "auto"\nmax_workers = 2\n')
    with subiso.load_executor() as executor:
        assert executor.selected_by is not None and executor.selected_by.startswith("auto: ")
        result = executor.execute(GraphConfig(graph="tests.workloads:square", input=3))
    assert result.output == 9
    assert result.report.selected_by == executor.selected_by


# -- "auto" where subinterpreters run: each target on the tier it needs ------------------------
@pytest.mark.skipif(not BACKEND, reason="no subinterpreters here: auto picks one tier")
def test_auto_sends_each_target_to_the_tier_it_needs() -> None:
    """A graph with nothing to offload runs on the thread tier (no interpreter pool to pay
    for); one with @offload nodes, and a workflow function that loads in an interpreter, on
    the subinterpreter tier; each report says why."""
    here = caps("3.14.2", subinterpreters=BACKEND.name)
    with auto_executor(capabilities=here, max_workers=2) as ex:
        plain = ex.execute(GraphConfig(graph="tests.workloads:sync_graph", input={"x": 4}))
        hybrid = ex.execute(GraphConfig(graph="tests.hybrid_workloads:cpu_graph", input={"n": 10}))
        full = ex.execute(
            GraphConfig(graph="tests.isolation_targets.workflows:word_stats", input={"text": "a b"})
        )
        stats = ex.stats()
    assert plain.output == {"x": 7} and plain.report.tier == "thread"
    assert plain.report.reason is not None and "no @offload node" in plain.report.reason
    assert hybrid.report.tier == "subinterpreter" and hybrid.report.mode == "hybrid"
    assert (hybrid.report.reason or "").startswith("auto: ") and "@offload work" in (
        hybrid.report.reason or ""
    )
    assert full.report.tier == "subinterpreter" and full.report.mode == "full"
    assert full.output["words"] == 2
    for report in (plain.report, hybrid.report, full.report):
        assert (report.selected_by or "").startswith("auto: ")
    assert stats.runs_completed["done"] == 3 and stats.tier == "auto"


@pytest.mark.skipif(not BACKEND, reason="no subinterpreters here: auto picks one tier")
def test_doctor_says_where_auto_sends_a_target() -> None:
    from click.testing import CliRunner

    from subiso.cli import main

    plain = CliRunner().invoke(main, ["doctor", "tests.workloads:sync_graph", "--json"])
    offloading = CliRunner().invoke(main, ["doctor", "tests.hybrid_workloads:cpu_graph", "--json"])
    assert json.loads(plain.output)["auto"]["tier"] == "thread"
    assert "no @offload node" in json.loads(plain.output)["auto"]["reason"]
    assert json.loads(offloading.output)["auto"]["tier"] == "subinterpreter"
