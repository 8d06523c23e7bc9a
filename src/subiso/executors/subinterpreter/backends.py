"""Backend detection for the subinterpreter tier.

:func:`backend` names the interpreters API this Python offers (3.14 stdlib, 3.13 backport)
or says why there is none. The 3.13 backport segfaults on 3.12, so it is never imported there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Backend:
    """Which interpreters API is available: ``name`` is None when none is, ``reason`` says why."""

    name: Literal["concurrent.interpreters", "interpreters_backport"] | None
    reason: str
    module: Any = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.name is not None


_backend: Backend | None = None


def backend() -> Backend:
    """The interpreters API of this Python, detected once.

    3.14: stdlib ``concurrent.interpreters``. 3.13: the ``interpreters-pep-734`` backport
    (``interpreters_backport``). 3.10-3.12: none (the backport segfaults on 3.12).
    """
    global _backend
    if _backend is None:
        _backend = _detect_backend()
    return _backend


def _detect_backend() -> Backend:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if sys.version_info < (3, 13):
        return Backend(None, f"Python {version} has no own-GIL subinterpreter API (needs 3.13+)")
    if sys.version_info >= (3, 14):
        try:
            from concurrent import interpreters
        except ImportError as exc:
            return Backend(None, f"concurrent.interpreters missing on Python {version}: {exc}")
        return Backend("concurrent.interpreters", "stdlib", interpreters)
    try:
        from interpreters_backport import interpreters as backport
    except ImportError:
        return Backend(
            None, "Python 3.13 needs the 'interpreters-pep-734' package for subinterpreters"
        )
    return Backend("interpreters_backport", "interpreters-pep-734 backport", backport)


def _require_backend() -> Any:
    found = backend()
    if not found:
        from subiso.errors import TierUnavailable

        raise TierUnavailable(found.reason)
    return found.module
