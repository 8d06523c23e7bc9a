"""Offload plans: how one function reaches an interpreter.

:func:`resolve_offload` decides once per function how it reaches an interpreter: by import
of its module, by shipping its code object (self-contained functions), or not at all
(:class:`~subiso.errors.NotIsolatable`).
"""

from __future__ import annotations

import dis
import itertools
import marshal
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from subiso.errors import NotIsolatable
from subiso.executors.subinterpreter import interp_side
from subiso.executors.subinterpreter.probes import probe_module


@dataclass(frozen=True)
class OffloadPlan:
    """How one function reaches an interpreter, decided once by :func:`resolve_offload`.

    ``kind == "import"``: the interpreter imports ``ref`` (``module:qualname``).
    ``kind == "ship"``: its code object travels (``key`` names it inside each interpreter);
    ``reason`` says why its module could not be imported there.
    """

    kind: Literal["import", "ship"]
    ref: str
    key: int = 0
    code: types.CodeType | None = field(default=None, repr=False)
    spec: tuple[Any, ...] = field(default=(), repr=False)
    reason: str = ""


_plans: dict[Any, OffloadPlan | NotIsolatable] = {}
_plan_keys = itertools.count(1)
_plan_lock = threading.Lock()
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def resolve_offload(fn: Callable[..., Any]) -> OffloadPlan:
    """Decide (once per function, cached) how ``fn`` runs in an interpreter.

    In order: import its module there when that module loads (probed); else ship its code when
    it is self-contained (no closure; globals only builtins, isolatable modules, itself); else
    raise :class:`NotIsolatable` naming the blocking module and the offending global.
    """
    cached = _plans.get(fn)
    if cached is None:
        with _plan_lock:
            cached = _plans.get(fn)
            if cached is None:
                try:
                    cached = _make_plan(fn)
                except NotIsolatable as exc:
                    cached = exc
                _plans[fn] = cached
    if isinstance(cached, NotIsolatable):
        raise NotIsolatable(str(cached))
    return cached


def _make_plan(fn: Callable[..., Any]) -> OffloadPlan:
    inner = interp_side.unwrap_offload(fn)
    module = getattr(inner, "__module__", None) or "__main__"
    qualname = getattr(inner, "__qualname__", repr(inner))
    ref = f"{module}:{qualname}"
    blocked = _import_blocker(inner, module, qualname)
    if blocked is None:
        return OffloadPlan("import", ref)
    problem = _self_contained_problem(inner)
    if problem is not None:
        raise NotIsolatable(
            f"{module}.{qualname} cannot run in a subinterpreter: {blocked}, and it cannot be "
            f"shipped on its own because {problem}. Move it to a module that imports only "
            "isolatable modules, or make it self-contained."
        )
    # no problem found: ``inner`` is a plain function (checked by _self_contained_problem)
    code, spec = _ship_parts(cast(types.FunctionType, inner))
    return OffloadPlan("ship", ref, next(_plan_keys), code, spec, blocked)


def _import_blocker(inner: Any, module: str, qualname: str) -> str | None:
    """Why ``inner`` cannot be imported by name inside an interpreter (None: it can)."""
    if module == "__main__":
        return "it is defined in __main__, which interpreters cannot import"
    if "<locals>" in qualname:
        return "it is a nested function, not reachable by import"
    verdict = probe_module(module)
    if not verdict.ok:
        return f"its module {module} does not load in a subinterpreter{verdict.why_not()}"
    return None


def _global_names(code: types.CodeType) -> list[tuple[str, str]]:
    """``(opname, name)`` of every global access in ``code`` and its nested code objects."""
    found = [(ins.opname, ins.argval) for ins in dis.get_instructions(code)]
    names = [(op, name) for op, name in found if op in _GLOBAL_OPS]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return names


def _self_contained_problem(inner: Any) -> str | None:
    """What keeps ``inner`` from travelling as a code object, or None when nothing does."""
    if not isinstance(inner, types.FunctionType):
        return f"{type(inner).__qualname__} is not a plain function"
    code = inner.__code__
    if code.co_freevars:
        return f"it closes over {', '.join(code.co_freevars)}"
    for opname, name in _global_names(code):
        if opname != "LOAD_GLOBAL" and opname != "LOAD_NAME":
            return f"it assigns the global {name!r}"
        problem = _global_problem(inner, name)
        if problem is not None:
            return problem
    for label, value in (("defaults", inner.__defaults__), ("kwdefaults", inner.__kwdefaults__)):
        try:
            marshal.dumps(value)
        except ValueError:
            return f"its {label} {value!r} are not plain data"
    return None


def _global_problem(inner: types.FunctionType, name: str) -> str | None:
    namespace = inner.__globals__
    if name not in namespace:
        return None if hasattr(_builtins(), name) else f"it uses the undefined global {name!r}"
    value = namespace[name]
    if value is inner or interp_side.unwrap_offload(value) is inner:
        return None
    if isinstance(value, types.ModuleType):
        verdict = probe_module(value.__name__)
        if verdict.ok:
            return None
        return f"it uses the global module {name!r} ({value.__name__}), which does not load there"
    return f"it uses the global {name!r} ({type(value).__qualname__})"


def _builtins() -> types.ModuleType:
    import builtins

    return builtins


def _ship_parts(inner: types.FunctionType) -> tuple[types.CodeType, tuple[Any, ...]]:
    imports: dict[str, str] = {}
    self_names: list[str] = []
    for _, name in _global_names(inner.__code__):
        value = inner.__globals__.get(name, None)
        if isinstance(value, types.ModuleType):
            imports[name] = value.__name__
        elif name in inner.__globals__:
            self_names.append(name)
    spec = (
        inner.__name__,
        inner.__qualname__,
        inner.__module__,
        inner.__defaults__,
        inner.__kwdefaults__,
        imports,
        tuple(self_names),
    )
    return inner.__code__, spec
