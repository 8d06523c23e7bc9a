"""Isolation verification on free-threaded builds: an import that re-enables the GIL (as
LangGraph's import chain does on 3.14t: orjson, zstandard) is noted, and "auto" executors,
``subiso info`` and ``subiso doctor`` say so. No 3.14t interpreter is obtainable here, so the
build and the GIL's state are simulated; the decisions and reports are the real code."""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import subiso
from subiso import _capabilities
from subiso._capabilities import Capabilities
from subiso.cli import main

MODULE = "reenables_the_gil"


@pytest.fixture
def free_threaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A free-threaded build whose GIL is off until ``reenables_the_gil`` is imported (that
    module's import flips it, as an extension without free-threading support does)."""
    (tmp_path / f"{MODULE}.py").write_text(
        "import builtins\nbuiltins._subiso_test_gil_on = True\n\n"
        "def workflow(value):\n    return value * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_capabilities, "is_free_threaded_build", lambda: True)
    monkeypatch.setattr(
        _capabilities, "gil_enabled", lambda: getattr(builtins, "_subiso_test_gil_on", False)
    )
    monkeypatch.setattr(_capabilities, "_GIL_REENABLED_BY", [])
    yield
    sys.modules.pop(MODULE, None)
    if hasattr(builtins, "_subiso_test_gil_on"):
        del builtins._subiso_test_gil_on


def gil_free_caps() -> Capabilities:
    return Capabilities(
        python="3.14.0",
        implementation="cpython",
        free_threaded=True,
        gil_enabled=False,
        subinterpreters="concurrent.interpreters",
    )


def test_auto_reports_an_import_that_reenabled_the_gil(free_threaded: None) -> None:
    with subiso.get_executor("auto", capabilities=gil_free_caps()) as ex:
        assert ex.tier == "thread"  # GIL off at the start: threads run in parallel
        report = ex.execute({"graph": f"{MODULE}:workflow", "input": 21}).report
    assert _capabilities.gil_reenabled_by() == (MODULE,)
    assert report.selected_by and report.reason
    assert f"re-enabled at run time by importing {MODULE}" in report.reason


def test_no_note_while_the_gil_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_capabilities, "is_free_threaded_build", lambda: True)
    monkeypatch.setattr(_capabilities, "gil_enabled", lambda: False)
    monkeypatch.setattr(_capabilities, "_GIL_REENABLED_BY", [])
    with subiso.get_executor("auto", capabilities=gil_free_caps()) as ex:
        report = ex.execute({"graph": "tests.workloads:square", "input": 3}).report
    assert report.reason is None and _capabilities.gil_reenabled_by() == ()


def test_doctor_reports_the_gil_after_importing_the_target(free_threaded: None) -> None:
    result = CliRunner().invoke(main, ["doctor", f"{MODULE}:workflow", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert f"importing {MODULE}" in doc["gil"]


def test_info_reports_what_importing_langgraph_does_to_the_gil(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_capabilities, "is_free_threaded_build", lambda: True)
    monkeypatch.setattr(_capabilities, "gil_enabled", lambda: False)
    asked: list[Any] = []

    def probe(module: str, timeout: float = 60.0) -> bool:
        asked.append(module)
        return True  # as on 3.14t: orjson and zstandard re-enable it

    monkeypatch.setattr(_capabilities, "gil_after_import", probe)
    result = CliRunner().invoke(main, ["info", "--json"])
    doc = json.loads(result.output)
    assert asked == ["langgraph.graph"]
    assert doc["gil_after_langgraph_import"].startswith("re-enabled")
    text = CliRunner().invoke(main, ["info"]).output
    assert "GIL after import langgraph: re-enabled" in text


def test_gil_after_import_probes_a_fresh_interpreter_only_on_free_threaded_builds() -> None:
    assert _capabilities.gil_after_import("json") is None  # this is a GIL build
