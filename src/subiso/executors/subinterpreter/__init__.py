"""The subinterpreter tier, one module per job; host side unless named otherwise.

* :mod:`.executor` - :class:`SubinterpreterExecutor`: full, hybrid and fallback mode.
* which interpreters API this Python offers, if any: ``subiso._capabilities.backend``.
* :mod:`.probes` - whether a module imports in an isolated subinterpreter (cached).
* :mod:`.offload_plans` - how one ``@offload`` function reaches an interpreter.
* :mod:`.pool` - :class:`InterpreterPool`, which keeps own-GIL interpreters warm.
* :mod:`.routing` - hybrid mode's route: hands ``@offload`` calls to the pool.
* :mod:`.offload` - the ``@subiso.offload`` decorator (stdlib only: node modules import it
  inside interpreters too).
* :mod:`.interp_side` - **runs inside every pool interpreter** (stdlib only).

Names are exported lazily (PEP 562): code inside an interpreter imports ``.offload`` and
``.interp_side`` through this package, and must not pull in msgspec or langgraph, which refuse
to load there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "SubinterpreterExecutor": "executor",
    "DEFAULT_FALLBACK": "executor",
    "target_mode": "planning",
    "Backend": "subiso._capabilities",
    "backend": "subiso._capabilities",
    "probe_module": "probes",
    "probe_msgspec": "probes",
    "OffloadPlan": "offload_plans",
    "resolve_offload": "offload_plans",
    "CallSpec": "pool",
    "InterpreterFuture": "pool",
    "InterpreterPool": "pool",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if module.startswith("subiso.") else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover - "x as x": re-exported for type checkers
    from subiso._capabilities import Backend as Backend
    from subiso._capabilities import backend as backend
    from subiso.executors.subinterpreter.executor import DEFAULT_FALLBACK as DEFAULT_FALLBACK
    from subiso.executors.subinterpreter.executor import (
        SubinterpreterExecutor as SubinterpreterExecutor,
    )
    from subiso.executors.subinterpreter.offload_plans import OffloadPlan as OffloadPlan
    from subiso.executors.subinterpreter.offload_plans import resolve_offload as resolve_offload
    from subiso.executors.subinterpreter.planning import target_mode as target_mode
    from subiso.executors.subinterpreter.pool import CallSpec as CallSpec
    from subiso.executors.subinterpreter.pool import InterpreterFuture as InterpreterFuture
    from subiso.executors.subinterpreter.pool import InterpreterPool as InterpreterPool
    from subiso.executors.subinterpreter.probes import probe_module as probe_module
    from subiso.executors.subinterpreter.probes import probe_msgspec as probe_msgspec
