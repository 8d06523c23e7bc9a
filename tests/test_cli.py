"""The ``subiso`` command, run as a real subprocess (``python -m subiso``): output, RunReports,
exit codes 0 / 1 / 2, ``info`` and ``doctor``.

The commands are independent, so one module fixture starts them all at once and each test
checks its own; most targets live in a small langgraph-free module written to the work
directory so each process starts quickly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from subiso.auto import choose_tier, current_capabilities
from tests.conftest import needs_async_run_context, needs_backend

ROOT = Path(__file__).resolve().parents[1]

TARGETS = '''
"""CLI test targets without langgraph, so the subprocesses start fast."""
import asyncio


def square(value):
    return value * value


def fail(message):
    raise LookupError(message)


async def hang(_):
    await asyncio.Event().wait()


def bump(state):
    return {"x": state["x"] + 1}


def big(n):
    return {"name": "numbers", "items": list(range(n)), "nested": {"a": 1, "b": [1, 2]}}
'''

GRAPHS = '''
"""CLI test graphs (these import langgraph): an interrupt, and a node that reports its thread."""
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    x: int
    answer: str
    thread: str


def ask(state):
    return {"answer": interrupt({"question": "approve?", "x": state["x"]})}


def whoami(state, config):
    return {"thread": config["configurable"]["thread_id"]}


def _one(node):
    builder = StateGraph(State)
    builder.add_node(node.__name__, node)
    builder.add_edge(START, node.__name__)
    builder.add_edge(node.__name__, END)
    return builder


asker = _one(ask)
thread_echo = _one(whoami)
'''

FILE_TARGET = """
from .helper import OFFSET  # a relative import: the file is imported as part of its package


def shift(x):
    return x + OFFSET
"""


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def _layout(base: Path) -> dict[str, Path]:
    work = base / "work"
    work.mkdir()
    (work / "cli_targets.py").write_text(TARGETS, encoding="utf-8")
    (work / "run.toml").write_text('graph = "cli_targets:bump"\n[input]\nx = 2\n')
    (work / "inline.toml").write_text('executor = "inline"\n', encoding="utf-8")
    (work / "hang.toml").write_text('graph = "cli_targets:hang"\ntimeout = 0.2\n')
    (work / "input.json").write_text('{"x": 10}', encoding="utf-8")
    (work / "cli_graphs.py").write_text(GRAPHS, encoding="utf-8")
    (work / "typo.toml").write_text('graph = "cli_targets:square"\ntimout = 10\n')
    (work / "wrongtype.toml").write_text('graph = "cli_targets:square"\ntimeout = "10"\n')
    # a file target outside the working directory, inside a package
    pkg = base / "elsewhere" / "flows"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "helper.py").write_text("OFFSET = 100\n", encoding="utf-8")
    (pkg / "shifted.py").write_text(FILE_TARGET, encoding="utf-8")
    (base / "elsewhere" / "plain_wf.py").write_text("def double(x):\n    return 2 * x\n")
    # a LangGraph project: graphs by file path (relative to langgraph.json) and by module
    lg = base / "lgproject"
    (lg / "agent").mkdir(parents=True)
    (lg / "agent" / "my_graph.py").write_text(GRAPHS, encoding="utf-8")
    (lg / "lgmod.py").write_text(TARGETS, encoding="utf-8")
    (lg / "langgraph.json").write_text(
        json.dumps(
            {
                "dependencies": ["."],
                "graphs": {"asker": "./agent/my_graph.py:asker", "square": "lgmod:square"},
            }
        ),
        encoding="utf-8",
    )
    bad = base / "bad"
    bad.mkdir()
    (bad / "cli_targets.py").write_text(TARGETS, encoding="utf-8")
    (bad / "subiso.toml").write_text('executor = "thread"\nmax_worker = 4\n', encoding="utf-8")
    auto = base / "auto"
    auto.mkdir()
    (auto / "cli_targets.py").write_text(TARGETS, encoding="utf-8")
    (auto / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.subiso]\nexecutor = "auto"\nmax_workers = 2\n',
        encoding="utf-8",
    )
    return {"work": work, "bad": bad, "auto": auto}


# name -> (arguments, directory, extra environment)
COMMANDS: dict[str, tuple[list[str], str, dict[str, str]]] = {
    "help": (["--help"], "work", {}),
    "info": (["info"], "work", {}),
    "info_json": (["info", "--json"], "work", {}),
    "info_env": (["info", "--json"], "work", {"SUBISO_EXECUTOR": "context"}),
    "info_auto": (["info", "--json"], "auto", {}),
    "info_bad": (["info"], "bad", {}),
    "run_graph": (["run", "tests.workloads:sync_graph", "--input", '{"x": 3}'], "work", {}),
    "run_graph_json_inline": (
        ["run", "cli_targets:bump", "--input", "@input.json", "-e", "inline", "--json"],
        "work",
        {},
    ),
    "run_file": (["run", "run.toml", "--json"], "work", {}),
    "run_repeat": (
        ["run", "cli_targets:square", "--input", "3", "--repeat", "6", "--concurrency", "3"],
        "work",
        {},
    ),
    "run_repeat_json": (
        [
            "run",
            "cli_targets:square",
            "--input",
            "4",
            "--repeat",
            "5",
            "--concurrency",
            "2",
            "--json",
        ],
        "work",
        {},
    ),
    "run_env_executor": (
        ["run", "cli_targets:square", "--input", "2", "--json"],
        "work",
        {"SUBISO_EXECUTOR": "context"},
    ),
    "run_flag_beats_env": (
        ["run", "cli_targets:square", "--input", "2", "--json", "--executor", "inline"],
        "work",
        {"SUBISO_EXECUTOR": "context"},
    ),
    "run_auto": (["run", "cli_targets:square", "--input", "2", "--json"], "auto", {}),
    "run_fail": (["run", "cli_targets:fail", "--input", '"boom"'], "work", {}),
    "run_fail_v": (["-v", "run", "cli_targets:fail", "--input", '"boom"'], "work", {}),
    "run_fail_v_after": (["run", "cli_targets:fail", "--input", '"boom"', "-v"], "work", {}),
    "run_fail_repeat": (
        ["run", "cli_targets:fail", "--input", '"boom"', "--repeat", "4", "--concurrency", "2"],
        "work",
        {},
    ),
    "run_timeout": (["run", "hang.toml"], "work", {}),
    "run_unknown_module": (["run", "nosuch.module:graph"], "work", {}),
    "run_not_a_target": (["run", "justaword"], "work", {}),
    "run_missing_file": (["run", "missing.toml"], "work", {}),
    "run_bad_executor": (["run", "cli_targets:square", "--executor", "warp"], "work", {}),
    "run_bad_input": (["run", "cli_targets:square", "--input", "{nope"], "work", {}),
    "run_missing_input_file": (["run", "cli_targets:square", "--input", "@nope.json"], "work", {}),
    "run_bad_repeat": (["run", "cli_targets:square", "--repeat", "0"], "work", {}),
    "run_bad_settings": (["run", "cli_targets:square", "--input", "2"], "bad", {}),
    "run_explicit_settings": (
        [
            "run",
            "cli_targets:square",
            "--input",
            "2",
            "--json",
            "--settings",
            "inline.toml",
        ],
        "work",
        {},
    ),
    "no_such_command": (["frobnicate"], "work", {}),
    # LangGraph surface: interrupts, streaming, thread ids, langgraph.json, file targets
    "run_interrupt": (["run", "cli_graphs:asker", "--input", '{"x": 7}'], "work", {}),
    "run_interrupt_json": (
        ["run", "cli_graphs:asker", "--input", '{"x": 7}', "--json", "-e", "process"],
        "work",
        {},
    ),
    "run_stream": (
        ["run", "cli_graphs:thread_echo", "--input", "{}", "--stream", "--thread-id", "s1"],
        "work",
        {},
    ),
    "run_stream_json": (
        [
            "run",
            "cli_graphs:asker",
            "--input",
            '{"x": 1}',
            "--stream",
            "values,updates",
            "--json",
        ],
        "work",
        {},
    ),
    "run_stream_bad_mode": (["run", "cli_graphs:asker", "--stream=valuez"], "work", {}),
    "run_thread_id": (
        [
            "run",
            "cli_graphs:thread_echo",
            "--input",
            "{}",
            "--thread-id",
            "t-42",
            "--checkpointer",
            "memory",
            "--json",
        ],
        "work",
        {},
    ),
    "run_new_thread": (
        ["run", "cli_graphs:thread_echo", "--input", "{}", "--checkpointer", "memory", "--json"],
        "work",
        {},
    ),
    "run_langgraph_json": (
        ["run", "../lgproject/langgraph.json", "--graph", "asker", "--input", '{"x": 2}'],
        "work",
        {},
    ),
    "run_langgraph_json_process": (
        [
            "run",
            "../lgproject/langgraph.json",
            "--graph",
            "square",
            "--input",
            "5",
            "-e",
            "process",
            "--json",
        ],
        "work",
        {},
    ),
    "run_langgraph_json_unknown": (
        ["run", "../lgproject/langgraph.json", "--graph", "askr"],
        "work",
        {},
    ),
    "run_langgraph_json_ambiguous": (["run", "../lgproject/langgraph.json"], "work", {}),
    "run_file_target_process": (
        ["run", "../elsewhere/flows/shifted.py:shift", "--input", "1", "-e", "process", "--json"],
        "work",
        {},
    ),
    "run_file_target_subinterpreter": (
        [
            "run",
            "../elsewhere/plain_wf.py:double",
            "--input",
            "21",
            "-e",
            "subinterpreter",
            "--json",
        ],
        "work",
        {},
    ),
    "run_main_target": (["run", "__main__:wf", "--input", "1"], "work", {}),
    # a newcomer's first hour: output, errors
    "run_summary": (["run", "cli_targets:big", "--input", "500"], "work", {}),
    "run_output_full": (["run", "cli_targets:big", "--input", "3", "--output", "full"], "work", {}),
    "run_output_none": (["run", "cli_targets:big", "--input", "3", "--output", "none"], "work", {}),
    "run_typo_executor": (["run", "cli_targets:square", "-e", "thraed"], "work", {}),
    "run_graph_no_input": (["run", "cli_graphs:asker"], "work", {}),
    "run_config_typo": (["run", "typo.toml"], "work", {}),
    "run_config_wrong_type": (["run", "wrongtype.toml"], "work", {}),
    "doctor_pure": (["doctor", "cli_targets:square", "--json"], "work", {}),
    "doctor_graph": (["doctor", "tests.workloads:sync_graph"], "work", {}),
    "doctor_bad": (["doctor", "nosuch:thing"], "work", {}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    dirs = _layout(tmp_path_factory.mktemp("cli"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SUBISO_")}
    base_env["PYTHONPATH"] = str(ROOT)

    def launch(item: tuple[str, tuple[list[str], str, dict[str, str]]]) -> tuple[str, Outcome]:
        name, (args, where, extra) = item
        proc = subprocess.run(
            [sys.executable, "-m", "subiso", *args],
            cwd=dirs[where],
            env={**base_env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return name, Outcome(proc.returncode, proc.stdout, proc.stderr)

    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
        return dict(pool.map(launch, COMMANDS.items()))


def ok(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.err
    return outcome


# -- help and usage ------------------------------------------------------------------------------
def test_help(results: dict[str, Outcome]) -> None:
    out = ok(results["help"]).out
    for command in ("run", "info", "doctor"):
        assert command in out


def test_unknown_command_is_usage_error(results: dict[str, Outcome]) -> None:
    assert results["no_such_command"].code == 2
    assert "No such command" in results["no_such_command"].err


# -- info ----------------------------------------------------------------------------------------
def test_info_text(results: dict[str, Outcome]) -> None:
    out = ok(results["info"]).out
    caps = current_capabilities()
    assert caps.python in out
    assert f"free-threaded:   {'yes' if caps.free_threaded else 'no'}" in out
    assert "GIL:" in out and "subinterpreters:" in out
    assert "settings:        none (defaults)" in out
    assert f"auto picks:      {choose_tier(caps)[0]}" in out
    for tier in ("inline", "context", "thread", "subinterpreter", "process", "auto"):
        assert any(line.strip().startswith(tier) for line in out.splitlines()), tier


def test_info_json(results: dict[str, Outcome]) -> None:
    doc = ok(results["info_json"]).json()
    caps = current_capabilities()
    assert doc["python"] == caps.python and doc["gil_enabled"] == caps.gil_enabled
    assert doc["auto"]["tier"] == choose_tier(caps)[0]
    tiers = doc["tiers"]
    for name in ("inline", "context", "thread"):
        assert tiers[name]["available"] is True
    if caps.subinterpreters is None:
        assert tiers["subinterpreter"]["available"] is False
        assert tiers["subinterpreter"]["reason"]
    assert tiers["auto"]["reason"].startswith(f"-> {doc['auto']['tier']}")
    assert doc["settings"] == {
        "file": None,
        "origin": "defaults",
        "executor": "thread",
        "executor_from": "default",
    }


def test_info_shows_env_override(results: dict[str, Outcome]) -> None:
    settings = ok(results["info_env"]).json()["settings"]
    assert (settings["executor"], settings["executor_from"]) == ("context", "SUBISO_EXECUTOR")


def test_info_shows_settings_file_and_auto(results: dict[str, Outcome]) -> None:
    settings = ok(results["info_auto"]).json()["settings"]
    assert settings["file"].endswith("pyproject.toml") and settings["origin"] == "pyproject.toml"
    assert settings["executor"] == "auto"
    assert settings["auto_picks"] == choose_tier(current_capabilities())[0]


def test_info_with_bad_settings_exits_2(results: dict[str, Outcome]) -> None:
    outcome = results["info_bad"]
    assert outcome.code == 2
    assert "python:" in outcome.out  # the rest is still reported
    assert "max_worker" in outcome.err and "subiso.toml" in outcome.err


# -- run -----------------------------------------------------------------------------------------
def test_run_prints_output_and_report(results: dict[str, Outcome]) -> None:
    out = ok(results["run_graph"]).out
    head, _, report = out.partition("report:")
    assert head.splitlines() == ["output: dict with 1 key", "  x  int  5"]
    fields = dict(line.split(None, 1) for line in report.strip().splitlines())
    assert fields["tier"] == "thread" and fields["mode"] == "full"
    assert fields["status"] == "done" and int(fields["pid"]) > 0
    assert re.fullmatch(r"\d+(\.\d+)? (ms|s)", fields["duration"]), fields["duration"]


def test_report_summary_prints_offloaded_in_human_units() -> None:
    from subiso.cli._format import report_lines
    from subiso.report import Offloaded, RunReport

    offloaded = Offloaded(
        calls=1, interpreter_ids=(4,), interp_s=0.055772801000102845, transfer_s=0.000224
    )
    report = RunReport(
        tier="subinterpreter", mode="hybrid", pid=1, os_thread_id=2, offloaded=offloaded
    )
    fields = dict(line.split(None, 1) for line in report_lines(report))
    assert fields["offloaded"] == "1 call in interpreter 4: 55.8 ms inside, 0.22 ms transfer"
    two = Offloaded(calls=3, interpreter_ids=(4, 5), interp_s=1.5, transfer_s=0.0042)
    line = report_lines(msgspec.structs.replace(report, offloaded=two))[-1]
    assert line.split(None, 1)[1] == "3 calls in interpreters 4, 5: 1.50 s inside, 4.20 ms transfer"


@pytest.mark.parametrize("everything", [False, True], ids=["summary", "full"])
def test_report_summary_prints_a_fallback_reason_once(everything: bool) -> None:
    from subiso.cli._format import report_lines
    from subiso.report import RunReport

    why = "Python 3.11 has no own-GIL subinterpreter API (needs 3.13+); ran on the process tier"
    report = RunReport(
        tier="process", mode="fallback", reason=why, fallback_reason=why, pid=1, os_thread_id=2
    )
    text = "\n".join(report_lines(report, everything=everything))
    assert text.count(why) == 1, text
    other = msgspec.structs.replace(report, reason="something else")
    assert why in "\n".join(report_lines(other, everything=everything))  # when they differ


def test_run_json_input_file_and_executor_flag(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_graph_json_inline"]).json()
    assert doc["output"] == {"x": 11}
    assert doc["report"]["tier"] == "inline"


def test_run_graph_config_file(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_file"]).json()
    assert doc["output"] == {"x": 3} and doc["report"]["tier"] == "thread"


def test_run_repeat_text(results: dict[str, Outcome]) -> None:
    outcome = ok(results["run_repeat"])
    assert "output: int 9\n" in outcome.out
    assert "report (run 6 of 6):" in outcome.out
    table = outcome.out.split("durations:", 1)[1].strip().splitlines()
    header = "tier mode runs min ms median ms mean ms p95 ms max ms"
    assert table[0].split() == header.split()
    assert table[1].split()[:3] == ["thread", "full", "6"]
    assert "6 runs in" in table[-1] and "concurrency 3" in table[-1]
    assert "6 runs" in outcome.err  # the progress bar's label goes to stderr


def test_run_repeat_json(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_repeat_json"]).json()
    assert doc["output"] == 16
    assert len(doc["reports"]) == 5
    summary = doc["summary"]
    assert (summary["runs"], summary["concurrency"]) == (5, 2)
    (row,) = summary["durations"]
    assert row["tier"] == "thread" and row["runs"] == 5
    assert row["min_s"] <= row["median_s"] <= row["max_s"]


def test_env_executor_and_flag_precedence(results: dict[str, Outcome]) -> None:
    assert ok(results["run_env_executor"]).json()["report"]["tier"] == "context"
    assert ok(results["run_flag_beats_env"]).json()["report"]["tier"] == "inline"


def test_run_auto_states_its_choice(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_auto"]).json()
    assert doc["output"] == 4
    assert doc["report"]["selected_by"].startswith("auto: ")


def test_run_with_explicit_settings(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_explicit_settings"]).json()
    assert doc["report"]["tier"] == "inline"


def test_failed_run_exits_1_without_traceback(results: dict[str, Outcome]) -> None:
    outcome = results["run_fail"]
    assert outcome.code == 1
    assert "LookupError: boom" in outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize("name", ["run_fail_v", "run_fail_v_after"])
def test_verbose_failed_run_shows_traceback(results: dict[str, Outcome], name: str) -> None:
    outcome = results[name]
    assert outcome.code == 1
    assert "Traceback" in outcome.err and "raise LookupError(message)" in outcome.err


def test_failed_repeat_exits_1(results: dict[str, Outcome]) -> None:
    outcome = results["run_fail_repeat"]
    assert outcome.code == 1 and "LookupError" in outcome.err


def test_timeout_exits_1(results: dict[str, Outcome]) -> None:
    outcome = results["run_timeout"]
    assert outcome.code == 1
    assert "RunTimeout" in outcome.err and "0.2s" in outcome.err


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("run_unknown_module", ["ConfigError", "unknown module 'nosuch.module'"]),
        ("run_not_a_target", ["neither a GraphConfig file", "package.module:attribute"]),
        ("run_missing_file", ["missing.toml", "cannot read"]),
        ("run_bad_executor", ["unknown executor 'warp'", "choose one of", "subinterpreter"]),
        ("run_bad_input", ["--input", "not valid JSON"]),
        ("run_missing_input_file", ["--input", "cannot read nope.json"]),
        ("run_bad_repeat", ["--repeat", "0"]),
        ("run_bad_settings", ["subiso.toml", "unknown key 'max_worker'", "max_workers"]),
        ("doctor_bad", ["unknown module 'nosuch'"]),
    ],
)
def test_usage_and_config_errors_exit_2(
    results: dict[str, Outcome], name: str, needles: list[str]
) -> None:
    outcome = results[name]
    assert outcome.code == 2, (outcome.out, outcome.err)
    for needle in needles:
        assert needle in outcome.err, (needle, outcome.err)
    assert "Traceback" not in outcome.err


# -- LangGraph surface: interrupts, --resume, --stream, --thread-id, langgraph.json, file.py ---------
def test_interrupted_run_exits_0_with_its_payloads(results: dict[str, Outcome]) -> None:
    out = ok(results["run_interrupt"]).out
    assert "interrupted: the graph paused at 1 interrupt(s):" in out
    assert re.search(r'id [0-9a-f]+: \{"question":"approve\?","x":7\}', out), out
    assert re.search(r"^  status +interrupted$", out, re.M), out
    assert "--resume JSON" in out  # how to go on


def test_interrupted_run_json(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_interrupt_json"]).json()
    assert doc["status"] == "interrupted" and doc["report"]["status"] == "interrupted"
    assert doc["report"]["tier"] == "process"
    (item,) = doc["interrupts"]
    assert item["value"] == {"question": "approve?", "x": 7} and isinstance(item["id"], str)


@needs_async_run_context
def test_resume_continues_the_paused_thread(tmp_path: Path) -> None:
    (tmp_path / "cli_graphs.py").write_text(GRAPHS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBISO_")}
    env["PYTHONPATH"] = str(ROOT)
    common = ["run", "cli_graphs:asker", "--checkpointer", "sqlite:///runs.db", "--json"]

    def cli(*args: str) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "subiso", *common, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    paused = ok(cli("--input", '{"x": 3}', "--thread-id", "review-1")).json()
    assert paused["status"] == "interrupted" and paused["thread_id"] == "review-1"
    resumed = ok(cli("--resume", '"approved"', "--thread-id", "review-1")).json()
    assert resumed["status"] == "done" and resumed["interrupts"] == []
    assert resumed["output"] == {"x": 3, "answer": "approved"}
    no_thread = cli("--resume", '"approved"')
    assert no_thread.code == 2 and "--thread-id" in no_thread.err


@needs_async_run_context
def test_resume_of_a_thread_with_nothing_to_resume_exits_2_saying_why(tmp_path: Path) -> None:
    """--resume on a thread that never paused, on one this checkpointer never saw, without a
    checkpointer, and with a bare word for a value: exit 2 and what to do, never LangGraph's
    KeyError/RuntimeError from inside the run (nor a silent new run of the graph)."""
    (tmp_path / "cli_graphs.py").write_text(GRAPHS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBISO_")}
    env["PYTHONPATH"] = str(ROOT)

    def cli(*args: str) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "subiso", "run", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    db = ["--checkpointer", "sqlite:///runs.db"]
    ok(cli("cli_graphs:thread_echo", "--input", "{}", "--thread-id", "done-1", *db))
    finished = cli("cli_graphs:thread_echo", "--thread-id", "done-1", *db, "--resume", '"y"')
    assert finished.code == 2, finished
    assert "thread 'done-1' is not paused" in finished.err and "--input" in finished.err
    unknown = cli("cli_graphs:asker", "--thread-id", "never", *db, "--resume", '"y"')
    assert unknown.code == 2, unknown
    assert "thread 'never' has no checkpoint in checkpointer 'sqlite:///runs.db'" in unknown.err
    memory = cli(
        "cli_graphs:asker", "--thread-id", "m", "--checkpointer", "memory", "--resume", "1"
    )
    assert memory.code == 2 and "'memory' checkpoints end with the command" in memory.err
    none = cli("cli_graphs:asker", "--thread-id", "done-1", "--resume", '"y"')
    assert none.code == 2, none
    assert "--resume needs the checkpointer the paused run used" in none.err
    assert "Traceback" not in none.err + unknown.err + finished.err
    bare = cli("cli_graphs:asker", "--thread-id", "done-1", *db, "--resume", "yes")
    assert bare.code == 2 and "--resume '\"yes\"'" in bare.err, bare


def test_stream_prints_one_line_per_event(results: dict[str, Outcome]) -> None:
    lines = ok(results["run_stream"]).out.splitlines()
    assert lines[0] == 'updates: {"whoami":{"thread":"s1"}}'
    assert lines[1] == "status: done (1 events)"


@needs_async_run_context
def test_stream_json_lines_and_interrupt(results: dict[str, Outcome]) -> None:
    lines = [json.loads(line) for line in ok(results["run_stream_json"]).out.splitlines()]
    *events, end = lines
    assert [e["mode"] for e in events] == ["values", "updates", "values"]
    assert events[0]["data"] == {"x": 1}
    assert end["status"] == "interrupted" and end["events"] == 3
    assert end["interrupts"][0]["value"] == {"question": "approve?", "x": 1}


def test_thread_id_reaches_the_graph(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_thread_id"]).json()
    assert doc["output"] == {"thread": "t-42"} and doc["thread_id"] == "t-42"
    fresh = ok(results["run_new_thread"]).json()  # a checkpointer and no id: a new thread
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["output"]["thread"])
    assert fresh["thread_id"] == fresh["output"]["thread"]


def test_langgraph_json_graphs(results: dict[str, Outcome]) -> None:
    assert "interrupted: the graph paused" in ok(results["run_langgraph_json"]).out
    doc = ok(results["run_langgraph_json_process"]).json()
    assert doc["output"] == 25 and doc["report"]["tier"] == "process"


def test_file_targets_on_other_tiers(results: dict[str, Outcome]) -> None:
    doc = ok(results["run_file_target_process"]).json()
    assert doc["output"] == 101 and doc["report"]["tier"] == "process"
    doc = ok(results["run_file_target_subinterpreter"]).json()
    assert doc["output"] == 42
    if current_capabilities().subinterpreters is not None:
        assert (doc["report"]["tier"], doc["report"]["mode"]) == ("subinterpreter", "full")


# -- a newcomer's first hour: output and progress ------------------------------------------------
def test_summary_is_compact_with_human_units(results: dict[str, Outcome]) -> None:
    out = ok(results["run_summary"]).out
    lines = out.splitlines()
    assert lines[0] == "output: dict with 3 keys"
    assert re.match(r"  items +list\[500\] +\[0,1,2,", lines[2]), lines
    assert lines[3].startswith("  nested  dict{2}")
    assert len(lines) < 20 and max(len(line) for line in lines) <= 120
    assert not re.search(r"\d\.\d{5,}", out), out  # no raw floats
    assert re.search(r"^  duration +\d+(\.\d+)? (ms|s)$", out, re.M), out


def test_output_full_and_none(results: dict[str, Outcome]) -> None:
    out = ok(results["run_output_full"]).out
    assert json.loads(out.split("output:\n", 1)[1].split("report:", 1)[0])["items"] == [0, 1, 2]
    out = ok(results["run_output_none"]).out
    assert "output" not in out and out.startswith("report:")


def test_every_run_option_has_help() -> None:
    import click

    from subiso.cli import main

    command = main.commands["run"]
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert missing == []


def test_eta_from_completed_runs_and_concurrency() -> None:
    from subiso.cli._format import eta_seconds

    assert eta_seconds([], [0.5, 0.5], 6, 3) is None  # nothing completed: no guess
    # 6 runs of 1 s, 3 at a time: the first finished, two more nearly done, one just started
    assert eta_seconds([1.0], [0.99, 0.99, 0.0], 5, 3) == pytest.approx(1.0, abs=0.01)
    assert eta_seconds([1.0] * 6, [], 0, 3) == 0.0


def test_progress_eta_leaves_the_start_up_out() -> None:
    """The first run carries the tier's start-up (0.45 s, then 0.05 s per run, as the thread
    tier on the demo): no ETA until a run submitted after it has finished, and that one is
    right, not 29 x 0.45 s."""
    import io

    from subiso.cli._format import Progress

    now = [0.0]
    out = io.StringIO()
    progress = Progress(30, 1, out, live=True, clock=lambda: now[0])
    progress.start(0)
    now[0] = 0.45
    progress.finish(0)
    progress.start(1)
    assert "eta" not in progress.line()  # one run, start-up and all: no guess
    now[0] = 0.5
    progress.finish(1)
    progress.start(2)
    assert progress.line().endswith("2/30 done, 500 ms elapsed, eta 1.40 s"), progress.line()
    progress.close()


def test_progress_eta_at_concurrency_counts_only_steady_runs() -> None:
    import io

    from subiso.cli._format import Progress

    now = [0.0]
    out = io.StringIO()
    progress = Progress(9, 3, out, live=True, clock=lambda: now[0])
    for i in range(3):  # the first batch: each run waits for its worker to start
        progress.start(i)
    now[0] = 2.0
    progress.finish(0)
    progress.start(3)
    now[0] = 2.1
    progress.finish(1)
    progress.start(4)
    assert "eta" not in progress.line()  # runs 0-1 carried the start-up; 3-4 are not done
    now[0] = 3.0
    progress.finish(3)  # a steady run: 1 s
    progress.start(5)
    # 6 runs left, 3 at a time at 1 s each, less what runs 4 (0.9 s) and 5 (0 s) already did;
    # run 2 (start-up) counts for nothing
    assert progress.line().endswith("3/9 done, 3.00 s elapsed, eta 1.70 s"), progress.line()
    progress.close()


# -- a newcomer's first hour: errors -------------------------------------------------------------
def test_typo_in_executor_names_the_option_and_the_closest(results: dict[str, Outcome]) -> None:
    outcome = results["run_typo_executor"]
    assert outcome.code == 2
    assert "'--executor'" in outcome.err and "did you mean 'thread'?" in outcome.err
    assert "defaults (no settings file)" not in outcome.err
    for tier in ("inline", "context", "thread", "subinterpreter", "process", "auto"):
        assert tier in outcome.err


def test_missing_input_gets_a_hint(results: dict[str, Outcome]) -> None:
    outcome = results["run_graph_no_input"]
    assert outcome.code == 1 and "EmptyInputError" in outcome.err
    assert "pass --input JSON (or --resume to resume an interrupt)" in outcome.err


def test_usage_errors_of_the_new_options(results: dict[str, Outcome]) -> None:
    bad_mode = results["run_stream_bad_mode"]
    assert bad_mode.code == 2 and "did you mean 'values'?" in bad_mode.err
    unknown = results["run_langgraph_json_unknown"]
    assert unknown.code == 2 and "no graph 'askr'" in unknown.err
    assert "available: asker, square" in unknown.err
    ambiguous = results["run_langgraph_json_ambiguous"]
    assert ambiguous.code == 2 and "--graph NAME: asker, square" in ambiguous.err
    main_target = results["run_main_target"]
    assert main_target.code == 2 and "path/to/script.py:wf" in main_target.err


def test_config_file_typo_lists_valid_keys(results: dict[str, Outcome]) -> None:
    outcome = results["run_config_typo"]
    assert outcome.code == 2
    assert "unknown key 'timout' (did you mean 'timeout'?)" in outcome.err
    assert "valid keys: graph, input, resume" in outcome.err


def test_config_file_wrong_type_in_plain_words(results: dict[str, Outcome]) -> None:
    outcome = results["run_config_wrong_type"]
    assert outcome.code == 2
    assert 'timeout: expected a number of seconds, got str "10"' in outcome.err


# -- doctor --------------------------------------------------------------------------------------
def test_doctor_on_an_isolatable_target(results: dict[str, Outcome]) -> None:
    doc = ok(results["doctor_pure"]).json()
    caps = current_capabilities()
    assert doc["target"] == "cli_targets:square"
    assert doc["auto"]["tier"] == choose_tier(caps)[0]
    if caps.subinterpreters is None:
        assert doc["mode"] == "fallback" and doc["modules"] == []
    else:
        assert doc["modules"][0] == {
            "module": "cli_targets",
            "ok": True,
            "blocked_by": None,
            "reason": doc["modules"][0]["reason"],
        }
        assert doc["blocking"] == [] and doc["mode"] == "full"


def test_doctor_on_a_langgraph_target(results: dict[str, Outcome]) -> None:
    out = ok(results["doctor_graph"]).out
    caps = current_capabilities()
    assert "target:          tests.workloads:sync_graph" in out
    # where subinterpreters run, "auto" sends a graph with nothing to offload to threads
    picked = choose_tier(caps)[0]
    assert f"auto picks:      {'thread' if picked == 'subinterpreter' else picked}" in out
    if caps.subinterpreters is None:
        assert "modules cannot be probed here" in out
        assert "subinterpreter executor mode: fallback" in out
    else:
        # langgraph pulls in extensions that refuse subinterpreters: the module is blocked
        assert "BLOCKED  tests.workloads" in out
        assert "subinterpreter executor mode: hybrid" in out


def test_doctor_lists_imported_modules(tmp_path: Path) -> None:
    """Directly, not via subprocess: the module list a doctor run would probe."""
    from subiso.cli import _target_modules

    (tmp_path / "doc_mod.py").write_text(
        textwrap.dedent(
            """
            import json, msgspec
            from subiso import offload

            @offload
            def heavy(x):
                return x

            def plain(x):
                return x
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import doc_mod  # type: ignore[import-not-found]

        names, offloaded = _target_modules(doc_mod, doc_mod.plain)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("doc_mod", None)
    assert names[0] == "doc_mod"
    assert "msgspec" in names and "json" not in names  # stdlib is not worth probing
    assert [f.__name__ for f in offloaded] == ["heavy"]


@needs_backend
def test_doctor_and_the_executor_decide_a_mode_by_one_rule() -> None:
    """A function of two arguments is not a workflow function f(input): its module loads
    in a subinterpreter, yet it runs hybrid. doctor must say what the executor does."""
    from click.testing import CliRunner

    from subiso.cli import main
    from subiso.executors.subinterpreter import SubinterpreterExecutor

    target = "tests.isolation_targets.pure:add"
    result = CliRunner().invoke(main, ["doctor", target, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    with SubinterpreterExecutor(max_workers=1) as ex:
        mode, reason = ex.mode_for(target)
    assert doc["blocking"] == [] and mode == "hybrid"
    assert doc["mode"] == mode and doc["mode_reason"].startswith(reason or "")


def test_doctor_finds_offloaded_nodes_of_a_builder_as_the_executor_does() -> None:
    """A StateGraph builder keeps node functions on ``.runnable`` (a compiled graph on
    ``.bound``): doctor must find the same @offload functions the executor prewarms."""
    import types

    from langgraph.graph import END, START, StateGraph

    from subiso.cli import _target_modules
    from subiso.executors.subinterpreter.offload import offloaded_functions
    from tests import hybrid_workloads as hw

    builder = StateGraph(hw.State)
    builder.add_node("a", hw.wf.sync_where)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    module = types.ModuleType("target_mod")  # nothing offloaded among its globals
    names, offloaded = _target_modules(module, builder)
    assert [f.__qualname__ for f in offloaded] == ["sync_where"]
    assert offloaded == offloaded_functions(builder, module)
    assert "tests.isolation_targets.workflows" in names


def test_doctor_reports_exactly_the_offloaded_functions_the_graph_uses() -> None:
    import importlib

    from subiso.cli import _target_modules

    module = importlib.import_module("tests.doctor_targets")
    names, offloaded = _target_modules(module, module.graph)
    assert [f.__qualname__ for f in offloaded] == ["used"]
    assert not [n for n in names if n == "subiso" or n.startswith("subiso.")]


@pytest.mark.parametrize("tier", ["inline", "thread", "process"])
def test_ctrl_c_cancels_at_once_and_exits_130(tier: str, tmp_path: Path) -> None:
    """SIGINT while a node sleeps for two minutes: the command exits 130 without waiting for
    the node (the subprocess would time out if it waited)."""
    import signal as _signal

    marker = tmp_path / "started"
    os.mkfifo(marker)  # the node's write meets the test's read: no polling, no sleeping
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "subiso", "run", "tests.workloads:sleepy", "-e", tier,
         "--input", json.dumps(str(marker))],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with open(marker) as said:  # blocks until the node opened it; read() until it closed
            assert said.read() == "started"
        proc.send_signal(_signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Ctrl-C" in err
