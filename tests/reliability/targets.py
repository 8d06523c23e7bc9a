"""Faulty workflow functions for the reliability tests: stdlib only, so they load (and run whole,
"full" mode) inside a subinterpreter as well as in every other tier's worker.

A held run says it started by writing to a FIFO the test reads (``started``) and is released
by the test: an Event in ``tests.contract_workloads.GATES`` for runs in the test's own
interpreter, else a file that appears (what crosses every boundary). Each wait is bounded by
``WAIT_BOUND_S``, so a release that never comes ends the run instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests import contract_workloads as cw

WAIT_BOUND_S = cw.WAIT_BOUND_S


def released(path: str) -> bool:
    """Non-blocking: has the test released ``path`` yet?"""
    gate = cw.GATES.get(path)
    if gate is not None:
        return gate.is_set()
    return os.path.exists(path)


def spin(args: dict[str, Any]) -> Any:
    """A pure-Python busy loop until released: no blocking call, nothing to interrupt."""
    cw._say_started(args.get("started"))
    end = time.monotonic() + WAIT_BOUND_S
    while not released(args["release"]):
        if time.monotonic() > end:
            raise TimeoutError(f"never released: {args['release']}")
    return args.get("value")


async def aspin(args: dict[str, Any]) -> Any:
    """The same busy loop in a coroutine: it never yields, so it holds its event loop."""
    return spin(args)


def sigkill(_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sigstop(_: Any) -> None:
    """Stop the whole process running it (its worker): nothing in it runs until SIGCONT."""
    os.kill(os.getpid(), signal.SIGSTOP)


def os_exit(_: Any) -> None:
    os._exit(3)


def segfault(_: Any) -> None:
    import ctypes

    ctypes.string_at(0)


def echo(value: Any) -> Any:
    return value
