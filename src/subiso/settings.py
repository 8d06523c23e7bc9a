"""Choose and configure the executor from a settings file, so tiers swap without code changes.

``load_executor()`` reads the first settings source it finds, in this order:

1. the ``path`` argument;
2. the file named by the environment variable ``SUBISO_CONFIG``;
3. ``subiso.toml`` in the working directory (its top level holds the keys);
4. the ``[tool.subiso]`` table of ``pyproject.toml`` in the working directory.

No file at all means the defaults (the ``"thread"`` tier). Precedence, highest first: keyword
overrides given to ``load_executor`` (the CLI's ``--executor`` is one), the environment variable
``SUBISO_EXECUTOR`` (tier name only), the file, the defaults::

    [tool.subiso]
    executor = "subinterpreter"    # inline | context | thread | subinterpreter | process | auto
    fallback = ["process", "thread"]
    max_workers = 4
    timeout = 300
    checkpointer = "sqlite:///runs.db"

    [tool.subiso.process]          # options for one tier; they win over the shared keys
    start_method = "forkserver"
    max_tasks_per_worker = 200

The shared keys (``max_workers``, ``timeout``, ``checkpointer``, ``fallback``) go to whichever
tier is selected *if that tier takes them* - a file written for ``process`` keeps working after
``executor = "inline"`` - while a key inside a tier's own table must be one that tier takes.
Plugin tiers (entry-point group ``subiso.executors``) are selectable by name and get their own
table, e.g. ``[tool.subiso.mytier]``, passed to their constructor as keyword arguments.

Every problem is a :class:`~subiso.errors.ConfigError` naming the key, the file and the valid
choices, because a settings mistake should be fixed from the message alone.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import msgspec

from subiso.config import read_mapping
from subiso.errors import ConfigError
from subiso.validate import OPTION_VALIDATORS, shown

if TYPE_CHECKING:
    from subiso.executors.base import Executor

ENV_CONFIG = "SUBISO_CONFIG"
ENV_EXECUTOR = "SUBISO_EXECUTOR"
DEFAULT_TIER = "thread"
AUTO = "auto"

# -- typed settings ------------------------------------------------------------------------------
#: Keys of the top level that go to whichever tier is selected, if it takes them.
SHARED_KEYS = (
    "max_workers",
    "timeout",
    "checkpointer",
    "fallback",
    "worker_init",
    "allowed_graphs",
    "allowed_locations",
    "loop_block_threshold",
)
#: Constructor keywords that are not settings (the caller of the constructor sets them).
_NOT_OPTIONS = frozenset({"selected_by"})


class _Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of the per-tier tables; ``None`` means "not set here"."""

    def set_options(self) -> dict[str, Any]:
        """The options actually written (so defaults stay the tier's own)."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def _builtin_tier_classes() -> dict[str, Any]:
    """Built-in tiers by name (``auto`` is a factory, not a tier with options of its own)."""
    from subiso.executors import BUILTIN_TIERS, tier_class

    return {name: tier_class(name) for name in BUILTIN_TIERS if name != AUTO}


@functools.cache
def options_struct(cls: Any) -> type[_Options]:
    """The settings table of tier ``cls``, derived from its constructor's keyword-only
    parameters and their annotations: a tier declares its options once, in its signature."""
    from subiso.executors.base import SharedOptions

    hints = typing.get_type_hints(cls.__init__)
    fields: list[tuple[str, Any, Any]] = []
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind is param.VAR_KEYWORD:  # **shared: Unpack[SharedOptions]
            shared = typing.get_type_hints(SharedOptions)
            fields += [(k, t, None) for k, t in shared.items() if k not in _NOT_OPTIONS]
        elif param.kind is param.KEYWORD_ONLY and name not in _NOT_OPTIONS:
            fields.append((name, typing.Optional[hints.get(name, Any)], None))
    name = f"{getattr(cls, 'tier', cls.__name__).title()}Options"
    return typing.cast(
        "type[_Options]", msgspec.defstruct(name, fields, bases=(_Options,), kw_only=True)
    )


def tier_tables() -> dict[str, type[_Options]]:
    """Every built-in tier's settings table, by tier name."""
    return {name: options_struct(cls) for name, cls in _builtin_tier_classes().items()}


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The validated contents of ``[tool.subiso]`` / ``subiso.toml``.

    Each built-in tier's table is an attribute named after the tier (``settings.process``),
    typed by :func:`options_struct`; ``plugins`` holds the tables of plugin tiers by name (their
    keys are checked by the plugin's constructor, which is the only place that knows them).
    """

    executor: str = DEFAULT_TIER
    fallback: list[str] | None = None
    max_workers: int | None = None
    timeout: float | None = None
    checkpointer: str | None = None
    worker_init: str | None = None  # "pkg.mod:factory", entered in each worker's loop
    # What may run: fnmatch patterns of graph targets and of checkpointer/store locations,
    # enforced by the Celery task always (see subiso.allow).
    allowed_graphs: list[str] | None = None
    allowed_locations: list[str] | None = None
    loop_block_threshold: float | None = None  # seconds a worker loop may block unreported
    plugins: dict[str, dict[str, Any]] = {}

    def shared_options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SHARED_KEYS if getattr(self, k) is not None}

    def tier_table(self, tier: str) -> dict[str, Any]:
        """The options written in ``tier``'s own table."""
        table = getattr(self, tier, None)
        if isinstance(table, _Options):
            return table.set_options()
        return dict(self.plugins.get(tier, {}))


@functools.cache
def settings_struct() -> type[Settings]:
    """:class:`Settings` with one field per built-in tier table."""
    fields = [
        (tier, table, msgspec.field(default_factory=table)) for tier, table in tier_tables().items()
    ]
    struct = msgspec.defstruct("Settings", fields, bases=(Settings,), kw_only=True)
    return typing.cast("type[Settings]", struct)


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings plus where they came from: what ``subiso info`` prints and errors cite."""

    settings: Settings
    source: Path | None  # None: defaults, no file
    origin: str  # "explicit path", "SUBISO_CONFIG", "subiso.toml", "pyproject.toml", "defaults"
    tier_from: str = "file"  # which layer chose the tier: "override", "SUBISO_EXECUTOR", ...

    @property
    def tier(self) -> str:
        return self.settings.executor

    def describe(self) -> str:
        return _describe(self.source)


def _describe(source: Path | None) -> str:
    """How errors and ``subiso info`` name a settings source."""
    if source is None:
        return "defaults (no settings file)"
    if source.name == "pyproject.toml":
        return f"{source} [tool.subiso]"
    return str(source)


# -- discovery -----------------------------------------------------------------------------------
def find_settings_file(
    path: str | os.PathLike[str] | None = None, *, cwd: Path | None = None
) -> tuple[Path | None, str, dict[str, Any]]:
    """``(file, origin, raw table)`` of the settings in effect (file None: defaults)."""
    cwd = Path.cwd() if cwd is None else cwd
    if path is not None:
        p = Path(path)
        return p, "explicit path", _table_of(p, required=True)
    env = os.environ.get(ENV_CONFIG)
    if env:
        p = Path(env)
        if not p.is_absolute():
            p = cwd / p
        if not p.exists():
            raise ConfigError(f"{ENV_CONFIG}={env!r}: no such file")
        return p, ENV_CONFIG, _table_of(p, required=True)
    local = cwd / "subiso.toml"
    if local.is_file():
        return local, "subiso.toml", _table_of(local, required=True)
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        table = _table_of(pyproject, required=False)
        if table is not None:
            return pyproject, "pyproject.toml", table
    return None, "defaults", {}


def _table_of(p: Path, *, required: bool) -> Any:
    """The settings table of a file: ``[tool.subiso]`` of a pyproject.toml, else the top level."""
    if not p.exists():
        raise ConfigError(f"{p}: settings file not found")
    data = read_mapping(p)
    if p.name == "pyproject.toml" or set(data) == {"tool"}:
        table = data.get("tool", {}).get("subiso") if isinstance(data.get("tool"), dict) else None
        if table is None:
            if required:
                raise ConfigError(f"{p}: no [tool.subiso] table")
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{p}: [tool.subiso] must be a table")
        return table
    return data


# -- validation ----------------------------------------------------------------------------------
def known_tiers() -> list[str]:
    """Every selectable tier name: built-ins, installed plugins, and ``"auto"``."""
    from subiso.executors import BUILTIN_TIERS
    from subiso.plugins import plugin_tiers

    return sorted({*BUILTIN_TIERS, *plugin_tiers(), AUTO})


def _field_names(struct: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(struct)]


def _literal_choices(struct: type[msgspec.Struct], name: str) -> list[str] | None:
    for f in msgspec.structs.fields(struct):
        if f.name != name:
            continue
        for arg in (f.type, *get_args(f.type)):
            if get_origin(arg) is Literal:
                return [str(a) for a in get_args(arg)]
    return None


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def validate(table: Mapping[str, Any], source: str) -> Settings:
    """Check keys and types of one settings table; ``ConfigError`` names key, file and choices."""
    tiers = known_tiers()
    tables = tier_tables()
    raw = dict(table)
    plugins: dict[str, dict[str, Any]] = {}
    top_keys = [k for k in _field_names(Settings) if k != "plugins"] + list(tables)
    for key in list(raw):
        if key in top_keys:
            continue
        if key in tiers and key not in tables and key != AUTO:
            value = raw.pop(key)
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key {key!r} must be a table of {key} options")
            plugins[key] = value
            continue
        valid = ", ".join(top_keys + [t for t in tiers if t not in top_keys and t != AUTO])
        raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {valid}")
    for tier, options in tables.items():
        sub = raw.get(tier)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise ConfigError(f"{source}: key {tier!r} must be a table of {tier} options")
        for key in sub:
            if key not in _field_names(options):
                valid = ", ".join(_field_names(options))
                raise ConfigError(
                    f"{source}: unknown key '{tier}.{key}'; valid keys for the {tier} tier: {valid}"
                )
    try:
        settings = msgspec.convert(raw, settings_struct())
    except msgspec.ValidationError as exc:
        raise _type_error(exc, source) from None
    settings = msgspec.structs.replace(settings, plugins=plugins)
    _check_values(settings, source, tiers)
    return settings


def _type_error(
    exc: msgspec.ValidationError,
    source: str,
    table: type[msgspec.Struct] | None = None,
    noun: str = "key",
) -> ConfigError:
    match = _MSGSPEC_PATH.match(str(exc))
    msg = match.group("msg") if match else str(exc)
    path = (match.group("path") or "") if match else ""
    parts = [p for p in re.split(r"\.|\[\d+\]", path) if p]
    key = ".".join(parts) or "?"
    struct: type[msgspec.Struct] = Settings if table is None else table
    tables = tier_tables()
    if table is None and len(parts) == 2 and parts[0] in tables:
        struct = tables[parts[0]]
    choices = _literal_choices(struct, parts[-1]) if parts else None
    hint = f"; choose one of: {', '.join(choices)}" if choices else ""
    return ConfigError(f"{source}: {noun} {key!r}: {msg}{hint}")


def _check_values(settings: Settings, source: str, tiers: list[str]) -> None:
    if settings.executor not in tiers:
        raise ConfigError(
            f"{source}: key 'executor': unknown executor {settings.executor!r}; choose one of: "
            f"{', '.join(tiers)}"
        )
    fallbacks = [
        ("fallback", settings.fallback),
        ("subinterpreter.fallback", settings.tier_table("subinterpreter").get("fallback")),
    ]
    from subiso.executors import NOT_FALLBACKS

    for key, value in fallbacks:
        for name in value or ():
            if name not in tiers or name in NOT_FALLBACKS:
                valid = ", ".join(t for t in tiers if t not in NOT_FALLBACKS)
                what = "cannot be a fallback" if name in NOT_FALLBACKS else "unknown tier"
                raise ConfigError(f"{source}: key {key!r}: {what} {name!r}; choose from: {valid}")
    tables: list[tuple[str, dict[str, Any]]] = [("", _top_options(settings))]
    tables += [(f"{t}.", settings.tier_table(t)) for t in tier_tables()]
    for prefix, options in tables:
        for name, value in options.items():
            check = OPTION_VALIDATORS.get(name)
            if check is not None and value is not None:
                check(value, f"{source}: key '{prefix}{name}'")


def _top_options(settings: Settings) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in SHARED_KEYS if k != "fallback"}


# -- loading -------------------------------------------------------------------------------------
def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides win; a table override merges key by key into the file's table."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def resolve_settings(
    path: str | os.PathLike[str] | None = None, **overrides: Any
) -> ResolvedSettings:
    """The settings in effect: discovered file, then ``SUBISO_EXECUTOR``, then ``overrides``."""
    source, origin, table = find_settings_file(path)
    where = _describe(source)
    merged = dict(table)
    tier_from = "file" if "executor" in table else "default"
    env_tier = os.environ.get(ENV_EXECUTOR)
    if env_tier:
        merged["executor"] = env_tier
        tier_from = ENV_EXECUTOR
    clean = {k: v for k, v in overrides.items() if v is not None}
    if "executor" in clean:
        tier_from = "override"
    merged = _merge(merged, clean)
    if tier_from == ENV_EXECUTOR:
        where += f" (executor from {ENV_EXECUTOR}={env_tier!r})"
    settings = validate(merged, where)
    return ResolvedSettings(settings, source, origin, tier_from)


def tier_options(settings: Settings, tier: str, cls: Callable[..., Executor]) -> dict[str, Any]:
    """Constructor keywords for ``tier``: shared keys it accepts, then its own table."""
    accepted = _accepted_options(cls)
    shared = settings.shared_options()
    options = {k: v for k, v in shared.items() if accepted is None or k in accepted}
    options.update(settings.tier_table(tier))
    return options


def _accepted_options(cls: Any) -> set[str] | None:
    """The option names ``cls`` takes (None: any, a plugin taking ``**kwargs``)."""
    from subiso.executors.base import Executor

    if isinstance(cls, type) and issubclass(cls, Executor):
        return {f.name for f in msgspec.structs.fields(options_struct(cls))}
    try:
        params: Mapping[str, inspect.Parameter] = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def build_executor(resolved: ResolvedSettings) -> Executor:
    """Construct the executor the resolved settings describe ("auto" decides here)."""
    from subiso.executors import tier_class

    settings = resolved.settings
    tier = settings.executor
    if tier == AUTO:  # a factory that decides (subiso.auto), found through the registry
        return tier_class(AUTO)(settings=settings)
    cls = tier_class(tier)
    options = tier_options(settings, tier, cls)
    return construct(tier, cls, options, resolved.describe())


def get_executor(name: str = "thread", **options: Any) -> Executor:
    """An executor of tier ``name`` with keyword ``options`` (``max_workers``, ``timeout``, ...).

    The options are taken as a settings file's top level takes them: a shared key
    (``max_workers``, ``timeout``, ``checkpointer``, ``fallback``, ``worker_init``,
    ``allowed_graphs``, ``allowed_locations``) goes to the tier if it takes it and is only
    checked if it does not (``get_executor("context", max_workers=4)`` is a context executor),
    so one call serves whichever tier a name picks; any other option must be the tier's own.
    A built-in tier's options are checked first - names and types from its constructor's
    signature, values by the shared validators - so a mistake is a ConfigError naming the
    option, as in a settings file (:func:`construct`). A tier's constructor, like its own
    settings table, takes only its own options."""
    from subiso.executors import tier_class

    cls = tier_class(name)
    source = f"executor {name!r}"
    return construct(name, cls, by_name(name, cls, options, source), source)


def by_name(tier: str, cls: Any, options: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``options`` for ``get_executor(tier, **options)``, taken as a settings file takes its top
    level: a shared key (``max_workers``, ``fallback``, ...; see ``SHARED_KEYS``) goes to the
    tier if it takes it, and is checked then left out if it does not - so code that picks a
    tier by name passes the same options to every tier, as one file serves every
    ``SUBISO_EXECUTOR``. Any other option must be the tier's own (as in its own table, or its
    constructor)."""
    accepted = _accepted_options(cls)
    if accepted is None:
        return dict(options)
    unused = {k: v for k, v in options.items() if k in SHARED_KEYS and k not in accepted}
    if unused:
        validate(unused, source)  # the same checks and messages as a settings file's
    return {k: v for k, v in options.items() if k not in unused}


def construct(
    tier: str,
    cls: Callable[..., Executor],
    options: dict[str, Any],
    source: str,
    *,
    selected_by: str | None = None,
) -> Executor:
    """``cls(**options)`` with every option of a built-in tier checked first (its type from the
    constructor's signature, its value by the shared validators) and any problem reported as
    a ConfigError naming the option and ``source``; ``selected_by`` is passed to it (built-in
    tiers take it, see ``Executor``). An option set to None means "not set", as in a file."""
    if _is_builtin_tier(tier, cls):
        options = check_options(tier, cls, options, source)
    if selected_by is not None:
        options = {**options, "selected_by": selected_by}
    try:
        executor = cls(**options)
    except TypeError as exc:
        try:
            valid = ", ".join(
                n for n, p in inspect.signature(cls).parameters.items() if p.kind is p.KEYWORD_ONLY
            )
        except (TypeError, ValueError):
            valid = "?"
        raise ConfigError(
            f"{source}: executor {tier!r} rejected its options {sorted(options)}: {exc}; "
            f"valid options: {valid}"
        ) from None
    return executor


def _is_builtin_tier(tier: str, cls: Any) -> bool:
    """A built-in tier's class (plugins check their own options: they may take any keyword)."""
    from subiso.executors import BUILTIN_TIERS
    from subiso.executors.base import Executor

    return tier in BUILTIN_TIERS and isinstance(cls, type) and issubclass(cls, Executor)


def check_options(tier: str, cls: Any, options: dict[str, Any], source: str) -> dict[str, Any]:
    """The options of built-in-style tier ``cls`` checked against its settings table (names and
    types, from its constructor) and the shared validators; None values dropped."""
    struct = options_struct(cls)
    names = _field_names(struct)
    unknown = sorted(str(k) for k in options if k not in names and k not in _NOT_OPTIONS)
    if unknown:
        raise ConfigError(
            f"{source}: bad option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not "
            f"an option of the {tier} tier; valid options: {', '.join(names)}"
        )
    given = {k: v for k, v in options.items() if v is not None}
    selected_by = given.pop("selected_by", None)
    if selected_by is not None and not isinstance(selected_by, str):
        raise ConfigError(
            f"{source}: option 'selected_by' must be a string, got {shown(selected_by)}"
        )
    try:
        msgspec.convert(given, struct)
    except msgspec.ValidationError as exc:
        raise _type_error(exc, source, struct, noun="option") from None
    for name, value in given.items():
        check = OPTION_VALIDATORS.get(name)
        if check is not None:
            check(value, f"{source}: {name}")
    return given if selected_by is None else {**given, "selected_by": selected_by}


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """The validated settings in effect (same discovery and overrides as ``load_executor``)."""
    return resolve_settings(path, **overrides).settings


def load_executor(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Executor:
    """Build the executor described by the settings in effect (see the module docstring).

    ``overrides`` take settings keys and win over the file and ``SUBISO_EXECUTOR``:
    ``load_executor(executor="process", process={"start_method": "spawn"})``. A ``None``
    override means "not overridden".
    """
    return build_executor(resolve_settings(path, **overrides))


# -- the option dict of the design this replaces -------------------------------------------------
LEGACY_KEYS = ("use_process_isolation", "use_forced_thread_isolation", "use_thread_isolation")


def legacy_tier(opts: Mapping[str, Any]) -> str:
    """The tier an old-style option dict asked for.

    ==========================  ============================  ======================  =========
    ``use_process_isolation``   ``use_forced_thread_isolation``  ``use_thread_isolation``  tier
    ==========================  ============================  ======================  =========
    True                        any                           any                     process
    False (default)             True (default)                any                     thread
    False                       False                         True (default)          context
    False                       False                         False                   inline
    ==========================  ============================  ======================  =========

    The checks run in that order, exactly as the old design applied them: forced thread
    isolation was on by default, so ``{"use_thread_isolation": False}`` alone still meant a
    dedicated thread there and still means ``"thread"`` here; both thread flags must be off for
    ``"inline"``. Other keys of the dict (the old "analysis options") are ignored.
    """
    flags: dict[str, bool] = {}
    for key, default in zip(LEGACY_KEYS, (False, True, True), strict=True):
        value = opts.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(
                f"legacy options: key {key!r} must be true or false, got {shown(value)}"
            )
        flags[key] = value
    if flags["use_process_isolation"]:
        return "process"
    if flags["use_forced_thread_isolation"]:
        return "thread"
    if flags["use_thread_isolation"]:
        return "context"
    return "inline"


def executor_from_options(opts: Mapping[str, Any], **overrides: Any) -> Executor:
    """An executor for the option dict of the design subiso replaces - the migration path.

    The dict picks the tier (see :func:`legacy_tier`); everything else (``max_workers``,
    ``timeout``, per-tier tables) comes from the settings file in effect and ``overrides``,
    as with :func:`load_executor`. Migrating is then one step at a time:

    1. replace ``execute_...(workflow, options)`` with
       ``subiso.executor_from_options(options).run(GraphConfig(...))`` - same tiers as before;
    2. move the choice into ``[tool.subiso] executor = "thread"`` (or ``subiso.toml``) and call
       ``subiso.load_executor()`` - or just ``subiso.run(cfg)``;
    3. drop ``use_*_isolation`` from the option dicts.

    The tier comes from the dict even when ``SUBISO_EXECUTOR`` is set: code that still passes
    the old flags asked for one tier explicitly.
    """
    if not isinstance(opts, Mapping):
        raise ConfigError(f"legacy options: expected a dict, got {type(opts).__name__}")
    return load_executor(**{**overrides, "executor": legacy_tier(opts)})
