"""GraphConfig: what to run, with what input, on which checkpointer, within what time.

Validated by msgspec; every failure becomes ``ConfigError`` naming the field and the reason.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from subiso.errors import ConfigError
from subiso.validate import checkpointer_spec, seconds

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class ConfigSignatureError(ConfigError, TypeError):
    """A GraphConfig called with arguments it does not take (a ConfigError, and the TypeError
    Python raises for a bad call)."""


class _ConfigMeta(msgspec.StructMeta):
    """Turns the TypeError of a wrong keyword (``GraphConfig(resum=1)``) into a ConfigError
    that names the field and the valid ones."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as exc:
            fields = ", ".join(f.name for f in msgspec.structs.fields(cls))  # type: ignore[arg-type]
            raise ConfigSignatureError(f"{cls.__name__}: {exc}; valid fields: {fields}") from None


Durability = Literal["sync", "async", "exit"]
Breakpoints = Literal["*"] | list[str]


class GraphConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    metaclass=_ConfigMeta,
):
    """One run of a graph or workflow function, and everything LangGraph's ``invoke`` takes.

    * ``graph``: ``"pkg.module:attr"`` naming a compiled graph, a StateGraph builder, a
      zero-argument factory returning either, or a workflow function ``f(input)``. Tiers that
      run in this process (inline, context, thread) also take the compiled graph object itself.
    * ``input``: the graph's input; from Python also a ``langgraph.types.Command``.
    * ``resume``: resume an ``interrupt()``: the run's input becomes ``Command(resume=resume)``
      (any value, ``None`` included; leave it unset for a normal run).
    * ``config``: LangGraph's RunnableConfig (``configurable.thread_id``, ``recursion_limit``).
    * ``context``: LangGraph's static runtime context (``Runtime.context`` in nodes).
    * ``durability``: when checkpoints are written - ``"sync"`` (before the next step starts:
      a worker killed mid-run loses no completed step), ``"async"`` (LangGraph's default) or
      ``"exit"``.
    * ``interrupt_before`` / ``interrupt_after``: node names (or ``"*"``) to pause at.
    * ``checkpointer`` / ``store``: ``"memory"`` or ``"sqlite:///path.db"``; created once per
      worker event loop (``"memory"`` lives as long as the executor in in-process tiers).
    * ``timeout``: seconds.
    """

    graph: Any
    input: Any = None
    resume: Any = msgspec.UNSET
    config: dict[str, Any] = {}
    context: Any = None
    durability: Durability | None = None
    interrupt_before: Breakpoints | None = None
    interrupt_after: Breakpoints | None = None
    checkpointer: str | None = None
    store: str | None = None
    timeout: float | None = None
    #: Continue the thread from its last checkpoint (input None) when that checkpoint still has
    #: nodes to run - a run cut short by a crashed worker; otherwise run with ``input``. Needs
    #: ``config.configurable.thread_id`` and a checkpointer. Celery retries set it.
    recover: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.graph, str):
            if not _IMPORT_PATH.match(self.graph):
                raise ConfigError(
                    f"GraphConfig.graph: {self.graph!r} is not an import path of the form "
                    "'package.module:attribute'"
                )
        elif self.graph is None or not (callable(self.graph) or hasattr(self.graph, "invoke")):
            raise ConfigError(
                "GraphConfig.graph: expected `str` of the form 'package.module:attribute' (tiers "
                f"running in this process also take a compiled graph), got {type(self.graph).__name__}"
            )
        if not isinstance(self.config, dict):
            raise ConfigError(f"GraphConfig.config: expected a dict, got {self.config!r}")
        if self.checkpointer is not None:
            checkpointer_spec(self.checkpointer, "GraphConfig.checkpointer")
        if self.store is not None:
            checkpointer_spec(self.store, "GraphConfig.store", what="store")
        seconds(self.timeout, "GraphConfig.timeout")
        if self.resume is not msgspec.UNSET and self.input is not None:
            raise ConfigError(
                "GraphConfig: give either input or resume: a resumed run's input is "
                "Command(resume=...)"
            )

    @property
    def is_resume(self) -> bool:
        return self.resume is not msgspec.UNSET

    @property
    def thread_id(self) -> str | None:
        """``config["configurable"]["thread_id"]``, the key runs are routed by."""
        configurable = self.config.get("configurable")
        if isinstance(configurable, dict):
            value = configurable.get("thread_id")
            return None if value is None else str(value)
        return None

    @property
    def module(self) -> str:
        return self.graph.partition(":")[0] if isinstance(self.graph, str) else ""

    @property
    def label(self) -> str:
        """How messages name the target."""
        return self.graph if isinstance(self.graph, str) else f"<{type(self.graph).__name__}>"

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


#: What a GraphConfig key takes, in words, for type errors.
_EXPECTED = {
    "graph": "an import path 'package.module:attribute'",
    "config": "a table of RunnableConfig keys (configurable, recursion_limit, ...)",
    "durability": "one of sync, async, exit",
    "interrupt_before": '"*" or a list of node names',
    "interrupt_after": '"*" or a list of node names',
    "checkpointer": "'memory', 'sqlite:///path.db' or 'postgresql://...'",
    "store": "'memory', 'sqlite:///path.db' or 'postgresql://...'",
    "timeout": "a number of seconds",
    "recover": "true or false",
}
#: msgspec's type names in words, for keys not in _EXPECTED.
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "a table",
    "array": "a list",
    "null": "nothing",
}
_UNKNOWN = re.compile(
    r"^Object contains unknown field `(?P<key>[^`]*)`(?: - at `\$(?P<at>[^`]*)`)?$"
)
_AT = re.compile(r"^(?P<msg>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_EXPECTED_GOT = re.compile(r"^Expected `(?P<want>[^`]*)`, got `[^`]*`$")


def _field_path(path: str) -> list[str | int]:
    """``.config.configurable[0]`` -> ``["config", "configurable", 0]``."""
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    return parts


def _value_at(data: Any, parts: list[str | int]) -> Any:
    for part in parts:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _shown(value: Any) -> str:
    """``str "10"``, ``int 3``, ``list [1, 2]``: a wrong value's type and the value itself."""
    text = repr(value) if not isinstance(value, str) else '"' + value.replace('"', '\\"') + '"'
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _plain_error(exc: msgspec.ValidationError, data: Any, type_: type[Any]) -> str:
    """msgspec's message in plain words, naming the key: ``timeout: expected a number of
    seconds, got str "10"``; ``unknown key 'timout' (did you mean 'timeout'?); valid keys: ...``."""
    message = str(exc)
    fields = (
        [f.name for f in msgspec.structs.fields(type_)]
        if isinstance(type_, type) and issubclass(type_, msgspec.Struct)
        else []
    )
    unknown = _UNKNOWN.match(message)
    if unknown:
        key, at = unknown.group("key"), unknown.group("at")
        if at:  # inside a nested struct: name where
            return f"{'.'.join(map(str, _field_path(at)))}: unknown key {key!r}"
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; valid keys: {', '.join(fields)}"
    located = _AT.match(message)
    if not located:
        missing = re.match(r"^Object missing required field `([^`]*)`$", message)
        return f"missing required key {missing.group(1)!r}" if missing else message
    parts = _field_path(located.group("path"))
    key = ".".join(map(str, parts))
    value = _value_at(data, parts)
    want = _EXPECTED.get(key)
    if want is None:
        got = _EXPECTED_GOT.match(located.group("msg"))
        if got is None:
            return f"{key}: {located.group('msg')}"
        want = " or ".join(_TYPE_WORDS.get(t, t) for t in got.group("want").split(" | "))
    return f"{key}: expected {want}, got {_shown(value)}"


def convert(data: Any, type_: type[_T], *, source: str) -> _T:
    """msgspec.convert with errors turned into ConfigError naming the source and the key, in
    plain words."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_plain_error(exc, data, type_)}") from None


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
