"""What this Python can do: free-threading, the GIL's state, the subinterpreter backend.

Decisions (which tier "auto" picks, whether the subinterpreter tier falls back) are made from
a ``Capabilities`` value, so they can be unit-tested by constructing one for any machine.
"""

from __future__ import annotations

import platform
import sys
import sysconfig

import msgspec


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
    from subiso.executors.subinterpreter import backend

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
