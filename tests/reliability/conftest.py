"""Fixtures of the reliability tests: tiers by name, skipped where this Python cannot run them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKEND
from tests.test_contract import Gate

ALL_TIERS = ("inline", "context", "thread", "subinterpreter", "process")
IN_PROCESS = ("inline", "context", "thread", "subinterpreter")


def skip_unless_runs_here(tier: str) -> None:
    """The subinterpreter tier only runs as itself with an interpreters API (3.13+; 3.13 needs
    the interpreters-pep-734 backport); elsewhere it falls back to another tier, tested as such."""
    if tier == "subinterpreter" and not BACKEND:
        pytest.skip(
            f"Python {sys.version_info[0]}.{sys.version_info[1]} has no subinterpreters "
            f"({BACKEND.reason}): the tier falls back to the process/thread tiers tested here"
        )


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Callable[[], Gate]]:
    """Make Gates (a node held until opened); every one is opened at the end, so no test
    leaves a node held."""
    made: list[Gate] = []

    def gate() -> Gate:
        made.append(Gate(tmp_path))
        return made[-1]

    yield gate
    for g in made:
        g.open()
        g.close()
