"""``@offload``: mark a CPU-bound node function for execution in a subinterpreter.

The decorator itself is inert: the wrapped function runs in place, unchanged, unless the
current context carries an *offload route* (set by SubinterpreterExecutor's hybrid-mode
workers). Then each call is handed to the route, which sends it to the interpreter pool.

This module is imported inside subinterpreters (node modules import it there), so it must
stay free of msgspec, langgraph and anything else that refuses to load in one.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast, overload

F = TypeVar("F", bound=Callable[..., Any])


class OffloadRoute(Protocol):
    """Where offloaded calls go while a hybrid run is active in this context."""

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    async def acall(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


current_route: ContextVar[OffloadRoute | None] = ContextVar("subiso_offload_route", default=None)


@overload
def offload(fn: F, *, strict: bool = ...) -> F: ...


@overload
def offload(fn: None = None, *, strict: bool = ...) -> Callable[[F], F]: ...


def offload(fn: F | None = None, *, strict: bool = True) -> F | Callable[[F], F]:
    """Mark a module-level sync or async function as CPU-bound work to run in a subinterpreter.

    ``strict=False`` lets a function that cannot reach an interpreter run in place (reported)
    instead of failing its first call with ``subiso.NotIsolatable``.
    """

    def decorate(func: F) -> F:
        if getattr(func, "__subiso_offload__", None) is not None:
            return func
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                route = current_route.get()
                if route is None:
                    return await func(*args, **kwargs)
                return await route.acall(async_wrapper, args, kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                route = current_route.get()
                if route is None:
                    return func(*args, **kwargs)
                return route.call(sync_wrapper, args, kwargs)

            wrapper = sync_wrapper
        wrapper.__subiso_offload__ = {"strict": strict}
        # functools.wraps keeps the signature at run time; F keeps it for type checkers.
        return cast(F, wrapper)

    if fn is not None:
        return decorate(fn)
    return decorate


def is_offloaded(func: Callable[..., Any]) -> bool:
    """True when ``func`` was decorated with ``@offload``."""
    return getattr(func, "__subiso_offload__", None) is not None


def node_functions(obj: Any) -> list[Callable[..., Any]]:
    """The sync and async callables behind a compiled graph's or a builder's own nodes
    (duck-typed: compiled nodes keep them on ``.bound``, builder node specs on ``.runnable``;
    LangGraph's reserved ``__start__``/``__end__`` nodes are skipped)."""
    nodes = getattr(obj, "nodes", None)
    found: list[Callable[..., Any]] = []
    for name, node in nodes.items() if isinstance(nodes, dict) else ():
        if str(name).startswith("__"):
            continue
        runnable = getattr(node, "bound", None) or getattr(node, "runnable", None)
        for fn in (getattr(runnable, "func", None), getattr(runnable, "afunc", None)):
            if callable(fn):
                found.append(fn)
    return found


def offloaded_functions(obj: Any, module: Any) -> list[Callable[..., Any]]:
    """``@offload`` functions among ``obj``'s node callables and ``module``'s globals, one per
    qualified name (LangGraph wraps node functions with ``functools.wraps``, which copies the
    mark onto the wrapper)."""
    candidates = node_functions(obj) + (list(vars(module).values()) if module is not None else [])
    found: dict[tuple[str, str], Callable[..., Any]] = {}
    for fn in candidates:
        if isinstance(fn, types.FunctionType) and is_offloaded(fn):
            found.setdefault((fn.__module__, fn.__qualname__), fn)
    return list(found.values())
