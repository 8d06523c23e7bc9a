"""GraphConfig: what to run, with what input, on which checkpointer, within what time.

Validated by msgspec; every failure becomes ``ConfigError`` naming the field and the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from subiso.errors import ConfigError
from subiso.validate import checkpointer_spec, seconds

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class GraphConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run: ``graph`` is ``"pkg.module:attr"`` naming a compiled graph, a StateGraph builder,
    a zero-argument factory returning either, or a workflow function ``f(input)``.

    ``config`` is LangGraph's RunnableConfig (``configurable.thread_id``, ``recursion_limit``).
    ``checkpointer`` is ``"memory"`` or ``"sqlite:///path.db"``; it is created once per worker
    event loop. ``timeout`` is in seconds.
    """

    graph: str
    input: Any = None
    config: dict[str, Any] = {}
    checkpointer: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not _IMPORT_PATH.match(self.graph):
            raise ConfigError(
                f"GraphConfig.graph: {self.graph!r} is not an import path of the form "
                "'package.module:attribute'"
            )
        if self.checkpointer is not None:
            checkpointer_spec(self.checkpointer, "GraphConfig.checkpointer")
        seconds(self.timeout, "GraphConfig.timeout")

    @property
    def module(self) -> str:
        return self.graph.partition(":")[0]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphConfig:
        """Build from a mapping, as read from JSON/TOML/YAML or written in code."""
        return convert(data, cls, source="GraphConfig")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> GraphConfig:
        """Load a ``.toml``, ``.json``, ``.yaml``/``.yml`` file holding one GraphConfig."""
        return convert(read_mapping(path), cls, source=str(path))

    def replace(self, **changes: Any) -> GraphConfig:
        return msgspec.structs.replace(self, **changes)


_T = TypeVar("_T")


def convert(data: Any, type_: type[_T], *, source: str) -> _T:
    """msgspec.convert with errors turned into ConfigError naming the source and field."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None


_READERS = {
    ".toml": lambda raw: msgspec.toml.decode(raw),
    ".json": lambda raw: msgspec.json.decode(raw),
    ".yaml": lambda raw: msgspec.yaml.decode(raw),
    ".yml": lambda raw: msgspec.yaml.decode(raw),
}


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML/JSON/YAML file into a dict, with ConfigError for unreadable or bad files."""
    p = Path(path)
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise ConfigError(f"{p}: unsupported file type {p.suffix!r}; use .toml, .json or .yaml")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read file ({exc.strerror})") from None
    try:
        data = reader(raw)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a table/object at top level, got {type(data).__name__}")
    return data
