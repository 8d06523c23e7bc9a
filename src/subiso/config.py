"""GraphConfig: what to run, with what input, on which checkpointer, within what time.

Validated by msgspec; every failure becomes ``ConfigError`` naming the field and the reason.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
import uuid
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from subiso.errors import ConfigError
from subiso.validate import checkpointer_spec, nesting, seconds, shown

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


#: True while a worker decodes a run frame from its own host: the GraphConfig in it was checked
#: when the caller made it, so a run does not pay for its checks twice (a tenth of a trivial
#: process run's overhead). Set with ``.set(True)``/``.reset(token)`` around the decode.
ALREADY_CHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "subiso_config_already_checked", default=False
)


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
      run the graph in this process (inline, context, thread, subinterpreter in hybrid mode) also
      take the compiled graph object itself.
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
        if ALREADY_CHECKED.get():
            return
        if isinstance(self.graph, str):
            if not _IMPORT_PATH.fullmatch(self.graph):
                raise ConfigError(
                    f"GraphConfig.graph: {shown(self.graph)} is not an import path of the form "
                    "'package.module:attribute'"
                )
        elif self.graph is None or not (callable(self.graph) or hasattr(self.graph, "invoke")):
            raise ConfigError(
                "GraphConfig.graph: expected `str` of the form 'package.module:attribute' (tiers "
                f"running in this process also take a compiled graph), got {type(self.graph).__name__}"
            )
        _check_config(self.config)
        if self.checkpointer is not None:
            checkpointer_spec(self.checkpointer, "GraphConfig.checkpointer")
        if self.store is not None:
            checkpointer_spec(self.store, "GraphConfig.store", what="store")
        seconds(self.timeout, "GraphConfig.timeout")
        if self.durability not in _DURABILITIES:
            raise ConfigError(
                f"GraphConfig.durability: expected one of sync, async, exit (or None for "
                f"LangGraph's default), got {_shown(self.durability)}"
            )
        for name in ("interrupt_before", "interrupt_after"):
            value = getattr(self, name)
            if not (value is None or value == "*" or _str_list(value)):
                raise ConfigError(
                    f'GraphConfig.{name}: expected "*" or a list of node names, got {_shown(value)}'
                )
        if not isinstance(self.recover, bool):
            raise ConfigError(
                f"GraphConfig.recover: expected true or false, got {_shown(self.recover)}"
            )
        if self.resume is not msgspec.UNSET and self.input is not None:
            raise ConfigError(
                "GraphConfig: give either input or resume: a resumed run's input is "
                "Command(resume=...)"
            )

    def nesting_error(self) -> ConfigError | None:
        """The ConfigError for an ``input``, ``resume`` or ``context`` nested deeper than
        ``validate.MAX_NESTING`` levels or holding itself (naming the field), or None.

        Not checked at construction (a GraphConfig is built again wherever it is decoded): an
        executor checks as a run comes in, where the graph would run on these very objects.
        The process tier does not walk them: its codec refuses a value it cannot carry while
        it encodes it, and asks this for the field to name.
        """
        try:
            for name in ("input", "resume", "context"):
                value = getattr(self, name)
                if value is not None and value is not msgspec.UNSET:
                    nesting(value, f"GraphConfig.{name}")
        except ConfigError as exc:
            return exc
        return None

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

_DURABILITIES = (None, "sync", "async", "exit")


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _str_keys(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _check_config(config: Any) -> None:
    """``GraphConfig.config``: LangGraph's RunnableConfig, its keys of known types checked here
    (LangGraph itself fails on them deep inside a run, with errors naming nothing)."""
    if not _str_keys(config):
        raise ConfigError(
            f"GraphConfig.config: expected a dict with string keys (a RunnableConfig), got "
            f"{_shown(config)}"
        )
    nesting(config, "GraphConfig.config")
    configurable = config.get("configurable")
    if configurable is not None:
        if not _str_keys(configurable):
            raise ConfigError(
                "GraphConfig.config.configurable: expected a dict with string keys, got "
                f"{_shown(configurable)}"
            )
        thread_id = configurable.get("thread_id")
        if thread_id is not None and (
            isinstance(thread_id, bool) or not isinstance(thread_id, (str, int, uuid.UUID))
        ):
            raise ConfigError(
                "GraphConfig.config.configurable.thread_id: expected a string (or an integer), "
                f"got {_shown(thread_id)}"
            )
        for key in ("checkpoint_id", "checkpoint_ns"):
            value = configurable.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"GraphConfig.config.configurable.{key}: expected a string, got {_shown(value)}"
                )
        if configurable.get("checkpoint_id") is not None and thread_id is None:
            raise ConfigError(
                "GraphConfig.config.configurable.checkpoint_id: a checkpoint belongs to a "
                "thread; set configurable.thread_id too"
            )
    for key in ("recursion_limit", "max_concurrency"):
        value = config.get(key)
        if value is None and key == "max_concurrency":
            continue
        if key in config and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(
                f"GraphConfig.config.{key}: expected an integer >= 1, got {_shown(value)}"
            )
    checks: list[tuple[str, Any, str]] = [
        ("tags", _str_list, "a list of strings"),
        ("metadata", _str_keys, "a dict with string keys"),
        ("run_name", lambda v: isinstance(v, str), "a string"),
        (
            "callbacks",
            lambda v: not isinstance(v, (str, bytes, int, float, dict, set, tuple)),
            "a list of callback handlers or a callback manager",
        ),
    ]
    for key, ok, want in checks:
        value = config.get(key)
        if value is not None and not ok(value):
            raise ConfigError(f"GraphConfig.config.{key}: expected {want}, got {_shown(value)}")


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
    if isinstance(value, str):
        text = '"' + value[:57].replace('"', '\\"') + ('..."' if len(value) > 57 else '"')
    else:
        text = shown(value)
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
    if message.startswith("Expected `str` - at `key` in `$`") and isinstance(data, dict):
        bad = next((k for k in data if not isinstance(k, str)), None)
        return f"every key must be a field name (a string), got {_shown(bad)}"
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
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"expected a file path, got {_shown(path)}")
    p = Path(path)
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise ConfigError(f"{p}: unsupported file type {p.suffix!r}; use .toml, .json or .yaml")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read file ({exc.strerror})") from None
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(f"{p!r}: not a usable file path ({exc})") from None
    kind = p.suffix.lstrip(".").upper()
    try:
        data = reader(raw)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ConfigError(f"{p}: not valid {kind}: {exc}") from None
    except RecursionError:  # the TOML reader recurses on nested arrays and tables
        raise ConfigError(f"{p}: not valid {kind}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a table/object at top level, got {type(data).__name__}")
    return data
