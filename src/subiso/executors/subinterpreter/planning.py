"""The subinterpreter tier's decisions, as pure rules: which mode a target runs in and why,
which tiers may stand in for it. One source for the executor and ``subiso doctor``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from subiso.errors import ConfigError
from subiso.executors.subinterpreter.offload import offloaded_functions
from subiso.executors.subinterpreter.offload_plans import resolve_offload
from subiso.report import Mode
from subiso.runtime.targets import is_workflow_function
from subiso.validate import names


def fallback_names(fallback: Iterable[str]) -> tuple[str, ...]:
    """Validated fallback tier names (unknown ones are a ConfigError, not a silent skip)."""
    from subiso.executors import BUILTIN_TIERS, NOT_FALLBACKS

    tiers = names(fallback, "SubinterpreterExecutor: fallback", "tier names ['process', 'thread']")
    for name in tiers:
        if name in NOT_FALLBACKS:
            raise ConfigError(f"SubinterpreterExecutor: fallback: {name!r} cannot be a fallback")
        if name not in BUILTIN_TIERS:
            from subiso.plugins import plugin_tiers

            if name not in plugin_tiers():
                valid = ", ".join(t for t in BUILTIN_TIERS if t not in NOT_FALLBACKS)
                raise ConfigError(
                    f"SubinterpreterExecutor: fallback: unknown tier {name!r}; choose from: {valid}"
                )
    return tuple(tiers)


def target_mode(graph: str, obj: Any, verdict: Any) -> tuple[Mode, str]:
    """The mode ``graph`` (resolved to ``obj``, its module probed to ``verdict``) runs in, and
    why: full only for a workflow function whose module loads in a subinterpreter. The one
    rule, shared by the executor and ``subiso doctor``."""
    if verdict.ok and is_workflow_function(obj):
        return "full", f"{graph} imports in an isolated subinterpreter: it runs whole there"
    return "hybrid", hybrid_reason(graph, obj, verdict)


def hybrid_reason(graph: str, obj: Any, verdict: Any) -> str:
    """Why ``graph`` runs hybrid: the module that blocked it, else what kind of object it is."""
    module = graph.partition(":")[0]
    if not verdict.ok:
        blocker = verdict.blocked_by or verdict.reason
        return f"{module} cannot load in a subinterpreter: blocked by {blocker}"
    return (
        f"{graph} is a {type(obj).__name__}, not a workflow function f(input); only functions "
        "run whole inside an interpreter"
    )


def prewarm_offloads(obj: Any, module_name: str) -> None:
    """Decide, in the background and while the target itself is probed, how the ``@offload``
    functions of its graph nodes and module reach an interpreter, so the first offloaded call
    does not wait for their modules' probes."""
    for fn in offloaded_functions(obj, sys.modules.get(module_name)):
        try:
            resolve_offload(fn)
        except Exception:  # NotIsolatable is cached; the call itself reports it
            pass
