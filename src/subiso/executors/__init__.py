"""Executor tiers by name, and ``get_executor``.

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


def get_executor(name: str = "thread", **options: Any) -> Executor:
    """An executor of tier ``name`` with keyword ``options`` (``max_workers``, ``timeout``, ...).

    The options are taken as a settings file's top level takes them: a shared key
    (``max_workers``, ``timeout``, ``checkpointer``, ``fallback``, ``worker_init``,
    ``allowed_graphs``, ``allowed_locations``) goes to the tier if it takes it and is only
    checked if it does not (``get_executor("context", max_workers=4)`` is a context executor),
    so one call serves whichever tier a name picks; any other option must be the tier's own.
    A built-in tier's options are checked first - names and types from its constructor's
    signature, values by the shared validators - so a mistake is a ConfigError naming the
    option, as in a settings file (``subiso.settings.construct``). A tier's constructor, like
    its own settings table, takes only its own options."""
    from subiso.settings import by_name, construct

    cls = tier_class(name)
    source = f"executor {name!r}"
    return construct(name, cls, by_name(name, cls, options, source), source)
