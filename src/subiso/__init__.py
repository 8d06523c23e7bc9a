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
    "ExecutorStats": "subiso.observe.metrics",
    "capabilities": "subiso._capabilities",
    "Capabilities": "subiso._capabilities",
    "offload": "subiso.executors.subinterpreter.offload",
    "SubisoError": "subiso.errors",
    "ConfigError": "subiso.errors",
    "RunTimeout": "subiso.errors",
    "RunAborted": "subiso.errors",
    "WorkerCrashed": "subiso.errors",
    "SerializationError": "subiso.errors",
    "NotIsolatable": "subiso.errors",
    "TierUnavailable": "subiso.errors",
    "ServiceUnreachable": "subiso.errors",
    "ExecutorClosed": "subiso.errors",
    "Executor": "subiso.executors.base",
    "get_executor": "subiso.settings",
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
    from subiso._capabilities import Capabilities as Capabilities
    from subiso._capabilities import capabilities as capabilities
    from subiso.config import GraphConfig as GraphConfig
    from subiso.default import arun as arun
    from subiso.default import run as run
    from subiso.errors import ConfigError as ConfigError
    from subiso.errors import ExecutorClosed as ExecutorClosed
    from subiso.errors import NotIsolatable as NotIsolatable
    from subiso.errors import RunAborted as RunAborted
    from subiso.errors import RunTimeout as RunTimeout
    from subiso.errors import SerializationError as SerializationError
    from subiso.errors import ServiceUnreachable as ServiceUnreachable
    from subiso.errors import SubisoError as SubisoError
    from subiso.errors import TierUnavailable as TierUnavailable
    from subiso.errors import WorkerCrashed as WorkerCrashed
    from subiso.executors.base import Executor as Executor
    from subiso.executors.context import ContextExecutor as ContextExecutor
    from subiso.executors.inline import InlineExecutor as InlineExecutor
    from subiso.executors.process import ProcessExecutor as ProcessExecutor
    from subiso.executors.subinterpreter import SubinterpreterExecutor as SubinterpreterExecutor
    from subiso.executors.subinterpreter.offload import offload as offload
    from subiso.executors.thread import ThreadExecutor as ThreadExecutor
    from subiso.observe.metrics import ExecutorStats as ExecutorStats
    from subiso.report import RunReport as RunReport
    from subiso.report import RunResult as RunResult
    from subiso.runtime.worker_init import worker_state as worker_state
    from subiso.settings import executor_from_options as executor_from_options
    from subiso.settings import get_executor as get_executor
    from subiso.settings import load_executor as load_executor
