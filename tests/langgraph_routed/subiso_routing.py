"""A pytest plugin that runs LangGraph's own tests with their graph calls routed through subiso.

Load it into a run of LangGraph's test suite (from its source distribution; ``run.py`` fetches
it) with ``-p subiso_routing`` (this directory on ``PYTHONPATH``) and pick a tier with
``--subiso-tier`` or ``SUBISO_ROUTED_TIER``: ``plain`` (nothing routed: the baseline),
``inline``, ``context``, ``thread`` or ``subinterpreter`` (hybrid mode: the graph runs on the
tier's host threads).

**What is routed.** Every *top-level* call a test makes on a compiled graph (``Pregel``):
``invoke``/``ainvoke`` become ``ex.run``/``ex.arun``, ``stream``/``astream`` become
``ex.stream``/``ex.astream``, and ``get_state``, ``get_state_history``, ``update_state`` and
their async forms go to the executor's methods of the same name, each with the test's compiled
graph object in ``GraphConfig(graph=graph, input=..., config=..., context=..., durability=...,
interrupt_before=..., interrupt_after=...)``. A call is top-level when the test's own code makes
it (the caller is a module of LangGraph's ``tests`` package, reached from the test runner,
not from LangGraph, LangChain or subiso code) outside any LangGraph run (no runnable config in
the caller's context): a graph invoked inside a node of another graph, the calls LangGraph makes
on itself (``invoke`` -> ``stream``, ``batch`` -> ``invoke``, ``astream_events`` ->
``astream``) and a test's own wrapper of a graph method called back by those, run plainly. A call with an argument subiso's API has no place for (``output_keys``,
``print_mode``, ``stream_mode`` other than ``"values"`` on ``invoke``, ``version="v2"``,
``control``, ``filter``/``before`` on the history, ``task_id``, ...) runs plainly too, and is
counted as *unrouted* with its reason in the report.

**One executor per test**, made on the test's first routed call and closed (``wait=True``,
bounded) when the test function returns: a test leaking a run shows as a hang or an error of
that test, not of a later one. ``--subiso-scope=module`` keeps one per test module instead
(``run.py`` uses it for the subinterpreter tier, whose interpreter costs ~0.2 s to start and
close).

``--subiso-report=PATH`` writes, per test: outcome, routed/unrouted calls, and the crash line
of a failure (``run.py`` compares tiers with it).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

TIERS = ("plain", "inline", "context", "thread", "subinterpreter")
ENV_TIER = "SUBISO_ROUTED_TIER"

#: The Pregel methods routed, and the executor method each becomes.
ROUTED = (
    "invoke",
    "ainvoke",
    "stream",
    "astream",
    "get_state",
    "aget_state",
    "get_state_history",
    "aget_state_history",
    "update_state",
    "aupdate_state",
)

# The invoke/stream arguments GraphConfig carries; any other argument with a non-default
# value makes the call unroutable.
_RUN_ARGS = ("input", "config", "context", "durability", "interrupt_before", "interrupt_after")


class Unroutable(Exception):
    """The call has an argument subiso's API cannot express: it runs plainly."""


class _State:
    """The run's tier, the current test's executor and what its calls did."""

    def __init__(self) -> None:
        self.tier = "plain"
        self.scope = "test"
        self.lock = threading.Lock()
        self.executor: Any = None
        self.routed = 0
        self.unrouted: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}


STATE = _State()


# -- pytest hooks ------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("subiso", "route LangGraph's test calls through a subiso tier")
    group.addoption(
        "--subiso-tier",
        default=os.environ.get(ENV_TIER, "plain"),
        choices=TIERS,
        help=f"tier to route top-level graph calls through (default: ${ENV_TIER} or plain)",
    )
    group.addoption(
        "--subiso-report", default=None, help="write per-test outcomes to this JSON file"
    )
    group.addoption(
        "--subiso-scope",
        default="test",
        choices=("test", "module"),
        help="one executor per test (default), or per test module (a subinterpreter "
        "executor costs ~0.2 s to start and close)",
    )


def pytest_configure(config: pytest.Config) -> None:
    STATE.tier = config.getoption("subiso_tier")
    STATE.scope = config.getoption("subiso_scope")
    if STATE.tier != "plain":
        _install()


def pytest_report_header(config: pytest.Config) -> str:
    import subiso

    return f"subiso routing: tier {STATE.tier}, subiso from {os.path.dirname(subiso.__file__)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Close the test's executor when its function returns (before fixtures are torn down:
    they may close the checkpointers the runs used)."""
    STATE.routed, STATE.unrouted = 0, []
    try:
        result = yield
    except BaseException:
        if STATE.scope == "test":
            _close(_taken(), quiet=True)  # the test's own failure is the one to report
        raise
    if STATE.scope == "test":
        _close(_taken())
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """With ``--subiso-scope=module``: close the executor after a module's last test."""
    result = yield
    if STATE.scope == "module" and (nextitem is None or nextitem.path != item.path):
        _close(_taken())
    return result


def _taken() -> Any:
    executor, STATE.executor = STATE.executor, None
    return executor


#: How long ``close(wait=True)`` may take after a test before it fails that test (a run left
#: running, or a close that waits for something that can never end).
CLOSE_BOUND_S = 30.0


def _close(executor: Any, *, quiet: bool = False) -> None:
    """``executor.close(wait=True)``, bounded: a close that does not return fails the test
    that used the executor (its thread is given up) instead of hanging the suite."""
    if executor is None:
        return
    failed: list[BaseException] = []

    def close() -> None:
        try:
            executor.close(wait=True)
        except BaseException as exc:
            failed.append(exc)

    closer = threading.Thread(target=close, name="subiso-routing-close", daemon=True)
    closer.start()
    closer.join(CLOSE_BOUND_S)
    if quiet:
        return
    if closer.is_alive():
        raise AssertionError(
            f"{type(executor).__name__}.close(wait=True) did not return within "
            f"{CLOSE_BOUND_S:g}s after the test"
        )
    if failed:
        raise failed[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":  # on the worker that ran the test (pytest-xdist)
        report.user_properties.append(("subiso_routed", STATE.routed))
        report.user_properties.append(("subiso_unrouted", sorted(set(STATE.unrouted))))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = STATE.results.setdefault(report.nodeid, {"outcome": "passed"})
    for key, value in report.user_properties:
        if key.startswith("subiso_"):
            entry[key.removeprefix("subiso_")] = value
    entry["s"] = round(entry.get("s", 0.0) + report.duration, 3)
    if report.skipped:
        entry["outcome"] = "skipped"
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or str(report.longrepr)
        entry.setdefault("crash", message[:600])


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("subiso_report")
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller, or alone
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tier": STATE.tier, "tests": STATE.results}, f, indent=1, sort_keys=True)


# -- the executor ------------------------------------------------------------------------------
def make_executor(tier: str) -> Any:
    import subiso

    if tier == "subinterpreter":
        ex = subiso.SubinterpreterExecutor(max_workers=1)
        if ex.fallback_tier is not None:
            raise RuntimeError(f"no subinterpreters here: {ex.fallback_reason}")
        return ex
    return subiso.get_executor(tier)


def _executor() -> Any:
    with STATE.lock:
        if STATE.executor is None:
            STATE.executor = make_executor(STATE.tier)
        return STATE.executor


# -- deciding what is top-level ----------------------------------------------------------------
def _is_test_code(frame: Any) -> bool:
    name = frame.f_globals.get("__name__", "")
    return bool(name == "tests" or name.startswith("tests."))


#: Libraries whose frames below a call make it theirs, not the test's.
_LIBRARIES = ("langgraph.", "langchain_core.", "langchain.", "langsmith.", "subiso.")


def _in_a_run() -> bool:
    from langchain_core.runnables.config import var_child_runnable_config

    return var_child_runnable_config.get() is not None


def _top_level() -> bool:
    """The test's own code made this call: the caller is test code, and below the test code
    that led to it is the test runner (pytest, anyio, asyncio, a thread of the test's), not
    LangGraph, LangChain or subiso - a test's wrapper of ``graph.astream`` called back by
    ``astream_events`` or by a run is theirs - and no LangGraph run is in progress in the
    caller's context (a graph invoked inside a node)."""
    frame = sys._getframe(2)
    if not _is_test_code(frame) or _in_a_run():
        return False
    while frame is not None and _is_test_code(frame):
        frame = frame.f_back
    below = "" if frame is None else frame.f_globals.get("__name__", "")
    return not below.startswith(_LIBRARIES)


# -- the routing -------------------------------------------------------------------------------
def _install() -> None:
    from langgraph.pregel import Pregel

    for name in ROUTED:
        original = getattr(Pregel, name)
        setattr(Pregel, name, _patched(name, original, _ROUTES[name]))


def _patched(name: str, original: Callable[..., Any], route: Callable[..., Any]) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _top_level():
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.update(arguments.pop("kwargs", {}))
        try:
            routed = route(self, arguments)
        except Unroutable as why:
            STATE.unrouted.append(f"{name}: {why}")
            return original(self, *args, **kwargs)
        STATE.routed += 1
        return routed()

    return method


def _defaults(arguments: dict[str, Any], **defaults: Any) -> None:
    """Refuse arguments outside GraphConfig whose value is not their default."""
    for key, value in arguments.items():
        if key in ("self", *_RUN_ARGS, *defaults.get("_handled", ())):
            continue
        if key not in defaults or not _same(value, defaults[key]):
            raise Unroutable(f"{key}={value!r}")


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, tuple) and isinstance(value, (tuple, list)):
        return tuple(value) == default
    return bool(value is default or value == default)


def _breakpoints(value: Any) -> Any:
    if value is None or value == "*":
        return value
    return list(value)


def _graph_config(graph: Any, arguments: dict[str, Any]) -> Any:
    import subiso

    return subiso.GraphConfig(
        graph=graph,
        input=arguments.get("input"),
        config=dict(arguments.get("config") or {}),
        context=arguments.get("context"),
        durability=arguments.get("durability"),
        interrupt_before=_breakpoints(arguments.get("interrupt_before")),
        interrupt_after=_breakpoints(arguments.get("interrupt_after")),
    )


_INVOKE_DEFAULTS: dict[str, Any] = {
    "stream_mode": "values",
    "print_mode": (),
    "output_keys": None,
    "control": None,
    "version": "v1",
}
_STREAM_DEFAULTS: dict[str, Any] = {
    "print_mode": (),
    "output_keys": None,
    "control": None,
    "version": "v1",
    "debug": None,
    "_handled": ("stream_mode", "subgraphs"),
}


def _invoke(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    _defaults(arguments, **_INVOKE_DEFAULTS)
    cfg = _graph_config(graph, arguments)
    return lambda: _executor().run(cfg)


def _ainvoke(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    _defaults(arguments, **_INVOKE_DEFAULTS)
    cfg = _graph_config(graph, arguments)
    return lambda: _executor().arun(cfg)


def _stream_mode(graph: Any, arguments: dict[str, Any]) -> Any:
    mode = arguments.get("stream_mode")
    if mode is None:
        mode = graph.stream_mode
    return list(mode) if isinstance(mode, (list, tuple)) else mode


def _stream(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    _defaults(arguments, **_STREAM_DEFAULTS)
    cfg = _graph_config(graph, arguments)
    mode, subgraphs = _stream_mode(graph, arguments), bool(arguments.get("subgraphs"))

    def lazily() -> Iterator[Any]:  # graph.stream is a generator: nothing runs until iterated
        yield from _executor().stream(cfg, stream_mode=mode, subgraphs=subgraphs)

    return lazily


def _astream(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    _defaults(arguments, **_STREAM_DEFAULTS)
    cfg = _graph_config(graph, arguments)
    mode, subgraphs = _stream_mode(graph, arguments), bool(arguments.get("subgraphs"))
    return lambda: _executor().astream(cfg, stream_mode=mode, subgraphs=subgraphs)


def _state_config(graph: Any, arguments: dict[str, Any]) -> Any:
    import subiso

    return subiso.GraphConfig(graph=graph, config=dict(arguments.get("config") or {}))


def _get_state(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, subgraphs = _state_config(graph, arguments), bool(arguments.get("subgraphs"))
    return lambda: _executor().get_state(cfg, subgraphs=subgraphs)


def _aget_state(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, subgraphs = _state_config(graph, arguments), bool(arguments.get("subgraphs"))
    return lambda: _executor().aget_state(cfg, subgraphs=subgraphs)


def _history_args(graph: Any, arguments: dict[str, Any]) -> tuple[Any, int | None]:
    for key in ("filter", "before"):
        if arguments.get(key) is not None:
            raise Unroutable(f"{key}={arguments[key]!r}")
    return _state_config(graph, arguments), arguments.get("limit")


def _get_state_history(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, limit = _history_args(graph, arguments)

    def lazily() -> Iterator[Any]:  # LangGraph's is a generator too
        yield from _executor().get_state_history(cfg, limit=limit)

    return lazily


def _aget_state_history(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, limit = _history_args(graph, arguments)

    async def lazily() -> AsyncIterator[Any]:
        for snapshot in await _executor().aget_state_history(cfg, limit=limit):
            yield snapshot

    return lazily


def _update_args(graph: Any, arguments: dict[str, Any]) -> tuple[Any, Any, str | None]:
    if arguments.get("task_id") is not None:
        raise Unroutable(f"task_id={arguments['task_id']!r}")
    return _state_config(graph, arguments), arguments.get("values"), arguments.get("as_node")


def _update_state(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, values, as_node = _update_args(graph, arguments)
    return lambda: _executor().update_state(cfg, values, as_node=as_node)


def _aupdate_state(graph: Any, arguments: dict[str, Any]) -> Callable[[], Any]:
    cfg, values, as_node = _update_args(graph, arguments)
    return lambda: _executor().aupdate_state(cfg, values, as_node=as_node)


_ROUTES: dict[str, Callable[[Any, dict[str, Any]], Callable[[], Any]]] = {
    "invoke": _invoke,
    "ainvoke": _ainvoke,
    "stream": _stream,
    "astream": _astream,
    "get_state": _get_state,
    "aget_state": _aget_state,
    "get_state_history": _get_state_history,
    "aget_state_history": _aget_state_history,
    "update_state": _update_state,
    "aupdate_state": _aupdate_state,
}
