"""Resolve ``"pkg.module:attr"`` into something runnable, once per worker.

A target is one of: a compiled LangGraph graph (has ``ainvoke``), an uncompiled ``StateGraph``
builder (compiled here, with the run's checkpointer), a zero-argument factory returning either
(called once per worker), or a plain workflow function ``f(input)`` / ``async f(input)``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from subiso._capabilities import import_watching_gil
from subiso.errors import ConfigError

Kind = Literal["graph", "builder", "function"]


@dataclass(frozen=True)
class Target:
    """A resolved target and the facts dispatch needs about it."""

    path: str
    kind: Kind
    obj: Any
    is_async: bool = False  # functions: a coroutine function
    sync_nodes: bool = False  # graphs/builders: every node has a sync implementation

    @cached_property
    def default_graph(self) -> Any:
        """The graph for runs that name no checkpointer, compiled once per target, not once
        per worker runtime (the context tier makes a runtime per run)."""
        return self.compile(None)

    def compile(self, checkpointer: Any, store: Any = None) -> Any:
        """The compiled graph to invoke, bound to ``checkpointer`` and ``store`` (None keeps
        the graph's own)."""
        if self.kind == "builder":
            return self.obj.compile(checkpointer=checkpointer, store=store)
        pairs = (("checkpointer", checkpointer), ("store", store))
        update = {k: v for k, v in pairs if v is not None}
        return self.obj.copy(update=update) if update else self.obj


def import_attr(path: str) -> Any:
    """Import ``module:attr.sub`` with ConfigError naming what was missing."""
    module_name, _, attr_path = path.partition(":")
    try:
        module = import_watching_gil(module_name, lambda: importlib.import_module(module_name))
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(f"GraphConfig.graph: unknown module {module_name!r} ({exc})") from exc
        raise ConfigError(
            f"GraphConfig.graph: module {module_name!r} failed to import: {exc!r}"
        ) from exc
    except (Exception, SystemExit) as exc:  # a module calling sys.exit() must not end us
        raise ConfigError(
            f"GraphConfig.graph: module {module_name!r} failed to import: {exc!r}"
        ) from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            why = getattr(exc, "why", None)  # a process worker's __main__: why it is not there
            if why:
                raise ConfigError(f"GraphConfig.graph: cannot resolve {path!r}: {why}") from None
            raise ConfigError(
                f"GraphConfig.graph: module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    return obj


def _is_compiled_graph(obj: Any) -> bool:
    return hasattr(obj, "ainvoke") and hasattr(obj, "invoke") and hasattr(obj, "nodes")


def _is_builder(obj: Any) -> bool:
    return hasattr(obj, "compile") and hasattr(obj, "add_node") and hasattr(obj, "nodes")


def _nodes_are_sync(runnables: Any) -> bool:
    """True when every node has a sync implementation, so ``invoke`` can run it.

    LangGraph wraps each node in a RunnableCallable whose ``func`` is None for async-only
    nodes. Anything else (a subgraph, a custom Runnable) counts as async-only, which is safe:
    ``ainvoke`` runs sync nodes too.
    """
    for runnable in runnables:
        if getattr(runnable, "func", None) is None or type(runnable).__name__ != "RunnableCallable":
            return False
    return True


def _positional_arity(fn: Any) -> int | None:
    """Number of required positional parameters, or None when it takes ``*args``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    required = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            required += 1
    return required


def is_workflow_function(obj: Any) -> bool:
    """A plain ``f(input)``: not a graph, a builder or a zero-argument factory."""
    if _is_compiled_graph(obj) or _is_builder(obj) or not callable(obj):
        return False
    return _positional_arity(obj) in (1, None)


def classify(path: str, obj: Any, *, from_factory: bool = False) -> Target:
    if _is_compiled_graph(obj):
        nodes = (getattr(node, "bound", None) for node in obj.nodes.values())
        return Target(path, "graph", obj, sync_nodes=_nodes_are_sync(nodes))
    if _is_builder(obj):
        # read the builder's node specs: no throwaway compile (each worker compiles once)
        nodes = (getattr(spec, "runnable", None) for spec in obj.nodes.values())
        return Target(path, "builder", obj, sync_nodes=_nodes_are_sync(nodes))
    where = f"factory {path!r} returned" if from_factory else f"{path!r} is"
    if not from_factory and callable(obj):
        arity = _positional_arity(obj)
        if arity == 0:
            try:
                made = obj()
            except (Exception, SystemExit) as exc:  # a factory calling sys.exit() must not end us
                raise ConfigError(
                    f"GraphConfig.graph: factory {path!r} raised {type(exc).__name__}: {exc}"
                ) from exc
            return classify(path, made, from_factory=True)
        if arity in (1, None):
            return Target(path, "function", obj, is_async=inspect.iscoroutinefunction(obj))
        raise ConfigError(
            f"GraphConfig.graph: {where} a callable taking {arity} required arguments; expected "
            "a workflow function f(input) or a zero-argument graph factory"
        )
    raise ConfigError(
        f"GraphConfig.graph: {where} a {type(obj).__name__}; expected a compiled graph, a "
        "StateGraph builder, a zero-argument factory or a workflow function f(input)"
    )


class TargetCache:
    """Resolved targets by import path (or by identity, for a graph object passed in-process);
    one per worker, so modules import once per worker."""

    def __init__(self) -> None:
        self._targets: dict[Any, Target] = {}
        #: Called after an import path was imported and cached (a process worker freezes what
        #: the import loaded: see ``worker_main``).
        self.after_import: Callable[[], None] | None = None

    def get(self, graph: Any) -> Target:
        key = graph if isinstance(graph, str) else id(graph)
        target = self._targets.get(key)
        if target is not None and (isinstance(graph, str) or target.obj is graph):
            return target
        if isinstance(graph, str):
            target = self._targets[key] = classify(graph, import_attr(graph))
            if self.after_import is not None:
                self.after_import()
        else:  # the Target keeps the object alive, so its id stays its own
            target = self._targets[key] = classify(
                f"<{type(graph).__name__} {id(graph):#x}>", graph
            )
        return target
