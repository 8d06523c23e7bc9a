"""One validator per kind of value, shared by GraphConfig, every tier's constructor and the
settings file, so the same mistake gets the same ``ConfigError`` wherever it is made.

Each takes the value and ``field``, the name the message starts with (``"GraphConfig.timeout"``,
``"ProcessExecutor: kill_grace"``, ``"subiso.toml: key 'timeout'"``).
"""

from __future__ import annotations

import gc
import itertools
import math
import re
import reprlib
from collections.abc import Callable, Iterator
from itertools import compress
from typing import Any

from subiso.errors import ConfigError

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, short and never failing: nesting past 3 levels,
    long strings and huge numbers are elided (a 10,000-deep list or a 10**5000 int would
    raise RecursionError or ValueError from ``repr`` itself)."""
    try:
        return _REPR.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


#: The longest timeout accepted (one year): past it, deadlines overflow timer arithmetic.
MAX_SECONDS = 365 * 24 * 3600.0


def positive_int(value: Any, field: str, default: int | None = None) -> int:
    """``value`` (``default`` when it is None) when it is an int >= 1 (bools refused)."""
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be >= 1 (an integer > 0), got {shown(value)}")
    return value


def seconds(value: Any, field: str) -> float | None:
    """A duration in seconds: None, or a finite number > 0 and at most a year."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field} must be a number of seconds, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not number > 0 or not math.isfinite(number) or number > MAX_SECONDS:
        raise ConfigError(
            f"{field} must be > 0 seconds and at most {MAX_SECONDS:.0f} (one year), got {shown(value)}"
        )
    return number


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def import_path(value: Any, field: str) -> str:
    """``"package.module:attribute"``."""
    if not isinstance(value, str) or not _IMPORT_PATH.fullmatch(value):
        raise ConfigError(
            f"{field}: {shown(value)} is not an import path of the form 'package.module:attribute'"
        )
    return value


def glob_patterns(value: Any, field: str) -> list[str] | None:
    """None, or a list (or tuple) of ``fnmatch`` patterns (a bare string is refused: it would
    be iterated character by character)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{field} must be a list of glob patterns (strings), got {shown(value)}")
    return list(value)


def names(value: Any, field: str, what: str) -> list[str]:
    """A list (or tuple) of strings; one string is a list of one."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{field} must be a list of {what}, got {shown(value)}")


def flag(value: Any, field: str) -> bool:
    """True or False (not a truthy number or string)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{field} must be true or false, got {shown(value)}")
    return value


#: How deeply a GraphConfig's input, resume value, context and config may nest (a container in
#: a container...). Every tier can carry this much: the process tier's codec stops at about
#: 1000 levels and Python's recursion limit is 1000 frames, so LangGraph still has room for
#: its own recursive handling of the state. Deeper input is refused up front, with a
#: ConfigError naming the field, instead of a RecursionError from wherever it first recursed.
MAX_NESTING = 500

_CONTAINERS = (dict, list, tuple, set, frozenset)


class _ContainerTypes(dict[type, bool]):
    """type -> whether :func:`nesting` descends into its instances (a Python call per new type,
    a C dict lookup from then on)."""

    def __missing__(self, cls: type) -> bool:
        self[cls] = found = issubclass(cls, _CONTAINERS)
        return found


_IS_CONTAINER = _ContainerTypes()


def nesting(value: Any, field: str, limit: int = MAX_NESTING) -> None:
    """Refuse a value whose containers (dict, list, tuple, set) nest deeper than ``limit``
    levels, or contain themselves.

    Measured a level at a time with no Python code per item: ``gc.get_referents`` lists what
    the containers of one level hold, C iterators keep the containers among them (by a cached
    lookup of their types) and drop repeats (a container held twice is measured once per
    level). So it costs a few C passes over the state, not a Python walk, and can neither
    recurse, loop nor blow up. A value that goes past ``limit`` levels this way is walked
    again exactly (:func:`_fault`) to name what is wrong: a cycle, or the depth.
    """
    is_container = _IS_CONTAINER.__getitem__
    if not is_container(type(value)):
        return
    level = [value]
    for _ in range(limit):
        held = gc.get_referents(*level)
        level = list(compress(held, map(is_container, map(type, held))))
        if not level:
            return
        if len(level) > 1:
            level = list(dict(zip(map(id, level), level, strict=True)).values())
    _fault(value, field, limit)


def _items(container: Any) -> Iterator[Any]:
    if isinstance(container, dict):
        return itertools.chain.from_iterable(container.items())
    return iter(container)


def _fault(value: Any, field: str, limit: int) -> None:
    """The exact walk, in Python, for a value :func:`nesting` found past ``limit``: raises the
    ConfigError naming a reference cycle or the depth. Iterative and linear in the number of
    distinct containers (a container met twice is measured once)."""
    heights: dict[int, int] = {}  # id -> levels from that container down (itself is 1)
    path = {id(value)}
    # a frame: [container, the rest of its items, its height so far]; depth = len(stack)
    stack: list[list[Any]] = [[value, _items(value), 1]]
    while stack:
        frame = stack[-1]
        child = None
        for item in frame[1]:
            if not isinstance(item, _CONTAINERS):
                continue
            key = id(item)
            if key in path:
                raise ConfigError(f"{field}: contains itself (a reference cycle)")
            known = heights.get(key)
            if known is None:
                child = item
                break
            if len(stack) + known > limit:
                _too_deep(field, limit)
            frame[2] = max(frame[2], known + 1)
        if child is not None:
            if len(stack) >= limit:
                _too_deep(field, limit)
            stack.append([child, _items(child), 1])
            path.add(id(child))
            continue
        stack.pop()
        heights[id(frame[0])] = frame[2]
        path.discard(id(frame[0]))
        if stack:
            stack[-1][2] = max(stack[-1][2], frame[2] + 1)


def _too_deep(field: str, limit: int) -> None:
    raise ConfigError(
        f"{field}: nested deeper than {limit} levels (lists, dicts, tuples or sets within each "
        "other); flatten it, or pass a reference to the data instead"
    )


POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def is_postgres(spec: str | None) -> bool:
    return spec is not None and spec.startswith(POSTGRES_PREFIXES)


def checkpointer_spec(spec: Any, field: str, *, what: str = "checkpointer") -> str:
    """``"memory"``, ``"sqlite:///path.db"`` or ``"postgresql://user@host:port/db"`` (the same
    forms name a checkpointer and a store)."""
    if isinstance(spec, str) and "\0" not in spec:
        if spec == "memory":
            return spec
        if spec.startswith("sqlite:///") and len(spec) > len("sqlite:///"):
            return spec
        if is_postgres(spec) and len(spec) > len("postgresql://"):
            return spec
    raise ConfigError(
        f"{field}: unknown {what} {shown(spec)}; use 'memory', 'sqlite:///path/to/file.db' or "
        "'postgresql://user@host:port/dbname'"
    )


#: The validator of each option that several tiers take, by name: tier constructors call these,
#: and the settings file checks every tier table with this map (whichever tier is selected).
OPTION_VALIDATORS: dict[str, Callable[[Any, str], Any]] = {
    "timeout": seconds,
    "kill_grace": seconds,
    "max_workers": positive_int,
    "max_tasks_per_worker": positive_int,
    "checkpointer": checkpointer_spec,
    "worker_init": import_path,
    "allowed_graphs": glob_patterns,
    "allowed_locations": glob_patterns,
    "loop_block_threshold": seconds,
}
