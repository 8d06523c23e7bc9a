"""No raw errors: each mistake a newcomer (or the fuzz) made that reached them as a builtin
exception - ``KeyError``, ``TypeError``, ``sqlite3.DatabaseError`` - is a ConfigError naming
the field and the fix. And one option is accepted or refused alike by ``get_executor`` and a
settings file (the CLI's cases are in ``tests/test_cli.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import ConfigError, GraphConfig
from subiso.settings import load_executor

ALL = ("inline", "context", "thread", "subinterpreter", "process")
GRAPH = "tests.workloads:log_builder"


def _options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 1}


# -- state operations without a thread ---------------------------------------------------------
@pytest.mark.parametrize("tier", ALL)
def test_state_operations_without_a_thread_id_name_the_field(tier: str, make_executor: Any) -> None:
    """LangGraph's own was ``KeyError: 'configurable'`` (or ``'thread_id'``) from its saver."""
    ex = make_executor(tier, **_options(tier))
    for config in ({}, {"configurable": {}}):
        cfg = GraphConfig(graph=GRAPH, checkpointer="memory", config=config)
        calls = {
            "get_state": lambda c=cfg: ex.get_state(c),
            "get_state_history": lambda c=cfg: ex.get_state_history(c),
            "update_state": lambda c=cfg: ex.update_state(c, {"entries": ["x"]}),
            "aget_state": lambda c=cfg: asyncio.run(ex.aget_state(c)),
        }
        for op, call in calls.items():
            with pytest.raises(ConfigError, match=r"configurable\.thread_id") as e:
                call()
            assert str(e.value).startswith(op.removeprefix("a")), e.value
    # with a thread the same calls work
    cfg = GraphConfig(
        graph=GRAPH, checkpointer="memory", config={"configurable": {"thread_id": "1"}}
    )
    assert ex.get_state(cfg).values == {}


# -- a checkpointer or store file that is not an SQLite database ----------------------------------
@pytest.mark.parametrize("tier", ALL)
@pytest.mark.parametrize("field", ["checkpointer", "store"])
def test_an_sqlite_file_that_is_not_a_database_is_a_config_error(
    tier: str, field: str, make_executor: Any, tmp_path: Path
) -> None:
    """Was ``sqlite3.DatabaseError: file is not a database`` from the saver's setup."""
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 20)
    ex = make_executor(tier, **_options(tier))
    cfg = GraphConfig(
        graph=GRAPH,
        input={"entries": []},
        config={"configurable": {"thread_id": "1"}},
        **{field: f"sqlite:///{junk}"},
    )
    with pytest.raises(ConfigError) as e:
        ex.run(cfg)
    message = str(e.value)
    assert f"{field} 'sqlite:///{junk}'" in message and "is not a usable SQLite database" in message
    assert "name a new file" in message
    assert junk.read_text().startswith("these are my notes")  # left alone
    good = cfg.replace(**{field: f"sqlite:///{tmp_path / 'runs.db'}"})
    assert ex.run(good) == {"entries": ["run-0"]}  # the executor still serves
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


# -- GraphConfig files ---------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["[1, 2]", "null", '"a:b"', "5"])
def test_a_json_file_that_is_not_an_object_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"run.json: expected a table/object at top level"):
        GraphConfig.from_file(path)


# -- constructor options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: subiso.ProcessExecutor(preload=5),  # type: ignore[arg-type]
            "ProcessExecutor: preload must be a list of module names",
        ),
        (
            lambda: subiso.ProcessExecutor(preload=["ok", 1]),  # type: ignore[list-item]
            "ProcessExecutor: preload must be a list of module names",
        ),
        (
            lambda: subiso.ProcessExecutor(prestart="yes"),  # type: ignore[arg-type]
            "ProcessExecutor: prestart must be true or false",
        ),
        (
            lambda: subiso.SubinterpreterExecutor(fallback=5),  # type: ignore[arg-type]
            "SubinterpreterExecutor: fallback must be a list of tier names",
        ),
        (
            lambda: subiso.SubinterpreterExecutor(fallback=[None]),  # type: ignore[list-item]
            "SubinterpreterExecutor: fallback must be a list of tier names",
        ),
    ],
)
def test_constructor_options_of_the_wrong_type_name_the_option(make: Any, message: str) -> None:
    """Were raw ``TypeError: 'int' object is not iterable`` (found by the fuzz)."""
    with pytest.raises(ConfigError, match=message):
        make()


# -- one option, accepted or refused alike by get_executor and a settings file --------------------
SHARED = [
    ("inline", "max_workers", 2),
    ("context", "max_workers", 2),
    ("thread", "fallback", ["process"]),
    ("inline", "fallback", ["thread"]),
]


@pytest.mark.parametrize(("tier", "key", "value"), SHARED)
def test_a_shared_option_the_tier_does_not_take_is_accepted_by_name_and_by_file(
    tier: str, key: str, value: Any, tmp_path: Path, make_executor: Any
) -> None:
    """``get_executor("context", max_workers=2)`` was a ConfigError though ``executor =
    "context"`` with ``max_workers = 2`` in a settings file was accepted: both accept it now."""
    by_name = make_executor(tier, **{key: value})
    settings = tmp_path / "subiso.toml"
    settings.write_text(f'executor = "{tier}"\n{key} = {_toml(value)}\n')
    by_file = load_executor(settings)
    try:
        assert type(by_name) is type(by_file)
        assert by_name.run({"graph": "tests.workloads:square", "input": 3}) == 9
    finally:
        by_file.close()


@pytest.mark.parametrize(
    ("tier", "key", "value", "message"),
    [
        ("inline", "max_workers", 0, "max_workers'? must be >= 1"),
        ("context", "fallback", ["auto"], "cannot be a fallback 'auto'"),
        ("thread", "timeout", -1, "timeout'? must be > 0 seconds"),
    ],
)
def test_a_bad_shared_value_is_refused_by_name_and_by_file_alike(
    tier: str, key: str, value: Any, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        subiso.get_executor(tier, **{key: value})
    settings = tmp_path / "subiso.toml"
    settings.write_text(f'executor = "{tier}"\n{key} = {_toml(value)}\n')
    with pytest.raises(ConfigError, match=message):
        load_executor(settings)


def test_an_option_of_another_tier_is_refused_by_name_by_file_and_by_constructor(
    tmp_path: Path,
) -> None:
    """Not a shared key: a tier's own option given to another tier is a mistake everywhere."""
    with pytest.raises(ConfigError, match="start_method: not an option of the context tier"):
        subiso.get_executor("context", start_method="spawn")
    settings = tmp_path / "subiso.toml"
    settings.write_text('executor = "context"\n[context]\nstart_method = "spawn"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'context\.start_method'"):
        load_executor(settings)
    with pytest.raises(TypeError, match="start_method"):
        subiso.ContextExecutor(start_method="spawn")  # type: ignore[call-arg]


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)
