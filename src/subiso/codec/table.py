"""The wire format: extension codes, the classes they may name, and the registry.

Plain data (``dict``/``list``/``str``/``int``/``float``/``bool``/``None``/``bytes``) travels as
msgpack's own types; every other value as a typed msgpack ``Ext`` whose payload is itself
msgpack (raw bytes for codes 11 and 18):

====  ==============  ==========================================================================
code  kind            payload
====  ==============  ==========================================================================
1     pickle          ``pickle.dumps(value)`` - only with ``allow_pickle=True`` on both sides
2     tuple           ``[item, ...]``
3     set             ``[item, ...]``
4     frozenset       ``[item, ...]``
5     NamedTuple      ``["module:qualname", [item, ...]]``
6     Decimal         ``str(value)``
7     datetime        ``[year, month, day, hour, minute, second, microsecond, fold, tz]``
8     date            ``[year, month, day]``
9     time            ``[hour, minute, second, microsecond, fold, tz]``
10    timedelta       ``[days, seconds, microseconds]``
11    UUID            the 16 raw bytes
12    Enum            ``["module:qualname", value]`` (rebuilt as ``cls(value)``)
13    dataclass       ``["module:qualname", {attribute: value}]`` (fields and ``__dict__``)
14    pydantic model  ``["module:qualname", __dict__, [field set...], extra, private]`` (the
                      parts of ``model.__getstate__()``, restored by ``__setstate__``)
15    msgspec Struct  ``["module:qualname", {field: value}]``
16    exception       ``["module:qualname", [arg, ...], {attribute: value}]``
17    registered      ``["module:qualname", {attribute: value}]`` (see :func:`register`)
18    big int         signed big-endian bytes of an int outside msgpack's 64-bit range
19    complex         ``[real, imag]``
20    class           ``"module:qualname"`` (a class object, e.g. a pydantic schema)
21    map             ``[key, value, key, value, ...]``: a dict with keys msgpack maps cannot
                      carry as themselves (tuples, enums, frozensets...)
====  ==============  ==========================================================================

``tz`` is ``None``, ``[utcoffset_microseconds, name-or-None]`` (``datetime.timezone``) or a
``zoneinfo`` key. ``bytearray`` and ``memoryview`` travel as msgpack ``bin`` and arrive as
``bytes``.

A class named by ``module:qualname`` is imported back and used only if it is of the kind its
code says (:func:`resolve`): decoding never runs code the bytes choose. The lookups by class and
by name are cached, so a class costs its import and checks once per process.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import importlib
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import msgspec

from subiso.errors import SerializationError

EXT_PICKLE = 1
EXT_TUPLE = 2
EXT_SET = 3
EXT_FROZENSET = 4
EXT_NAMEDTUPLE = 5
EXT_DECIMAL = 6
EXT_DATETIME = 7
EXT_DATE = 8
EXT_TIME = 9
EXT_TIMEDELTA = 10
EXT_UUID = 11
EXT_ENUM = 12
EXT_DATACLASS = 13
EXT_PYDANTIC = 14
EXT_STRUCT = 15
EXT_EXCEPTION = 16
EXT_REGISTERED = 17
EXT_BIGINT = 18
EXT_COMPLEX = 19
EXT_CLASS = 20
EXT_MAP = 21
#: A model of the run's own input, by its number there (see :mod:`subiso.codec.echo`).
EXT_ECHO = 22
NO_TYPED_FORM = 0

#: Nesting limit of typed values (each tuple, dataclass... inside another counts one level).
MAX_DEPTH = 1000

DEPTH_MESSAGE = (
    f"nested deeper than the codec's limit (about {MAX_DEPTH} levels, or Python's recursion "
    "limit) or self-referencing"
)

#: Types msgpack carries as themselves, in every position (ints are checked for their range).
ATOMS = frozenset({str, float, bool, type(None), bytes})
INT64 = (-(1 << 63), (1 << 64) - 1)


def is_int64(obj: Any) -> bool:
    return type(obj) is int and INT64[0] <= obj <= INT64[1]


# -- failures ------------------------------------------------------------------------------------
class Unencodable(TypeError):
    """A value with no typed form; becomes SerializationError with a key path."""

    def __init__(self, obj: Any, reason: str) -> None:
        super().__init__(f"{type(obj).__name__}: {reason}")
        self.obj = obj
        self.reason = reason


class TooDeep(ValueError):
    pass


# -- the registry ------------------------------------------------------------------------------
#: ``module:qualname`` of plain classes (no dataclass, model...) rebuilt from their attributes.
REGISTERED: set[str] = {"langgraph.types:Send"}

#: Caches keyed by class that :func:`register` invalidates (the encoder adds its own).
CLASS_CACHES: list[dict[type, Any]] = []


def register(cls: type) -> type:
    """Let instances of ``cls`` cross as their attributes (``__dict__`` and ``__slots__``).

    For plain classes of no kind the codec knows (``langgraph.types.Send`` is registered).
    They are rebuilt with ``cls.__new__(cls)`` and their attributes set back, ``__init__`` is
    not called. Usable as a class decorator; both sides must have registered the class.
    """
    REGISTERED.add(f"{cls.__module__}:{cls.__qualname__}")
    for cache in CLASS_CACHES:
        cache.pop(cls, None)
    return cls


# -- classes by name -----------------------------------------------------------------------------
_REFS: dict[type, str] = {}
_RESOLVED: dict[int, dict[Any, Any]] = {}


def import_ref(ref: str) -> Any:
    module, _, qualname = ref.partition(":")
    obj: Any = builtins if module == "builtins" else importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def ref(cls: type) -> str:
    """``module:qualname`` of ``cls``, checked to import back to ``cls`` (cached)."""
    found_ref = _REFS.get(cls)
    if found_ref is None:
        found_ref = f"{cls.__module__}:{cls.__qualname__}"
        try:
            found = import_ref(found_ref)
        except Exception:
            found = None
        if found is not cls:
            raise Unencodable(
                cls, f"class {found_ref} cannot be imported by that name (defined in a function?)"
            )
        _REFS[cls] = found_ref
    return found_ref


def is_pydantic_class(cls: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def is_namedtuple_class(cls: type) -> bool:
    return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)


#: What the class named in each kind of payload must be before anything is built from it.
_CLASS_CHECKS: dict[int, Callable[[type], bool]] = {
    EXT_NAMEDTUPLE: is_namedtuple_class,
    EXT_ENUM: lambda cls: issubclass(cls, enum.Enum),
    EXT_DATACLASS: dataclasses.is_dataclass,
    EXT_PYDANTIC: is_pydantic_class,
    EXT_STRUCT: lambda cls: issubclass(cls, msgspec.Struct),
    EXT_EXCEPTION: lambda cls: issubclass(cls, BaseException),
    EXT_REGISTERED: lambda cls: f"{cls.__module__}:{cls.__qualname__}" in REGISTERED,
    EXT_CLASS: lambda cls: True,
}


def resolve(code: int, name: Any) -> Any:
    """The class ``name`` names, if it is one of the kind ``code`` stands for (cached)."""
    by_name = _RESOLVED.setdefault(code, {})
    try:
        return by_name[name]
    except (KeyError, TypeError):
        pass
    if not isinstance(name, str):
        raise SerializationError(f"malformed extension {code}: class name {name!r}")
    try:
        cls = import_ref(name)
    except Exception as exc:
        raise SerializationError(f"cannot import {name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(cls, type) or not _CLASS_CHECKS[code](cls):
        raise SerializationError(f"{name} is not a class of the kind extension {code} carries")
    by_name[name] = cls
    return cls


# -- the kind of each type -----------------------------------------------------------------------
#: Kind of each non-plain type, decided once per type.
KIND: dict[type, int] = {
    tuple: EXT_TUPLE,
    set: EXT_SET,
    frozenset: EXT_FROZENSET,
    Decimal: EXT_DECIMAL,
    dt.datetime: EXT_DATETIME,
    dt.date: EXT_DATE,
    dt.time: EXT_TIME,
    dt.timedelta: EXT_TIMEDELTA,
    uuid.UUID: EXT_UUID,
    int: EXT_BIGINT,
    complex: EXT_COMPLEX,
}
CLASS_CACHES.append(KIND)


def classify(cls: type) -> int:
    kind = KIND.get(cls)
    if kind is None:
        if issubclass(cls, type):
            kind = EXT_CLASS
        elif issubclass(cls, enum.Enum):
            kind = EXT_ENUM
        elif issubclass(cls, BaseException):
            kind = EXT_EXCEPTION
        elif issubclass(cls, msgspec.Struct):
            kind = EXT_STRUCT
        elif is_pydantic_class(cls):
            kind = EXT_PYDANTIC
        elif dataclasses.is_dataclass(cls):
            kind = EXT_DATACLASS
        elif is_namedtuple_class(cls):
            kind = EXT_NAMEDTUPLE
        elif f"{cls.__module__}:{cls.__qualname__}" in REGISTERED:
            kind = EXT_REGISTERED
        else:
            kind = NO_TYPED_FORM
        KIND[cls] = kind
    return kind


# -- state of instances --------------------------------------------------------------------------
def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                yield name


def attributes(obj: Any) -> dict[str, Any]:
    """``__dict__`` plus the ``__slots__`` values that are set."""
    state = dict(getattr(obj, "__dict__", ()))
    for name in _slot_names(type(obj)):
        if name not in state:
            try:
                state[name] = object.__getattribute__(obj, name)
            except AttributeError:
                pass
    return state


def set_attributes(obj: Any, state: Any) -> Any:
    if type(state) is not dict:
        raise SerializationError("malformed attributes in extension payload")
    for name, value in state.items():
        object.__setattr__(obj, name, value)
    return obj


# -- time zones ----------------------------------------------------------------------------------
def tz_out(tz: Any) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return [offset // dt.timedelta(microseconds=1), name[0] if name else None]
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is not None and type(tz) is zoneinfo.ZoneInfo and tz.key is not None:
        return tz.key
    raise Unencodable(tz, "only datetime.timezone and zoneinfo.ZoneInfo time zones can cross")


def tz_in(spec: Any) -> Any:
    if spec is None:
        return None
    if isinstance(spec, str):
        import zoneinfo

        return zoneinfo.ZoneInfo(spec)
    offset = dt.timedelta(microseconds=spec[0])
    return dt.timezone(offset) if spec[1] is None else dt.timezone(offset, spec[1])
