"""One validator per kind of value, shared by GraphConfig, every tier's constructor and the
settings file, so the same mistake gets the same ``ConfigError`` wherever it is made.

Each takes the value and ``field``, the name the message starts with (``"GraphConfig.timeout"``,
``"ProcessExecutor: kill_grace"``, ``"subiso.toml: key 'timeout'"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from subiso.errors import ConfigError

#: The longest timeout accepted (one year): past it, deadlines overflow timer arithmetic.
MAX_SECONDS = 365 * 24 * 3600.0


def positive_int(value: Any, field: str, default: int | None = None) -> int:
    """``value`` (``default`` when it is None) when it is an int >= 1 (bools refused)."""
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be >= 1 (an integer > 0), got {value!r}")
    return value


def seconds(value: Any, field: str) -> float | None:
    """A duration in seconds: None, or a finite number > 0 and at most a year."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not number > 0 or not math.isfinite(number) or number > MAX_SECONDS:
        raise ConfigError(
            f"{field} must be > 0 seconds and at most {MAX_SECONDS:.0f} (one year), got {value!r}"
        )
    return number


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def import_path(value: Any, field: str) -> str:
    """``"package.module:attribute"``."""
    if not isinstance(value, str) or not _IMPORT_PATH.match(value):
        raise ConfigError(
            f"{field}: {value!r} is not an import path of the form 'package.module:attribute'"
        )
    return value


def glob_patterns(value: Any, field: str) -> list[str] | None:
    """None, or a list of ``fnmatch`` patterns (a bare string is refused: it would be iterated
    character by character)."""
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{field} must be a list of glob patterns, got {value!r}")
    return list(value)


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
        f"{field}: unknown {what} {spec!r}; use 'memory', 'sqlite:///path/to/file.db' or "
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
}
