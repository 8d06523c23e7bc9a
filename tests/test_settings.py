"""Settings files: discovery order, env overrides, per-tier tables, every error path, the
legacy option dict, and the module-level ``subiso.run``/``arun`` helpers."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import subiso
from subiso import ConfigError, GraphConfig
from subiso.default import default_executor, reset_default_executor
from subiso.executors.context import ContextExecutor
from subiso.executors.inline import InlineExecutor
from subiso.executors.thread import ThreadExecutor
from subiso.settings import (
    ENV_CONFIG,
    ENV_EXECUTOR,
    legacy_tier,
    load_executor,
    resolve_settings,
)

ROOT = Path(__file__).resolve().parents[1]
SQUARE = GraphConfig(graph="tests.workloads:square", input=6)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test starts in an empty directory with no subiso environment variables."""
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_EXECUTOR, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def built(path: str | Path | None = None, **overrides: object) -> object:
    executor = load_executor(path, **overrides)
    executor.close()
    return executor


# -- discovery -----------------------------------------------------------------------------------
def test_no_file_means_thread_defaults(tmp_path: Path) -> None:
    resolved = resolve_settings()
    assert resolved.source is None and resolved.origin == "defaults"
    assert isinstance(built(), ThreadExecutor)


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pyproject = write(
        tmp_path / "pyproject.toml",
        """
        [project]
        name = "demo"
        [tool.subiso]
        executor = "inline"
        """,
    )
    assert resolve_settings().source == pyproject
    assert type(built()) is InlineExecutor

    local = write(tmp_path / "subiso.toml", 'executor = "context"\n')
    assert resolve_settings().source == local
    assert type(built()) is ContextExecutor

    other = tmp_path / "elsewhere"
    other.mkdir()
    env_file = write(other / "settings.json", '{"executor": "thread", "max_workers": 3}')
    monkeypatch.setenv(ENV_CONFIG, str(env_file))
    resolved = resolve_settings()
    assert (resolved.source, resolved.origin) == (env_file, ENV_CONFIG)
    executor = built()
    assert type(executor) is ThreadExecutor and executor.max_workers == 3

    explicit = write(other / "explicit.yaml", "executor: inline\n")
    resolved = resolve_settings(explicit)
    assert (resolved.source, resolved.origin) == (explicit, "explicit path")
    assert type(built(explicit)) is InlineExecutor


def test_pyproject_without_table_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "demo"\n')
    assert resolve_settings().source is None


def test_relative_subiso_config_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "conf.toml", 'executor = "context"\n')
    monkeypatch.setenv(ENV_CONFIG, "conf.toml")
    assert type(built()) is ContextExecutor


def test_env_executor_overrides_file_and_overrides_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "subiso.toml", 'executor = "thread"\nmax_workers = 2\n')
    monkeypatch.setenv(ENV_EXECUTOR, "inline")
    resolved = resolve_settings()
    assert (resolved.tier, resolved.tier_from) == ("inline", ENV_EXECUTOR)
    assert type(built()) is InlineExecutor
    executor = built(executor="thread")
    assert type(executor) is ThreadExecutor and executor.max_workers == 2
    assert resolve_settings(executor="context").tier_from == "override"


def test_tier_tables_and_shared_keys(tmp_path: Path) -> None:
    write(
        tmp_path / "subiso.toml",
        """
        executor = "thread"
        max_workers = 4
        timeout = 30
        checkpointer = "memory"
        fallback = ["process", "thread"]

        [thread]
        max_workers = 2
        thread_name_prefix = "custom"

        [process]
        start_method = "spawn"
        max_tasks_per_worker = 200
        prestart = true
        kill_grace = 1.5

        [subinterpreter]
        fallback = ["thread"]
        max_tasks_per_worker = 10
        """,
    )
    resolved = resolve_settings()
    settings = resolved.settings
    assert settings.process.start_method == "spawn" and settings.process.prestart is True
    assert settings.subinterpreter.fallback == ["thread"]
    executor = built()
    assert type(executor) is ThreadExecutor
    # the tier's own table wins over the shared key; the shared keys it takes still apply
    assert executor.max_workers == 2
    assert (executor.timeout, executor.checkpointer) == (30.0, "memory")
    # a shared key the tier does not take is not an error: files stay valid across tiers
    inline = built(executor="inline")
    assert type(inline) is InlineExecutor and inline.timeout == 30.0


def test_overrides_merge_into_tier_tables(tmp_path: Path) -> None:
    write(tmp_path / "subiso.toml", '[thread]\nmax_workers = 2\nthread_name_prefix = "x"\n')
    executor = built(thread={"max_workers": 5})
    assert executor.max_workers == 5


def test_loaded_executor_runs(tmp_path: Path) -> None:
    write(tmp_path / "subiso.toml", 'executor = "thread"\nmax_workers = 1\n')
    with load_executor() as executor:
        result = executor.execute(SQUARE)
    assert result.output == 36 and result.report.tier == "thread"
    assert result.report.selected_by is None


# -- error paths ---------------------------------------------------------------------------------
ERRORS = {
    "unknown top-level key": (
        'executor = "thread"\nmax_worker = 4\n',
        ["'max_worker'", "valid keys", "max_workers", "executor"],
    ),
    "unknown key in a tier table": (
        "[process]\nstart_mode = 'spawn'\n",
        ["'process.start_mode'", "start_method", "max_tasks_per_worker"],
    ),
    "wrong type": ('max_workers = "four"\n', ["'max_workers'", "Expected `int"]),
    "bool is not a number": ("timeout = true\n", ["'timeout'", "float"]),
    "wrong type in a tier table": (
        "[process]\nprestart = 'yes'\n",
        ["'process.prestart'", "bool"],
    ),
    "bad start method": (
        "[process]\nstart_method = 'clone'\n",
        ["'process.start_method'", "spawn, forkserver, fork"],
    ),
    "unknown executor": (
        'executor = "warp"\n',
        ["'executor'", "'warp'", "inline", "context", "thread", "process", "auto"],
    ),
    "unknown fallback tier": (
        'fallback = ["process", "gpu"]\n',
        ["'fallback'", "'gpu'", "thread"],
    ),
    "a tier that cannot be a fallback": (
        '[subinterpreter]\nfallback = ["subinterpreter"]\n',
        ["'subinterpreter.fallback'", "cannot be a fallback", "'subinterpreter'", "thread"],
    ),
    "zero workers": ("max_workers = 0\n", ["'max_workers'", "> 0"]),
    "negative timeout in a table": ("[thread]\ntimeout = -1\n", ["'thread.timeout'", "> 0"]),
    "bad checkpointer": ('checkpointer = "redis://x"\n', ["'checkpointer'", "sqlite:///"]),
    "tier key not a table": ("process = 3\n", ["'process'", "table"]),
    "not TOML": ("executor = \n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_names_key_file_and_choices(tmp_path: Path, case: str) -> None:
    text, needles = ERRORS[case]
    path = write(tmp_path / "subiso.toml", text)
    with pytest.raises(ConfigError) as info:
        load_executor()
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_error_in_pyproject_names_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.subiso]\nexecuter = 'thread'\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml \[tool\.subiso\]: unknown key"):
        load_executor()
    assert path.exists()


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="settings file not found"):
        load_executor(tmp_path / "nope.toml")
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match=f"{ENV_CONFIG}=.*no such file"):
        load_executor()


def test_explicit_pyproject_needs_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"no \[tool\.subiso\] table"):
        load_executor(path)


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.ini", "[subiso]\n")
    with pytest.raises(ConfigError, match="unsupported file type"):
        load_executor(path)


def test_bad_env_executor_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_EXECUTOR, "threads")
    with pytest.raises(ConfigError, match=f"{ENV_EXECUTOR}='threads'.*choose one of"):
        load_executor()


def test_bad_override_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'max_workers'"):
        load_executor(max_workers="many")


# -- the legacy option dict ----------------------------------------------------------------------
def expected_legacy(process: bool, forced: bool, thread: bool) -> str:
    if process:
        return "process"
    if forced:
        return "thread"
    return "context" if thread else "inline"


@pytest.mark.parametrize(
    ("process", "forced", "thread"), list(itertools.product([False, True], repeat=3))
)
def test_every_legacy_combination(process: bool, forced: bool, thread: bool) -> None:
    opts = {
        "use_process_isolation": process,
        "use_forced_thread_isolation": forced,
        "use_thread_isolation": thread,
        "analysis_depth": "full",  # unrelated keys of the old option dict are ignored
    }
    assert legacy_tier(opts) == expected_legacy(process, forced, thread)


def test_legacy_defaults() -> None:
    assert legacy_tier({}) == "thread"  # forced thread isolation was the default
    assert legacy_tier({"use_thread_isolation": False}) == "thread"
    assert legacy_tier({"use_forced_thread_isolation": False}) == "context"
    both_off = {"use_forced_thread_isolation": False, "use_thread_isolation": False}
    assert legacy_tier(both_off) == "inline"
    assert legacy_tier({"use_process_isolation": True}) == "process"


@pytest.mark.parametrize(
    ("opts", "cls"),
    [
        ({}, ThreadExecutor),
        ({"use_forced_thread_isolation": False}, ContextExecutor),
        ({"use_forced_thread_isolation": False, "use_thread_isolation": False}, InlineExecutor),
    ],
)
def test_executor_from_options_runs(opts: dict[str, bool], cls: type) -> None:
    with subiso.executor_from_options(opts, timeout=60) as executor:
        assert type(executor) is cls and executor.timeout == 60
        assert executor.run(SQUARE) == 36


def test_legacy_dict_beats_env_and_uses_file_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "subiso.toml", "[thread]\nmax_workers = 3\n")
    monkeypatch.setenv(ENV_EXECUTOR, "inline")
    executor = subiso.executor_from_options({"use_process_isolation": False})
    executor.close()
    assert type(executor) is ThreadExecutor and executor.max_workers == 3


def test_legacy_errors() -> None:
    with pytest.raises(ConfigError, match="'use_process_isolation' must be true or false"):
        legacy_tier({"use_process_isolation": "yes"})
    with pytest.raises(ConfigError, match="expected a dict"):
        subiso.executor_from_options([("use_process_isolation", True)])  # type: ignore[arg-type]


# -- subiso.run / subiso.arun ---------------------------------------------------------------------
@pytest.fixture
def fresh_default() -> object:
    reset_default_executor()
    yield
    reset_default_executor()


def test_module_run_uses_settings(tmp_path: Path, fresh_default: object) -> None:
    write(tmp_path / "subiso.toml", 'executor = "context"\n')
    assert subiso.run(SQUARE) == 36
    assert type(default_executor()) is ContextExecutor
    assert asyncio.run(subiso.arun({"graph": "tests.workloads:asquare", "input": 5})) == 25


def test_module_arun_creates_the_executor(tmp_path: Path, fresh_default: object) -> None:
    write(tmp_path / "subiso.toml", 'executor = "thread"\nmax_workers = 2\n')
    assert asyncio.run(subiso.arun(SQUARE)) == 36
    assert default_executor().max_workers == 2


def test_default_executor_created_once_under_races(tmp_path: Path, fresh_default: object) -> None:
    write(tmp_path / "subiso.toml", 'executor = "thread"\n')
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def grab() -> None:
        barrier.wait()
        seen.append(default_executor())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len({id(e) for e in seen}) == 1


def test_default_executor_closed_at_exit(tmp_path: Path) -> None:
    """A real interpreter exit: the atexit hook closes the default executor and its threads."""
    write(tmp_path / "subiso.toml", 'executor = "thread"\nmax_workers = 2\n')
    script = textwrap.dedent(
        """
        import atexit, threading
        import subiso
        import subiso.default as d

        def after():  # registered first, so it runs after subiso's own hook
            ex = seen[0]
            workers = [t for t in threading.enumerate() if t.name.startswith("subiso-thread")]
            print("closed", ex.closed, d._executor is None, len(workers))

        atexit.register(after)
        print("output", subiso.run({"graph": "tests.workloads:square", "input": 9}))
        seen = [d.default_executor()]
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(ENV_CONFIG, None)
    env.pop(ENV_EXECUTOR, None)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["output 81", "closed True True 0"]
