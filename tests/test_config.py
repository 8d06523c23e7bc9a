"""GraphConfig: construction, files, wire round trips, and ConfigError for every bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

import subiso
from subiso import ConfigError, GraphConfig
from tests import workloads

FULL = {
    "graph": "tests.workloads:sync_graph",
    "input": {"x": 3},
    "config": {"configurable": {"thread_id": "t-1"}, "recursion_limit": 7},
    "checkpointer": "sqlite:///runs/x.db",
    "timeout": 2.5,
}


def full_config() -> GraphConfig:
    return GraphConfig(**FULL)


# -- shape ---------------------------------------------------------------------------------------
def test_defaults() -> None:
    cfg = GraphConfig(graph="tests.workloads:sync_graph")
    assert cfg.input is None
    assert cfg.config == {}
    assert cfg.checkpointer is None
    assert cfg.timeout is None
    assert cfg.module == "tests.workloads"


def test_frozen() -> None:
    cfg = full_config()
    with pytest.raises(AttributeError):
        cfg.timeout = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.graph = "tests.workloads:async_graph"  # type: ignore[misc]
    # frozen structs are hashable only when their fields are; equality is by value
    assert cfg == full_config()
    changed = cfg.replace(timeout=9.0)
    assert changed.timeout == 9.0 and cfg.timeout == 2.5


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        GraphConfig("tests.workloads:sync_graph")  # type: ignore[misc]
    with pytest.raises(TypeError):
        GraphConfig("tests.workloads:sync_graph", {"x": 1})  # type: ignore[misc]


def test_default_config_dict_is_not_shared() -> None:
    a = GraphConfig(graph="tests.workloads:sync_graph")
    b = GraphConfig(graph="tests.workloads:sync_graph")
    a.config["mutated"] = True
    assert b.config == {}


# -- loading -------------------------------------------------------------------------------------
def test_from_dict() -> None:
    assert GraphConfig.from_dict(dict(FULL)) == full_config()
    assert GraphConfig.from_dict({"graph": "tests.workloads:square", "input": 4}).input == 4


TOML = """\
graph = "tests.workloads:sync_graph"
checkpointer = "sqlite:///runs/x.db"
timeout = 2.5

[input]
x = 3

[config]
recursion_limit = 7

[config.configurable]
thread_id = "t-1"
"""

YAML = """\
graph: tests.workloads:sync_graph
input:
  x: 3
config:
  configurable:
    thread_id: t-1
  recursion_limit: 7
checkpointer: sqlite:///runs/x.db
timeout: 2.5
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cfg.toml", TOML),
        ("cfg.json", json.dumps(FULL)),
        ("cfg.yaml", YAML),
        ("cfg.yml", YAML),
    ],
)
def test_from_file(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert GraphConfig.from_file(path) == full_config()
    assert GraphConfig.from_file(str(path)) == full_config()


def test_from_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="cannot read file"):
        GraphConfig.from_file(missing)

    ini = tmp_path / "cfg.ini"
    ini.write_text("graph = x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unsupported file type '\.ini'"):
        GraphConfig.from_file(ini)

    broken = tmp_path / "cfg.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        GraphConfig.from_file(broken)

    not_a_table = tmp_path / "list.json"
    not_a_table.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a table/object"):
        GraphConfig.from_file(not_a_table)

    bad_field = tmp_path / "bad.toml"
    bad_field.write_text('graph = "tests.workloads:sync_graph"\ntimeout = "soon"\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        GraphConfig.from_file(bad_field)
    assert "timeout" in str(info.value) and "bad.toml" in str(info.value)


# -- wire round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("codec", [msgspec.json, msgspec.msgpack], ids=["json", "msgpack"])
def test_round_trip(codec: Any) -> None:
    for cfg in (full_config(), GraphConfig(graph="tests.workloads:square", input=[1, "a", None])):
        raw = codec.encode(cfg)
        back = codec.decode(raw, type=GraphConfig)
        assert back == cfg
        assert isinstance(back, GraphConfig)


def test_json_is_plain_mapping() -> None:
    assert json.loads(msgspec.json.encode(full_config())) == FULL


# -- bad configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"graph": "tests.workloads"}, "GraphConfig.graph", "is not an import path"),
        ({"graph": "tests/workloads.py:sync_graph"}, "GraphConfig.graph", "is not an import path"),
        ({"graph": ":sync_graph"}, "GraphConfig.graph", "is not an import path"),
        ({"graph": "tests.workloads:"}, "GraphConfig.graph", "is not an import path"),
        (
            {"graph": "tests.workloads:sync_graph", "checkpointer": "redis://localhost"},
            "GraphConfig.checkpointer",
            "unknown checkpointer 'redis://localhost'",
        ),
        (
            {"graph": "tests.workloads:sync_graph", "checkpointer": "sqlite:///"},
            "GraphConfig.checkpointer",
            "unknown checkpointer",
        ),
        ({"graph": "tests.workloads:sync_graph", "timeout": 0}, "GraphConfig.timeout", "> 0"),
        ({"graph": "tests.workloads:sync_graph", "timeout": -1.0}, "GraphConfig.timeout", "> 0"),
        (
            {"graph": "tests.workloads:sync_graph", "timeout": "5s"},
            "timeout",
            "expected a number of seconds",
        ),
        ({"graph": 12}, "graph", "Expected `str`"),
        ({"graph": "tests.workloads:sync_graph", "config": []}, "config", "expected a table"),
        ({"graph": "tests.workloads:sync_graph", "checkpointer": 3}, "checkpointer", "Expected"),
        ({"input": 1}, "graph", "missing required key"),
        ({"graph": "tests.workloads:sync_graph", "inputs": 1}, "inputs", "unknown key"),
    ],
)
def test_bad_config_from_dict(data: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        GraphConfig.from_dict(data)
    text = str(info.value)
    assert field in text, text
    assert reason.lower() in text.lower(), text
    assert isinstance(info.value, ValueError)  # ConfigError is a ValueError too


def test_bad_config_in_code() -> None:
    with pytest.raises(ConfigError, match=r"GraphConfig\.graph"):
        GraphConfig(graph="no colon here")
    with pytest.raises(ConfigError, match=r"GraphConfig\.checkpointer: unknown checkpointer 'pg'"):
        GraphConfig(graph="tests.workloads:sync_graph", checkpointer="pg")


# -- resolution (happens in the worker; ConfigError crosses back to the caller) ------------------
@pytest.mark.parametrize(
    ("graph", "needles"),
    [
        ("no_such_pkg_subiso.mod:graph", ["GraphConfig.graph", "unknown module", "no_such_pkg"]),
        ("tests.no_such_module:graph", ["unknown module", "tests.no_such_module"]),
        ("tests.workloads:no_such_graph", ["has no attribute", "no_such_graph", "tests.workloads"]),
        ("tests.workloads:not_a_graph", ["GraphConfig.graph", "is a int", "expected a compiled"]),
        ("tests.workloads:Counter.missing", ["has no attribute", "Counter.missing"]),
        ("tests.workloads:two_args", ["2 required arguments"]),
        ("tests.workloads:background_started", ["is a list"]),
    ],
)
def test_bad_target_at_run_time(
    make_executor: Any, tier: str, graph: str, needles: list[str]
) -> None:
    executor = make_executor(tier)
    cfg = GraphConfig(graph=graph, input=1)
    with pytest.raises(ConfigError) as info:
        executor.run(cfg)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    # the executor still works after
    assert executor.run(GraphConfig(graph="tests.workloads:square", input=7)) == 49
    assert executor.run({"graph": "tests.workloads:sync_graph", "input": {"x": 2}}) == {
        "x": workloads.expected(2)
    }


def test_bad_target_through_submit_and_arun(make_executor: Any, tier: str) -> None:
    import asyncio

    executor = make_executor(tier)
    bad = GraphConfig(graph="tests.no_such_module:graph")
    future = executor.submit(bad)
    with pytest.raises(ConfigError, match="unknown module"):
        future.result()

    async def host() -> None:
        with pytest.raises(ConfigError, match="unknown module"):
            await executor.arun(bad)
        assert await executor.arun(GraphConfig(graph="tests.workloads:asquare", input=5)) == 25

    asyncio.run(host())


def test_mapping_and_wrong_types_through_executor(make_executor: Any) -> None:
    executor = make_executor("inline")
    with pytest.raises(ConfigError, match="expected a GraphConfig or a mapping"):
        executor.run("tests.workloads:square")
    with pytest.raises(ConfigError, match="unknown key 'inputt' \\(did you mean 'input'\\?\\)"):
        executor.run({"graph": "tests.workloads:square", "inputt": 2})


@pytest.mark.parametrize("name", ["inline", "context", "thread"])
def test_executor_options_validated(name: str) -> None:
    with pytest.raises(ConfigError, match="timeout must be > 0"):
        subiso.get_executor(name, timeout=0)
    with pytest.raises(ConfigError, match="unknown checkpointer 'mongo://x'"):
        subiso.get_executor(name, checkpointer="mongo://x")
    with pytest.raises(ConfigError, match="bad option"):
        subiso.get_executor(name, no_such_option=1)


def test_thread_max_workers_validated() -> None:
    with pytest.raises(ConfigError, match="max_workers must be >= 1"):
        subiso.get_executor("thread", max_workers=0)


def test_graph_config_is_a_msgspec_struct_not_a_dataclass() -> None:
    assert issubclass(GraphConfig, msgspec.Struct)
    assert not dataclasses.is_dataclass(GraphConfig)
    assert [f.name for f in msgspec.structs.fields(GraphConfig)] == [
        "graph",
        "input",
        "resume",
        "config",
        "context",
        "durability",
        "interrupt_before",
        "interrupt_after",
        "checkpointer",
        "store",
        "timeout",
        "recover",
    ]


# -- nesting -------------------------------------------------------------------------------------
def _nested(depth: int, wrap: Any = lambda v: [v]) -> Any:
    value: Any = 0
    for _ in range(depth - 1):
        value = wrap(value)
    return wrap(value) if depth else value


def test_nesting_is_refused_past_the_limit_and_for_cycles() -> None:
    import collections

    from subiso.validate import MAX_NESTING, nesting

    nesting(_nested(MAX_NESTING), "f")  # exactly the limit: fine
    nesting({"wide": [{"k": [i]} for i in range(50_000)]}, "f")
    with pytest.raises(ConfigError, match=r"^f: nested deeper than 500 levels"):
        nesting(_nested(MAX_NESTING + 1), "f")
    for wrap in (lambda v: (v,), lambda v: {"k": v}, lambda v: frozenset([(v,)])):
        with pytest.raises(ConfigError, match="nested deeper than 500"):
            nesting(_nested(10_000, wrap), "f")
    with pytest.raises(ConfigError, match="nested deeper"):  # a container subclass counts too
        nesting(_nested(MAX_NESTING + 1, lambda v: collections.OrderedDict(k=v)), "f")
    loop: list[Any] = [1]
    loop.append([{"back": loop}])
    with pytest.raises(ConfigError, match=r"^f: contains itself \(a reference cycle\)"):
        nesting(loop, "f")
    shared: Any = []
    for _ in range(200):  # 2**200 paths, 200 distinct lists: measured once each per level
        shared = [shared, shared]
    nesting(shared, "f")


def test_the_process_tier_leaves_the_nesting_check_to_its_codec(
    make_executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process tiers check the input's nesting as a run comes in; the process tier walks
    nothing (its codec refuses what it cannot carry, and then the field is named)."""
    import subiso.config

    walked: list[str] = []
    real = subiso.config.nesting

    def counting(value: Any, field: str, *args: Any) -> None:
        walked.append(field)
        real(value, field, *args)

    monkeypatch.setattr(subiso.config, "nesting", counting)
    state = {"docs": [{"n": i} for i in range(100)]}
    assert (
        make_executor("thread", max_workers=1).run(
            {"graph": "tests.process_workloads:echo", "input": state}
        )
        == state
    )
    assert "GraphConfig.input" in walked
    walked.clear()
    process = make_executor("process", max_workers=1)
    assert process.run({"graph": "tests.process_workloads:echo", "input": state}) == state
    assert "GraphConfig.input" not in walked
    for field in ("input", "context"):
        with pytest.raises(ConfigError, match=rf"GraphConfig\.{field}: nested deeper than 500"):
            process.run({"graph": "tests.process_workloads:echo", field: _nested(10_000)})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConfigError, match=r"GraphConfig\.input: contains itself"):
        process.run({"graph": "tests.process_workloads:echo", "input": loop})
    deep = _nested(400)
    assert process.run({"graph": "tests.process_workloads:echo", "input": deep}) == deep
