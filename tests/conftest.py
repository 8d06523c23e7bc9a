"""Shared fixtures: executors that are always closed, and a check that closing left no threads.

``make_executor(name, **options)`` builds a tier through ``subiso.get_executor`` and closes it
at teardown; ``thread_guard`` (used by it) snapshots the live threads before the test and,
after everything the test opened is closed, fails the test if any thread it started is still
alive. Threads that are merely winding down (a pool shut down with ``wait=False``) are joined
with a bound first - joining is synchronisation, the bound only turns a leak into a failure
instead of a hang.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from subiso.executors import subinterpreter as si

ROOT = Path(__file__).resolve().parents[1]

# Worker processes (process tier) import "tests.workloads" by path: make the repo importable
# in children the way pytest's ``pythonpath = ["."]`` makes it importable here.
_pp = os.environ.get("PYTHONPATH", "")
if str(ROOT) not in _pp.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), _pp) if p)

IN_PROCESS_TIERS = ("inline", "context", "thread")

THREAD_EXIT_BOUND_S = 10.0

BACKEND = si.backend()
needs_backend = pytest.mark.skipif(not BACKEND, reason=f"no subinterpreters: {BACKEND.reason}")

#: LangGraph on Python 3.10 cannot reach a run's config from code it runs asynchronously
#: (asyncio tasks take no context there): interrupt(), get_stream_writer() and get_config()
#: raise "Called get_config outside of a runnable context" under ainvoke/astream - in plain
#: LangGraph as through subiso, which runs streamed and checkpointed graphs asynchronously.
needs_async_run_context = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="LangGraph needs Python 3.11+ for interrupt()/get_stream_writer() in async runs",
)


def list_all_interpreters() -> list[Any]:
    return list(BACKEND.module.list_all())


def make_interpreter_queue() -> Any:
    """A cross-interpreter queue; its ``id`` crosses as a plain int."""
    if sys.version_info >= (3, 14):
        return BACKEND.module.create_queue()
    from interpreters_backport.interpreters import queues

    return queues.create()


def tier_available(name: str) -> bool:
    """A built-in tier whose module exists in this checkout (process/subinterpreter come later)."""
    from subiso.executors import BUILTIN_TIERS

    path = BUILTIN_TIERS.get(name)
    return path is not None and importlib.util.find_spec(path.partition(":")[0]) is not None


def skip_unless_tier(name: str) -> None:
    if not tier_available(name):
        pytest.skip(f"tier {name!r}: module subiso.executors.{name} does not exist yet")


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def assert_no_new_threads(before: set[threading.Thread], what: str = "the test") -> None:
    """Join threads started since ``before`` (bounded) and fail if any is still alive."""
    for thread in new_threads(before):
        thread.join(THREAD_EXIT_BOUND_S)
    left = new_threads(before)
    assert not left, f"{what} left threads behind: {[(t.name, t.daemon) for t in left]}"


@pytest.fixture
def thread_guard() -> Iterator[set[threading.Thread]]:
    """Fail the test if threads it started outlive it (after its executors are closed)."""
    before = set(threading.enumerate())
    yield before
    assert_no_new_threads(before)


@pytest.fixture
def make_executor(thread_guard: set[threading.Thread]) -> Iterator[Callable[..., Any]]:
    """``make_executor(name, **options)``: a tier by name, closed at teardown (before the
    thread check of ``thread_guard``)."""
    import subiso

    opened: list[Any] = []

    def make(name: str, **options: Any) -> Any:
        skip_unless_tier(name)
        executor = subiso.get_executor(name, **options)
        opened.append(executor)
        return executor

    yield make
    for executor in reversed(opened):
        executor.close()


@pytest.fixture(params=IN_PROCESS_TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    """Each in-process tier by name."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def executor(tier: str, make_executor: Callable[..., Any]) -> Any:
    """An executor of each in-process tier, closed (and checked for leftover threads) after."""
    return make_executor(tier)


@pytest.fixture
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector for the test: a fire-and-forget task referenced only by a
    cycle may otherwise be destroyed while pending, hiding (or faking) what a run left."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- real services for the distributed tests (see tests/services.py) ---------------------------
@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    from tests.services import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from tests.services import postgres_server

    with postgres_server() as url:
        yield url
