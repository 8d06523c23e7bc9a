"""Executor tiers by name, and ``get_executor``.

Built-in tiers are imported lazily (a process or subinterpreter tier costs nothing until it is
asked for); third-party tiers register through the ``subiso.executors`` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import Any

from subiso.errors import ConfigError

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


def tier_class(name: str) -> type[Any]:
    """The executor class registered as ``name`` (built-in or plugin)."""
    path = BUILTIN_TIERS.get(name)
    if path is not None:
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    from subiso.plugins import plugin_tiers

    plugins = plugin_tiers()
    if name in plugins:
        return plugins[name].load()  # type: ignore[no-any-return]
    choices = ", ".join(sorted({*BUILTIN_TIERS, *plugins}))
    raise ConfigError(f"unknown executor {name!r}; choose one of: {choices}")


def get_executor(name: str = "thread", **options: Any) -> Any:
    """An executor of tier ``name`` with keyword ``options`` (``max_workers``, ``timeout``, ...)."""
    cls = tier_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"executor {name!r}: bad option: {exc}") from None
