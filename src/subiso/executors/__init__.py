"""Executor tiers by name: the registry (``subiso.get_executor`` builds one, in
:mod:`subiso.settings`, which checks its options as a settings file's).

Built-in tiers are imported lazily (a process or subinterpreter tier costs nothing until it is
asked for); third-party tiers register through the ``subiso.executors`` entry-point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from subiso.errors import ConfigError

if TYPE_CHECKING:
    from subiso.executors.base import Executor

BUILTIN_TIERS: dict[str, str] = {
    "inline": "subiso.executors.inline:InlineExecutor",
    "context": "subiso.executors.context:ContextExecutor",
    "thread": "subiso.executors.thread:ThreadExecutor",
    "subinterpreter": "subiso.executors.subinterpreter:SubinterpreterExecutor",
    "process": "subiso.executors.process:ProcessExecutor",
    # not a tier of its own: a factory returning the tier it picks (see subiso.auto)
    "auto": "subiso.auto:auto_executor",
}

#: Tiers a SubinterpreterExecutor cannot fall back to: itself, and "auto" (which may pick it).
#: One set, checked by the constructor and by settings files alike.
NOT_FALLBACKS = frozenset({"subinterpreter", "auto"})


def tier_class(name: str) -> Callable[..., Executor]:
    """The executor class registered as ``name`` (built-in or plugin; "auto" is a factory)."""
    factory: Callable[..., Executor]
    path = BUILTIN_TIERS.get(name)
    if path is not None:
        module, _, attr = path.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory
    from subiso.plugins import plugin_tiers

    plugins = plugin_tiers()
    if name in plugins:
        factory = plugins[name].load()
        return factory
    choices = ", ".join(sorted({*BUILTIN_TIERS, *plugins}))
    raise ConfigError(f"unknown executor {name!r}; choose one of: {choices}")
