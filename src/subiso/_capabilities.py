"""What this Python can do: free-threading, the GIL's state, the subinterpreter backend.

:func:`backend` names the interpreters API this Python offers (3.14 stdlib, 3.13 backport) or
says why there is none; the 3.13 backport segfaults on 3.12, so it is never imported there.

Decisions (which tier "auto" picks, whether the subinterpreter tier falls back) are made from
a ``Capabilities`` value, so they can be unit-tested by constructing one for any machine.

**The GIL can come back.** On a free-threaded build, importing an extension module that does
not declare free-threading support re-enables the GIL for the whole process (CPython warns
once). LangGraph's import chain does (orjson and zstandard, through langsmith, have no
free-threaded wheels), so "auto" choosing the thread tier for a GIL-free interpreter can be
undone by the very first graph it imports. Target imports go through
:func:`import_watching_gil`, which notes an import that re-enabled it; runs of an "auto"
executor then say so in ``RunReport.reason`` (:func:`gil_note`), and ``subiso info`` /
``subiso doctor`` check it (:func:`gil_after_import`).
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T")
log = logging.getLogger("subiso.auto")


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the running interpreter's concurrency features."""

    python: str
    implementation: str
    free_threaded: bool
    gil_enabled: bool
    subinterpreters: str | None
    subinterpreters_reason: str | None = None

    @property
    def parallel_threads(self) -> bool:
        """Threads run Python in parallel: a free-threaded build with the GIL actually off."""
        return self.free_threaded and not self.gil_enabled


def is_free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """The GIL's state now (a free-threaded build re-enables it for incompatible extensions)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def capabilities() -> Capabilities:
    """Describe this interpreter (cheap; the subinterpreter backend is detected once)."""
    found = backend()
    available = bool(
        found.name
    )  # subiso.executors.subinterpreter.Backend: name is None when unavailable
    return Capabilities(
        python=platform.python_version(),
        implementation=sys.implementation.name,
        free_threaded=is_free_threaded_build(),
        gil_enabled=gil_enabled(),
        subinterpreters=found.name if available else None,
        subinterpreters_reason=None if available else found.reason,
    )


# -- the subinterpreter backend ------------------------------------------------------------------
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


def require_backend() -> Any:
    """The interpreters API module, or TierUnavailable saying why there is none."""
    found = backend()
    if not found:
        from subiso.errors import TierUnavailable

        raise TierUnavailable(found.reason)
    return found.module


_GIL_REENABLED_BY: list[str] = []


def import_watching_gil(module: str, load: Callable[[], T]) -> T:
    """``load()`` (an import of ``module``), noting it if it re-enabled the GIL."""
    if not is_free_threaded_build():
        return load()
    before = gil_enabled()
    try:
        return load()
    finally:
        if not before and gil_enabled() and module not in _GIL_REENABLED_BY:
            _GIL_REENABLED_BY.append(module)
            log.warning(
                "importing %s re-enabled the GIL on this free-threaded build (an extension "
                "module without free-threading support, e.g. orjson or zstandard); threads "
                "no longer run Python in parallel in this process",
                module,
            )


def gil_reenabled_by() -> tuple[str, ...]:
    """Target modules whose import re-enabled the GIL in this process (free-threaded builds)."""
    return tuple(_GIL_REENABLED_BY)


def gil_note() -> str | None:
    """A sentence for reports when an import re-enabled the GIL here, else None."""
    if not _GIL_REENABLED_BY:
        return None
    return (
        f"the GIL was re-enabled at run time by importing {', '.join(_GIL_REENABLED_BY)} (an "
        "extension module without free-threading support, such as orjson or zstandard from "
        "LangGraph's import chain): threads no longer run Python in parallel in this process; "
        "the process or subinterpreter tier does"
    )


def gil_after_import(module: str, timeout: float = 60.0) -> bool | None:
    """Whether importing ``module`` in a fresh interpreter of this Python leaves the GIL
    enabled (None: not a free-threaded build, or the probe failed). A subprocess, so this
    process's GIL is untouched."""
    if not is_free_threaded_build():
        return None
    code = f"import sys, {module}; print(sys._is_gil_enabled())"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return None if not answer else answer[0] == "True"
