"""What a run may touch when its GraphConfig comes from elsewhere (a broker, an HTTP request).

A GraphConfig names code to import (``graph``) and places to open (``checkpointer``,
``store``); whoever can write one can make a worker import any module on its path or open any
file or database its user can reach. :func:`check_allowed` checks a config against the settings
keys ``allowed_graphs`` and ``allowed_locations`` - lists of ``fnmatch`` patterns, e.g.
``["myapp.graphs:*"]`` and ``["postgresql://*", "sqlite:///var/lib/myapp/*"]`` - *before*
anything is imported or opened. ``"memory"`` is always allowed (it opens nothing).

Patterns are matched case-sensitively (``fnmatch.fnmatchcase``); ``*`` also matches ``.`` and
``/``, so ``"myapp.graphs:*"`` allows every attribute of that module and ``"myapp.*"`` every
module under ``myapp``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from subiso.errors import ConfigError

ALWAYS_ALLOWED_LOCATIONS = ("memory",)


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def _field(cfg: Any, name: str) -> Any:
    return cfg.get(name) if isinstance(cfg, Mapping) else getattr(cfg, name, None)


def check_allowed(
    cfg: Any,
    allowed_graphs: Iterable[str] | None,
    allowed_locations: Iterable[str] | None,
    *,
    where: str = "settings",
) -> None:
    """Raise ``ConfigError`` unless ``cfg`` (a GraphConfig or a plain dict, checked before it is
    even converted) names an allowed graph and only allowed checkpointer/store locations.

    ``allowed_graphs=None`` (not configured) rejects every graph: a trust boundary must be
    opened explicitly. ``allowed_locations=None`` allows only ``"memory"``.
    """
    graphs = list(allowed_graphs or ())
    locations = list(allowed_locations or ())
    graph = _field(cfg, "graph")
    if not graphs:
        raise ConfigError(
            f"graph {graph!r} refused: allowed_graphs is not set in the {where}; list the "
            'targets this worker may run, e.g. allowed_graphs = ["myapp.graphs:*"]'
        )
    if not isinstance(graph, str) or not _matches(graph, graphs):
        raise ConfigError(
            f"graph {graph!r} refused: it matches none of allowed_graphs={graphs!r} "
            f"(in the {where})"
        )
    for name in ("checkpointer", "store"):
        spec = _field(cfg, name)
        if spec is not None:
            check_location(name, spec, locations, where)


def check_location(
    name: str, spec: Any, allowed_locations: Iterable[str] | None, where: str = "settings"
) -> None:
    """Raise ``ConfigError`` unless ``spec`` (a checkpointer, store or database location,
    called ``name`` in the message) matches ``allowed_locations`` or is ``"memory"``."""
    locations = list(allowed_locations or ())
    if spec in ALWAYS_ALLOWED_LOCATIONS:
        return
    if not isinstance(spec, str) or not _matches(spec, locations):
        raise ConfigError(
            f"{name} {_shown(spec)!r} refused: it matches none of "
            f"allowed_locations={locations!r} (in the {where}); 'memory' is always allowed"
        )


def _shown(spec: Any) -> Any:
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        from subiso.runtime.postgres import redact

        return redact(spec)
    return spec
