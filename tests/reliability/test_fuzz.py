"""Hostile input, hypothesis-driven: GraphConfig (built directly, from dicts, from files), executor
options, settings tables and files, and ``subiso`` command lines.

What any malformed input must get is a typed subiso error - a ``ConfigError`` naming the field
(or the option, the key, the file) for bad configuration; for a command line, exit status 2 with
the error printed, never a traceback - and never a raw builtin (``TypeError``, ``ValueError``,
``AttributeError``, ``OverflowError``, ``RecursionError``, ``sqlite3`` errors...). Depth and
size are limited: a 10,000-deep input is a ConfigError on every tier, never a RecursionError.

Examples are derandomized (reproducible in CI); ``SUBISO_FUZZ_EXAMPLES=N`` multiplies their
number and ``SUBISO_FUZZ_RANDOM=1`` draws fresh ones, for longer local runs. Every outcome is
counted by type; with ``SUBISO_RELIABILITY_REPORT`` set the counts are written there.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import subiso
from subiso import GraphConfig
from subiso.errors import ConfigError, SubisoError
from subiso.settings import load_settings, validate
from tests.reliability import harness
from tests.reliability.conftest import ALL_TIERS, skip_unless_runs_here

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCALE = max(1, int(os.environ.get("SUBISO_FUZZ_EXAMPLES", "1")))


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("SUBISO_FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


#: Builtin exceptions that must never reach a caller for malformed input.
RAW = (
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    OSError,
    UnicodeError,
    sqlite3.Error,
)

# -- values ------------------------------------------------------------------------------------
DEPTH = 10_000


def nested_list(depth: int = DEPTH) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int = DEPTH) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def self_referencing() -> Any:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


class Bomb:
    """Stands for a 10,000-deep (or self-referencing) value in the drawn examples, so that
    hypothesis can print a failing one; :func:`expand` builds the real thing."""

    MAKE = {
        "list": nested_list,
        "dict": nested_dict,
        "tuple": lambda: tuple(nested_list(DEPTH - 1)),
        "cycle": self_referencing,
    }

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Bomb({self.kind!r})"


def expand(value: Any) -> Any:
    """``value`` with every Bomb in it replaced by the deep value it stands for."""
    if isinstance(value, Bomb):
        return Bomb.MAKE[value.kind]()
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, tuple):
        return tuple(expand(v) for v in value)
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


BOMBS = st.sampled_from([Bomb(kind) for kind in Bomb.MAKE])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\0", "a\0b", "a:b", "a:b\n", ":", "pkg.mod:", "os:system", "1:2", "memory", "sqlite:///",
     "sqlite:///\0", "postgresql://", "sqlite:////", "*", "é:ü", " a:b", "a b:c"]
)  # fmt: skip
NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([10**400, -(10**400), 0, -1, 1e-320, 1e308, True, False])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT | st.binary(max_size=16)
ODD = st.sampled_from([object(), print, int, Ellipsis, NotImplemented, b"\xff", bytearray(b"x")])
ANY = (
    st.recursive(
        SCALARS | ODD,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(TEXT | st.integers(), inner, max_size=4)
            | st.tuples(inner, inner)
            | st.frozensets(SCALARS, max_size=3)
        ),
        max_leaves=12,
    )
    | BOMBS
)

FIELDS = [f.name for f in msgspec.structs.fields(GraphConfig)]
GOOD_GRAPH = "tests.workloads:sync_graph"


# -- counting ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def counts() -> Iterator[Counter[str]]:
    found: Counter[str] = Counter()
    yield found
    harness.report("fuzz", counts=dict(sorted(found.items())), total=sum(found.values()))


def outcome(counts: Counter[str], where: str, fn: Any, *, field: str | None = None) -> Any:
    """Call ``fn``; count ``ok`` or the error's type; fail on anything but a subiso error, and
    on a ConfigError that does not name ``field``."""
    try:
        value = fn()
    except SubisoError as exc:
        counts[f"{where}: {type(exc).__name__}"] += 1
        assert str(exc), f"{where}: {type(exc).__name__} without a message"
        if field is not None and isinstance(exc, ConfigError):
            assert field in str(exc), f"{where}: the error does not name {field!r}: {exc}"
        return exc
    except BaseException as exc:
        counts[f"{where}: RAW {type(exc).__name__}"] += 1
        raise AssertionError(f"{where}: raw {type(exc).__name__}: {exc}") from exc
    counts[f"{where}: ok"] += 1
    return value


# -- GraphConfig ---------------------------------------------------------------------------------
@fuzz(400)
@given(field=st.sampled_from(FIELDS), value=ANY)
def test_graph_config_fields(counts: Counter[str], field: str, value: Any) -> None:
    """Each field set directly to anything: a GraphConfig, or a ConfigError naming the field."""
    kwargs = {"graph": GOOD_GRAPH, field: expand(value)}
    if field == "resume":
        kwargs["input"] = None
    outcome(counts, "GraphConfig(...)", lambda: GraphConfig(**kwargs), field=field)


@fuzz(300)
@given(
    data=st.dictionaries(
        st.sampled_from([*FIELDS, "timout", "graf", "threads", ""]) | TEXT, ANY, max_size=5
    )
    | ANY,
    with_graph=st.booleans(),
)
def test_graph_config_from_dict(counts: Counter[str], data: Any, with_graph: bool) -> None:
    data = expand(data)
    if with_graph and isinstance(data, dict):
        data = {"graph": GOOD_GRAPH, **data}
    outcome(counts, "GraphConfig.from_dict", lambda: GraphConfig.from_dict(data))


def _file_text(suffix: str, value: Any) -> bytes:
    """``value`` written in the format of ``suffix`` where the format can say it, else repr."""
    try:
        if suffix == ".json":
            return msgspec.json.encode(value)
        if suffix in (".yaml", ".yml"):
            return msgspec.yaml.encode(value)
        return msgspec.toml.encode(value)
    except Exception:  # not expressible in that format (or too deep for it): garbage then
        return b"\x00not a config\xff"


DEEP_FILES = {
    ".json": b'{"graph": "a:b", "input": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    ".toml": b'graph = "a:b"\ninput = ' + b"[" * DEPTH + b"]" * DEPTH + b"\n",
    ".yaml": b"graph: a:b\ninput: " + b"[" * DEPTH + b"]" * DEPTH + b"\n",
}


@fuzz(250)
@given(
    suffix=st.sampled_from([".json", ".toml", ".yaml", ".yml", ".txt", ""]),
    content=st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(str.encode),
        st.dictionaries(st.sampled_from([*FIELDS, "x"]), ANY, max_size=4).map(lambda d: d),
        st.sampled_from(list(DEEP_FILES)),
    ),
)
def test_graph_config_from_file(
    counts: Counter[str], tmp_path_factory: Any, suffix: str, content: Any
) -> None:
    path = tmp_path_factory.mktemp("cfg") / f"config{suffix}"
    if isinstance(content, str) and content in DEEP_FILES:
        path = path.with_suffix(content)
        raw = DEEP_FILES[content]
    elif isinstance(content, dict):
        raw = _file_text(suffix, expand(content))
    else:
        raw = content
    path.write_bytes(raw)
    outcome(counts, "GraphConfig.from_file", lambda: GraphConfig.from_file(path))


def test_graph_config_from_odd_paths(counts: Counter[str], tmp_path: Path) -> None:
    for path in ["a\0b.toml", tmp_path, str(tmp_path / "missing.json"), 5, None, b"x.toml"]:
        outcome(counts, "GraphConfig.from_file", lambda p=path: GraphConfig.from_file(p))


# -- depth and size on every tier ----------------------------------------------------------------
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_ten_thousand_deep_input_is_a_config_error_on_every_tier(
    counts: Counter[str], tier: str, make_executor: Any
) -> None:
    skip_unless_runs_here(tier)
    ex = make_executor(tier, **({} if tier in ("inline", "context") else {"max_workers": 1}))
    for make in (nested_list, nested_dict, lambda: tuple(nested_list(DEPTH - 1)), self_referencing):
        for target in (GOOD_GRAPH, "tests.reliability.targets:echo"):
            for field in ("input", "context"):
                value = make()
                err = outcome(
                    counts,
                    f"{tier} run deep",
                    lambda t=target, f=field, v=value: ex.run({"graph": t, f: v}),
                    field=field,
                )
                assert isinstance(err, ConfigError), err
                err = outcome(
                    counts,
                    f"{tier} run deep",
                    lambda t=target, f=field, v=value: ex.run(GraphConfig(graph=t, **{f: v})),
                    field=field,
                )
                assert isinstance(err, ConfigError), err
    # the limit leaves room: 400 levels cross every tier and come back equal
    deep = nested_list(400)
    assert ex.run(GraphConfig(graph="tests.reliability.targets:echo", input=deep)) == deep


# -- malformed runs on every tier ------------------------------------------------------------------
def _bad_runs(tmp_path: Path) -> list[tuple[str, dict[str, Any]]]:
    cp = {"configurable": {"thread_id": "t"}}
    return [
        ("unknown module", {"graph": "subiso_fuzz_missing.mod:x"}),
        ("unknown attribute", {"graph": "tests.workloads:missing_attr"}),
        ("not a graph", {"graph": "tests.workloads:not_a_graph"}),
        ("wrong shape", {"graph": "tests.workloads:two_args"}),
        ("sys:exit", {"graph": "sys:exit", "input": 3}),
        ("directory as sqlite", {"checkpointer": f"sqlite:///{tmp_path}", "config": cp}),
        ("file as sqlite parent", {"checkpointer": f"sqlite:///{tmp_path}/f/x.db", "config": cp}),
        ("sqlite store dir", {"store": f"sqlite:///{tmp_path}"}),
        ("nul in sqlite path", {"checkpointer": "sqlite:///a\0b", "config": cp}),
        ("checkpointer int", {"checkpointer": 1}),
        ("timeout 1e400", {"timeout": 10**400}),
        ("timeout nan", {"timeout": math.nan}),
        ("timeout str", {"timeout": "1"}),
        ("durability", {"durability": "later"}),
        ("interrupt_before", {"interrupt_before": 5}),
        ("recover", {"recover": "yes"}),
        ("configurable", {"config": {"configurable": 5}}),
        ("thread_id", {"config": {"configurable": {"thread_id": [1]}}}),
        ("recursion_limit", {"config": {"recursion_limit": 0}}),
        ("tags", {"config": {"tags": 5}}),
        ("metadata", {"config": {"metadata": 5}}),
        ("callbacks", {"config": {"callbacks": 5}}),
        ("max_concurrency", {"config": {"max_concurrency": "x"}}),
        ("checkpoint_id alone", {"config": {"configurable": {"checkpoint_id": "c"}}}),
        ("config key", {"config": {1: 2}}),
        ("unknown key", {"timout": 1}),
        ("graph None", {"graph": None}),
        ("graph int", {"graph": 1}),
        ("graph newline", {"graph": "tests.workloads:sync_graph\n"}),
        ("input and resume", {"input": {"x": 1}, "resume": 1}),
    ]


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_malformed_runs_get_typed_errors_on_every_tier(
    counts: Counter[str], tier: str, make_executor: Any, tmp_path: Path
) -> None:
    skip_unless_runs_here(tier)
    (tmp_path / "f").write_text("a file where a directory should be")
    ex = make_executor(tier, **({} if tier in ("inline", "context") else {"max_workers": 1}))
    for name, fields in _bad_runs(tmp_path):
        cfg = {"graph": GOOD_GRAPH, "input": {"x": 1}, **fields}
        err = outcome(counts, f"{tier} run", lambda c=cfg: ex.run(c))
        assert isinstance(err, SubisoError), f"{name}: ran: {err!r}"
        if name == "sys:exit":
            continue
        assert isinstance(err, ConfigError), f"{name}: {type(err).__name__}: {err}"
    assert ex.run({"graph": GOOD_GRAPH, "input": {"x": 1}}) == {"x": 1}  # still serving


# -- executor options and settings ---------------------------------------------------------------
OPTION_NAMES = [
    "timeout", "checkpointer", "worker_init", "allowed_graphs", "allowed_locations",
    "max_workers", "max_tasks_per_worker", "kill_grace", "start_method", "preload",
    "fallback", "thread_name_prefix", "bogus",
]  # fmt: skip
OPTION_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),  # worker counts stay small: executors are built
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**400, 1e-300, "", "1", "x", "a:b", "fork", "spawn", "thread", "memory"]),
    st.lists(TEXT | st.integers(), max_size=3),
    TEXT,
    st.dictionaries(TEXT, SCALARS, max_size=2),
)


@pytest.mark.parametrize("tier", ["inline", "context", "thread", "process"])
@fuzz(40)
@given(options=st.dictionaries(st.sampled_from(OPTION_NAMES), OPTION_VALUES, max_size=3))
def test_executor_options(counts: Counter[str], tier: str, options: dict[str, Any]) -> None:
    """``get_executor(tier, **options)``: an executor, or a ConfigError naming the option."""
    options.pop("prestart", None)
    result = outcome(counts, f"get_executor({tier})", lambda: subiso.get_executor(tier, **options))
    if isinstance(result, subiso.Executor):
        result.close()
    elif isinstance(result, ConfigError):
        named = [name for name in options if name in str(result)]
        assert named, f"{result} names none of {sorted(options)}"


SETTINGS_KEYS = [
    "executor", "fallback", "max_workers", "timeout", "checkpointer", "worker_init",
    "allowed_graphs", "allowed_locations", "inline", "context", "thread", "subinterpreter",
    "process", "auto", "plugins", "tool", "",
]  # fmt: skip


@fuzz(300)
@given(
    table=st.dictionaries(
        st.sampled_from(SETTINGS_KEYS) | TEXT,
        OPTION_VALUES | st.dictionaries(st.sampled_from(OPTION_NAMES) | TEXT, OPTION_VALUES),
        max_size=4,
    )
)
def test_settings_tables(counts: Counter[str], table: dict[str, Any]) -> None:
    outcome(counts, "settings.validate", lambda: validate(table, "fuzz.toml"))


@fuzz(150)
@given(
    name=st.sampled_from(["subiso.toml", "pyproject.toml", "s.json", "s.yaml", "s.txt"]),
    content=st.one_of(
        st.binary(max_size=64),
        st.dictionaries(st.sampled_from(SETTINGS_KEYS), OPTION_VALUES, max_size=4),
        st.dictionaries(
            st.just("tool"),
            st.dictionaries(
                st.sampled_from(["subiso", "x"]),
                st.dictionaries(st.sampled_from(SETTINGS_KEYS), OPTION_VALUES, max_size=3)
                | SCALARS,
            ),
        ),
        st.sampled_from([b"[tool]\nsubiso = 5\n", b"tool = 5\n", b"x = " + b"[" * DEPTH]),
    ),
)
def test_settings_files(
    counts: Counter[str], tmp_path_factory: Any, name: str, content: Any
) -> None:
    path = tmp_path_factory.mktemp("settings") / name
    path.write_bytes(content if isinstance(content, bytes) else _file_text(path.suffix, content))
    outcome(counts, "load_settings", lambda: load_settings(path))


# -- the command line ----------------------------------------------------------------------------
CLI_TARGETS = [
    "tests.workloads:sync_graph", "tests.workloads:async_graph", "tests.workloads:not_a_graph",
    "tests.workloads:two_args", "tests.workloads:failing_graph", "tests.contract_workloads:square",
    "sys:exit", "subiso_fuzz_missing:x", "tests/workloads.py:sync_graph", "tests/none.py:x",
    "tests/workloads.py", "a:b:c", ":", "", "-", "--", "x.toml", "x.json", "x.yaml", "x.py:y",
    "__main__:x", "tests.workloads:sync_graph\n", "a\0b", "x\0.toml", "tests/wo\0rkloads.py:x",
]  # fmt: skip
CLI_VALUES = st.one_of(
    st.sampled_from(['{"x": 1}', '{"x": "a"}', "[1]", "null", "{", "@", "@/nonexistent",
                     "@/", "@\0", '"\\u0000"', "1e400", "-1", "0", "2", "inline", "thread",
                     "context", "proces", "updates", "values,custom", "nope", "memory",
                     "sqlite:///", "sqlite:///\0", "summary", "full"]),
    st.text(alphabet=string.printable, max_size=12),
    st.integers(min_value=-2, max_value=3).map(str),
    st.just("[" * DEPTH + "]" * DEPTH),
)  # fmt: skip
CLI_OPTIONS = [
    "-e", "--executor", "--input", "--resume", "--thread-id", "--checkpointer", "--graph",
    "--stream", "--output", "--repeat", "--concurrency", "--settings", "--subgraphs", "--json",
    "-v", "--bogus",
]  # fmt: skip
FLAGS = {"--subgraphs", "--json", "-v"}
#: Targets that run: a builtin error from one of them may be the workflow's own.
CLI_RUNNABLE = {
    "tests.workloads:sync_graph", "tests.workloads:async_graph", "tests.workloads:failing_graph",
    "tests.contract_workloads:square", "tests/workloads.py:sync_graph", "x.toml",
}  # fmt: skip
RAW_NAMES = {cls.__name__ for cls in RAW} | {"JSONDecodeError", "InvalidUpdateError"}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: Any) -> dict[str, str]:
    """The command line's settings: the inline tier, and an allow-list so that no fuzzed
    target other than these (or ``--settings`` pointing elsewhere) is ever imported."""
    work = tmp_path_factory.mktemp("cli")
    settings_file = work / "subiso.toml"
    settings_file.write_text(
        'executor = "inline"\n'
        'allowed_graphs = ["tests.*", "sys:exit", "subiso_fuzz_missing:*", "workloads:*"]\n'
    )
    for name, text in {
        "x.toml": 'graph = "tests.workloads:sync_graph"\ninput = {x = 2}\n',
        "x.json": '{"graph": 5}',
        "x.yaml": "graph: [",
    }.items():
        (work / name).write_text(text)
    return {"SUBISO_CONFIG": str(settings_file), "SUBISO_EXECUTOR": "", "WORK": str(work)}


@fuzz(150)
@given(
    command=st.sampled_from(["run", "run", "info", "doctor", "nope"]),
    target=st.sampled_from(CLI_TARGETS) | st.text(alphabet=string.printable, max_size=16),
    options=st.lists(st.tuples(st.sampled_from(CLI_OPTIONS), CLI_VALUES), max_size=4),
)
def test_command_line(
    counts: Counter[str], cli_env: dict[str, str], command: str, target: str, options: Any
) -> None:
    """Any argument list: exit 0, 1 (the run failed) or 2 (bad usage or configuration), the
    error printed in one line - never a traceback, never an exception out of the command."""
    from click.testing import CliRunner

    from subiso.cli import main

    args = [command] + ([target] if command in ("run", "doctor") else [])
    for option, value in options:
        if option in ("--repeat", "--concurrency") and value.isdigit():
            value = str(min(int(value), 3))
        if option == "--settings" and not value.startswith("/"):
            value = os.path.join(cli_env["WORK"], value or "none.toml")
        args += [option] if option in FLAGS else [option, value]
    env = {k: v for k, v in cli_env.items() if k != "WORK"}
    cwd = os.getcwd()
    os.chdir(cli_env["WORK"]) if target.startswith("x.") else None
    try:
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=True)
    finally:
        os.chdir(cwd)
    exc = result.exception
    printed = result.output + (result.stderr if result.stderr_bytes is not None else "")
    kind = re.search(r"Error: (\w+):", printed)
    label = f"cli exit {result.exit_code}" + (f" {kind.group(1)}" if kind else "")
    counts[label] += 1
    assert exc is None or isinstance(exc, SystemExit), f"{args}: {type(exc).__name__}: {exc}"
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, printed)
    assert "Traceback" not in printed or "-v" in args, (args, printed)
    if result.exit_code == 1 and kind is not None and kind.group(1) in RAW_NAMES:
        # only a workflow's own error (a node given the wrong input) may be a builtin here
        assert target in CLI_RUNNABLE, (args, printed)
    if result.exit_code == 2 and kind is not None:
        assert kind.group(1) in ("ConfigError", "TierUnavailable", "ConfigSignatureError"), (
            args,
            printed,
        )
