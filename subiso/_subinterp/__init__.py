"""Host side of the subinterpreter tier: backend detection, isolation probes, interpreter pool.

Layers, lowest first, one module each (each imports only the ones before it):

* :mod:`subiso._subinterp.backends`: which interpreters API this Python offers, if any.
* :mod:`subiso._subinterp.probes`: whether a module imports in an isolated subinterpreter.
* :mod:`subiso._subinterp.offload_plans`: how one function reaches an interpreter.
* :mod:`subiso._subinterp.pool`: :class:`InterpreterPool`, which keeps interpreters warm.

This package re-exports the names the rest of subiso imports from it.
"""

from __future__ import annotations

from subiso._subinterp.backends import Backend, backend
from subiso._subinterp.offload_plans import OffloadPlan, resolve_offload
from subiso._subinterp.pool import CallSpec, InterpreterFuture, InterpreterPool
from subiso._subinterp.probes import probe_module, probe_msgspec

__all__ = [
    "Backend",
    "CallSpec",
    "InterpreterFuture",
    "InterpreterPool",
    "OffloadPlan",
    "backend",
    "probe_module",
    "probe_msgspec",
    "resolve_offload",
]
