"""subiso: run LangGraph workflows and plain Python workflows in a chosen isolation tier.

Every public name is resolved lazily (PEP 562). Code that runs inside an own-GIL
subinterpreter imports ``subiso.offload`` and ``subiso.executors.subinterpreter.interp_side``; those must not
pull in msgspec or langgraph, which refuse to load there, so this module imports nothing
eagerly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "GraphConfig": "subiso.config",
    "RunReport": "subiso.report",
    "RunResult": "subiso.report",
    "capabilities": "subiso._capabilities",
    "Capabilities": "subiso._capabilities",
    "offload": "subiso.executors.subinterpreter.offload",
    "SubisoError": "subiso.errors",
    "ConfigError": "subiso.errors",
    "RunTimeout": "subiso.errors",
    "WorkerCrashed": "subiso.errors",
    "SerializationError": "subiso.errors",
    "NotIsolatable": "subiso.errors",
    "TierUnavailable": "subiso.errors",
    "ExecutorClosed": "subiso.errors",
    "Executor": "subiso.executors.base",
    "get_executor": "subiso.executors",
    "InlineExecutor": "subiso.executors.inline",
    "ContextExecutor": "subiso.executors.context",
    "ThreadExecutor": "subiso.executors.thread",
    "ProcessExecutor": "subiso.executors.process",
    "SubinterpreterExecutor": "subiso.executors.subinterpreter",
    "load_executor": "subiso.settings",
    "executor_from_options": "subiso.settings",
    "run": "subiso.default",
    "worker_state": "subiso.runtime.worker_init",
    "arun": "subiso.default",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'subiso' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - static names for type checkers and IDEs
    from subiso._capabilities import Capabilities, capabilities
    from subiso.config import GraphConfig
    from subiso.default import arun, run
    from subiso.errors import (
        ConfigError,
        ExecutorClosed,
        NotIsolatable,
        RunTimeout,
        SerializationError,
        SubisoError,
        TierUnavailable,
        WorkerCrashed,
    )
    from subiso.executors import get_executor
    from subiso.executors.base import Executor
    from subiso.executors.context import ContextExecutor
    from subiso.executors.inline import InlineExecutor
    from subiso.executors.process import ProcessExecutor
    from subiso.executors.subinterpreter import SubinterpreterExecutor
    from subiso.executors.subinterpreter.offload import offload
    from subiso.executors.thread import ThreadExecutor
    from subiso.report import RunReport, RunResult
    from subiso.runtime.worker_init import worker_state
    from subiso.settings import executor_from_options, load_executor
