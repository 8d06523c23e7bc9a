"""What ``subiso run`` and ``subiso doctor`` are pointed at, turned into a GraphConfig.

* a GraphConfig file (``.toml``/``.json``/``.yaml``);
* a LangGraph ``langgraph.json`` (``{"graphs": {"name": "./path/file.py:attr"}}``) with
  ``--graph NAME`` (optional when it declares one graph);
* an import path ``pkg.module:attr``;
* a file path ``path/to/file.py:attr``.

A file is imported by module name, never by path: its directory (or the root of the package
it belongs to) goes onto ``sys.path``, so worker processes and subinterpreters, which get the
host's ``sys.path``, import the same module.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from subiso.errors import ConfigError

CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def suggest(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_graph_config(config_or_target: str, graph_name: str | None = None) -> Any:
    """A GraphConfig from a file, a langgraph.json, an import path or ``file.py:attr``."""
    from subiso.config import GraphConfig, read_mapping

    if "\0" in config_or_target:
        raise ConfigError(f"{config_or_target!r}: a NUL byte is in no file name or import path")
    path = Path(config_or_target)
    if path.suffix.lower() in CONFIG_SUFFIXES or path.is_file():
        if path.suffix.lower() == ".json" and path.is_file():
            data = read_mapping(path)
            if "graphs" in data and "graph" not in data:
                return GraphConfig(graph=langgraph_json_target(path, data, graph_name))
        if graph_name is not None:
            raise ConfigError(
                f"--graph {graph_name!r} picks a graph of a langgraph.json; {path} is a "
                "GraphConfig file, whose 'graph' key names the target"
            )
        return GraphConfig.from_file(path)
    if graph_name is not None:
        raise ConfigError(
            f"--graph {graph_name!r} picks a graph of a langgraph.json, but the target is "
            f"{config_or_target!r}"
        )
    if ":" not in config_or_target:
        raise ConfigError(
            f"{config_or_target!r} is neither a GraphConfig file (.toml, .json, .yaml) nor an "
            "import path 'package.module:attribute' (or 'path/to/file.py:attribute')"
        )
    return GraphConfig(graph=resolve_target(config_or_target, Path.cwd()))


def langgraph_json_target(path: Path, data: dict[str, Any], name: str | None) -> str:
    """The import path of graph ``name`` declared in langgraph.json ``data``."""
    graphs = data.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f"{path}: 'graphs' must map graph names to './file.py:attr' paths")
    names = sorted(graphs)
    if name is None:
        if len(names) > 1:
            raise ConfigError(
                f"{path} declares {len(names)} graphs; choose one with --graph NAME: "
                + ", ".join(names)
            )
        name = names[0]
    if name not in graphs:
        raise ConfigError(
            f"{path}: no graph {name!r}{suggest(name, names)}; available: {', '.join(names)}"
        )
    spec = graphs[name]
    if isinstance(spec, dict):  # newer langgraph.json: {"path": ..., "description": ...}
        spec = spec.get("path")
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(
            f"{path}: graph {name!r}: expected './path/to/file.py:attr' or 'pkg.mod:attr', "
            f"got {spec!r}"
        )
    return resolve_target(spec, path.resolve().parent)


def _is_file_spec(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def resolve_target(spec: str, base: Path) -> str:
    """``spec`` as an import path: ``file.py:attr`` (relative to ``base``) becomes
    ``module:attr`` with the module importable; ``pkg.mod:attr`` resolves against ``base``."""
    where, _, attr = spec.rpartition(":")
    if "\0" in spec:
        raise ConfigError(f"{spec!r}: a NUL byte is in no file name or import path")
    if where == "__main__":
        raise ConfigError(
            f"{spec!r}: '__main__' here is the subiso command itself; name the script's file "
            f"instead: 'path/to/script.py:{attr}'"
        )
    if not _is_file_spec(where):
        _add_to_path(base)
        return spec
    file = Path(where)
    if not file.is_absolute():
        file = base / file
    file = file.resolve()
    if not file.is_file():
        raise ConfigError(f"{spec!r}: no such file {file}")
    return f"{module_for_file(file)}:{attr}"


def module_for_file(file: Path) -> str:
    """The module name ``file`` imports as, with its root directory put onto ``sys.path``.

    A file inside packages (directories with ``__init__.py``) imports as ``pkg.sub.mod`` from
    the outermost package's parent, so its relative imports work.
    """
    parts = [] if file.stem == "__init__" else [file.stem]
    root = file.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    bad = [p for p in parts if not p.isidentifier()]
    if bad or not parts:
        raise ConfigError(
            f"{file} cannot be imported as a module: {bad[0] if bad else file.name!r} is not a "
            "Python identifier; rename it (letters, digits, underscores)"
        )
    module = ".".join(parts)
    _add_to_path(root)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None  # a parent package failed to import: import_attr reports it in full
    origin = getattr(spec, "origin", None) if spec is not None else None
    if origin is not None and Path(origin).resolve() != file:
        raise ConfigError(
            f"{file} would import as module {module!r}, but that name is taken by {origin}; "
            "rename the file"
        )
    return module


def _add_to_path(directory: Path) -> None:
    entry = str(directory.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)
