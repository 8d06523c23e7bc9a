"""Bytes that cross a process (or interpreter) boundary: msgpack with typed extension types.

A value comes back with its own type and compares equal: plain data (``dict``/``list``/``str``/
``int``/``float``/``bool``/``None``/``bytes``) as msgpack's own types, everything else as a
typed msgpack ``Ext`` whose payload is itself msgpack. Nothing is pickled unless the caller
opts in (``allow_pickle=True``), and decoding never runs code named by the bytes: a class is
imported from ``module:qualname`` and used only if it really is of the kind the ext code says.

**Wire format** (ext code: payload, every payload but raw bytes being msgpack):

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
``bytes`` (no C msgpack encoder tells them apart from ``bytes``; catching them would cost a Python
walk over every value, see below).

**The hot path.** msgspec encodes tuples, dataclasses, enums, ``Decimal``... natively, so its
``enc_hook`` never sees them (msgspec issue #734, open) and a Python pre-pass over every value
would cost ~45% more than msgspec's own encode+decode on a ~1 MB state of plain data. So values
are encoded by ``ormsgpack`` (already installed: ``langgraph-checkpoint`` requires it, for the
same reason) with its ``OPT_PASSTHROUGH_*`` options, which hand exactly the non-plain values to
a ``default`` hook at C speed; plain data never runs Python. msgspec decodes (with an
``ext_hook``) and encodes the wire messages (tagged Structs) around the values. A value ormsgpack
refuses as a whole (a dict with non-``str`` keys, plain nesting deeper than 254 levels) takes a
Python pre-pass that produces the same bytes for its plain parts.

**Classes** are rebuilt without calling ``__init__``, from the state they had: dataclasses and
registered classes via ``cls.__new__(cls)`` and ``object.__setattr__`` (frozen, ``slots=True`` and
``init=False`` fields included); NamedTuples via ``tuple.__new__``; msgspec Structs via their
generated ``__init__``; enums via ``cls(value)``. Pydantic v2 models (LangChain messages among
them) use the model's own ``__getstate__``/``__setstate__`` pair, i.e. pydantic's pickle path
minus pickle: it restores ``__dict__``, the fields set, extras and private attributes exactly, so
an ``AIMessage`` compares equal, and costs no validation. (``langchain_core.load.dumpd``/``load``
would cover only ``Serializable`` objects, re-validate every message and drop fields outside
the constructor's keyword arguments.) A class that is not importable under its
``module:qualname`` (defined in a function), or of no kind above, raises
:class:`subiso.errors.SerializationError` naming its key path, e.g. ``state["docs"][3]``;
nothing has been sent at that point.

**Pickle, opt-in** (``encode(..., allow_pickle=True)`` / ``decode(..., allow_pickle=True)``):
values of any other class are pickled into code 1. Warning: unpickling runs code chosen by
whoever wrote the bytes, so a host that decodes worker output with ``allow_pickle=True`` lets
code in the worker run code in the host. Without the flag, code 1 is refused unread.

**Exceptions** cross as :class:`WireError` (type name, message, traceback text, ``args`` and the
``__dict__`` attributes that encode) and are rebuilt by :func:`exception_from_wire` with their
own type whatever their constructor takes (``__init__`` is not called), ``__cause__`` set to
:class:`subiso.errors.RemoteTraceback`; :class:`subiso.errors.RemoteError` stands in only when
the type cannot be imported.

This module is generic on purpose: the process tier uses it on both sides and the
subinterpreter tier on its host side.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import importlib
import json
import pickle
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import msgspec

from subiso.errors import RemoteError, RemoteTraceback, SerializationError

try:
    import ormsgpack
except ImportError:  # pragma: no cover - a dependency of langgraph-checkpoint; the slow path
    ormsgpack = None  # type: ignore[assignment]

__all__ = [
    "RemoteError",
    "WireError",
    "decode",
    "decoder",
    "encode",
    "exception_from_wire",
    "exception_to_wire",
    "find_unencodable",
    "register",
    "serialization_error",
]

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

#: Nesting limit of typed values (each tuple, dataclass... inside another counts one level).
MAX_DEPTH = 1000

_PLAIN = (str, int, float, bool, type(None), bytes, bytearray, memoryview)
_ATOMS = frozenset({str, float, bool, type(None), bytes})
_KEY_ATOMS = frozenset({str, float, bool, type(None), bytes})
_INT64 = (-(1 << 63), (1 << 64) - 1)

_MSGPACK = msgspec.msgpack.Encoder()
_Ext = msgspec.msgpack.Ext

if ormsgpack is not None:
    _FAST_OPTIONS = (
        ormsgpack.OPT_PASSTHROUGH_BIG_INT
        | ormsgpack.OPT_PASSTHROUGH_DATACLASS
        | ormsgpack.OPT_PASSTHROUGH_DATETIME
        | ormsgpack.OPT_PASSTHROUGH_ENUM
        | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
        | ormsgpack.OPT_PASSTHROUGH_TUPLE
        | ormsgpack.OPT_PASSTHROUGH_UUID
    )
    _packb: Callable[..., bytes] | None = ormsgpack.packb
    _FastExt: Any = ormsgpack.Ext
    # ormsgpack doubles its output buffer past 256 KiB (2 MiB for a 1.1 MB message). glibc
    # serves such a size with a fresh mmap, page-faulting every byte written (+0.4 ms per MB
    # measured), until freeing a larger mmapped block raises its adaptive mmap threshold;
    # msgspec's 1.5x growth stays under it. Freeing one 4 MiB block here raises it once, so
    # buffers up to 4 MiB are reused from the heap like msgspec's. Harmless on other allocators.
    if sys.platform == "linux":
        bytes(4 << 20)

else:  # pragma: no cover
    _FAST_OPTIONS = 0
    _packb = None
    _FastExt = None

#: ``module:qualname`` of plain classes (no dataclass, model...) rebuilt from their attributes.
_REGISTERED: set[str] = {"langgraph.types:Send"}


def register(cls: type) -> type:
    """Let instances of ``cls`` cross as their attributes (``__dict__`` and ``__slots__``).

    For plain classes of no kind the codec knows (``langgraph.types.Send`` is registered).
    They are rebuilt with ``cls.__new__(cls)`` and their attributes set back, ``__init__`` is
    not called. Usable as a class decorator; both sides must have registered the class.
    """
    _REGISTERED.add(f"{cls.__module__}:{cls.__qualname__}")
    _KIND.pop(cls, None)
    return cls


# -- failures ------------------------------------------------------------------------------------
class _Unencodable(TypeError):
    """Raised for a value with no typed form; becomes SerializationError with a key path."""

    def __init__(self, obj: Any, reason: str) -> None:
        super().__init__(f"{type(obj).__name__}: {reason}")
        self.obj = obj
        self.reason = reason


class _TooDeep(ValueError):
    pass


_DEPTH_MESSAGE = (
    f"nested deeper than the codec's limit (about {MAX_DEPTH} levels, or Python's recursion "
    "limit) or self-referencing"
)


# -- classes by name -----------------------------------------------------------------------------
_REFS: dict[type, str] = {}
_RESOLVED: dict[tuple[int, str], Any] = {}


def _import_ref(ref: str) -> Any:
    module, _, qualname = ref.partition(":")
    obj: Any = builtins if module == "builtins" else importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _ref(cls: type) -> str:
    """``module:qualname`` of ``cls``, checked to import back to ``cls`` (cached)."""
    ref = _REFS.get(cls)
    if ref is None:
        ref = f"{cls.__module__}:{cls.__qualname__}"
        try:
            found = _import_ref(ref)
        except Exception:
            found = None
        if found is not cls:
            raise _Unencodable(
                cls, f"class {ref} cannot be imported by that name (defined in a function?)"
            )
        _REFS[cls] = ref
    return ref


def _is_pydantic_class(cls: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _is_namedtuple_class(cls: type) -> bool:
    return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)


#: What the class named in each kind of payload must be before anything is built from it.
_CLASS_CHECKS: dict[int, Callable[[type], bool]] = {
    EXT_NAMEDTUPLE: _is_namedtuple_class,
    EXT_ENUM: lambda cls: issubclass(cls, enum.Enum),
    EXT_DATACLASS: dataclasses.is_dataclass,
    EXT_PYDANTIC: _is_pydantic_class,
    EXT_STRUCT: lambda cls: issubclass(cls, msgspec.Struct),
    EXT_EXCEPTION: lambda cls: issubclass(cls, BaseException),
    EXT_REGISTERED: lambda cls: f"{cls.__module__}:{cls.__qualname__}" in _REGISTERED,
    EXT_CLASS: lambda cls: True,
}


def _resolve(code: int, ref: Any) -> Any:
    """The class ``ref`` names, if it is one of the kind ``code`` stands for."""
    key = (code, ref)
    cls = _RESOLVED.get(key)
    if cls is None:
        if not isinstance(ref, str):
            raise SerializationError(f"malformed extension {code}: class name {ref!r}")
        try:
            cls = _import_ref(ref)
        except Exception as exc:
            raise SerializationError(f"cannot import {ref}: {type(exc).__name__}: {exc}") from None
        if not isinstance(cls, type) or not _CLASS_CHECKS[code](cls):
            raise SerializationError(f"{ref} is not a class of the kind extension {code} carries")
        _RESOLVED[key] = cls
    return cls


# -- state of instances --------------------------------------------------------------------------
def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                yield name


def _attributes(obj: Any) -> dict[str, Any]:
    """``__dict__`` plus the ``__slots__`` values that are set."""
    state = dict(getattr(obj, "__dict__", ()))
    for name in _slot_names(type(obj)):
        if name not in state:
            try:
                state[name] = object.__getattribute__(obj, name)
            except AttributeError:
                pass
    return state


def _set_attributes(obj: Any, state: Any) -> Any:
    if type(state) is not dict:
        raise SerializationError("malformed attributes in extension payload")
    for name, value in state.items():
        object.__setattr__(obj, name, value)
    return obj


def _exception_args_attrs(exc: BaseException) -> tuple[list[Any] | None, dict[str, Any]]:
    """The ``args`` and attributes of ``exc`` that encode (the others are dropped)."""
    args = list(exc.args) if _encodes(exc.args) else None
    attrs = {k: v for k, v in _attributes(exc).items() if _encodes(v)}
    if isinstance(exc, OSError):
        for name in ("filename", "filename2"):
            value = getattr(exc, name, None)
            if value is not None and _encodes(value):
                attrs[name] = value
    return args, attrs


def _rebuild_exception(cls: type[BaseException], args: Any, attrs: Any) -> BaseException:
    """An instance of ``cls`` with ``args`` and ``attrs``, without calling ``__init__``
    (builtin exceptions, whose constructors take their own ``args``, are called)."""
    args = tuple(args)
    exc: BaseException | None = None
    if cls.__module__ == "builtins":
        try:
            exc = cls(*args)
        except Exception:
            exc = None
    if exc is None:
        exc = cls.__new__(cls, *args)
        if not isinstance(exc, cls):
            raise TypeError(f"{cls.__qualname__}.__new__ returned {type(exc).__name__}")
        exc.args = args
    for name, value in (attrs or {}).items():
        try:
            setattr(exc, name, value)
        except Exception:
            pass
    return exc


# -- time zones ----------------------------------------------------------------------------------
def _tz_out(tz: Any) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return [offset // dt.timedelta(microseconds=1), name[0] if name else None]
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is not None and type(tz) is zoneinfo.ZoneInfo and tz.key is not None:
        return tz.key
    raise _Unencodable(tz, "only datetime.timezone and zoneinfo.ZoneInfo time zones can cross")


def _tz_in(spec: Any) -> Any:
    if spec is None:
        return None
    if isinstance(spec, str):
        import zoneinfo

        return zoneinfo.ZoneInfo(spec)
    offset = dt.timedelta(microseconds=spec[0])
    return dt.timezone(offset) if spec[1] is None else dt.timezone(offset, spec[1])


# -- encoding ------------------------------------------------------------------------------------
# Kind of each non-plain type, decided once per type.
_KIND: dict[type, int] = {
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
_NO_TYPED_FORM = 0


def _classify(cls: type) -> int:
    kind = _KIND.get(cls)
    if kind is None:
        if issubclass(cls, type):
            kind = EXT_CLASS
        elif issubclass(cls, enum.Enum):
            kind = EXT_ENUM
        elif issubclass(cls, BaseException):
            kind = EXT_EXCEPTION
        elif issubclass(cls, msgspec.Struct):
            kind = EXT_STRUCT
        elif _is_pydantic_class(cls):
            kind = EXT_PYDANTIC
        elif dataclasses.is_dataclass(cls):
            kind = EXT_DATACLASS
        elif _is_namedtuple_class(cls):
            kind = EXT_NAMEDTUPLE
        elif f"{cls.__module__}:{cls.__qualname__}" in _REGISTERED:
            kind = EXT_REGISTERED
        else:
            kind = _NO_TYPED_FORM
        _KIND[cls] = kind
    return kind


class _Codec:
    """One flavour of the codec: with or without pickle for classes of no typed form."""

    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self._local = threading.local()
        self.values = msgspec.msgpack.Decoder(ext_hook=self.ext_hook)
        self.default_fast = self._default_fast  # a bound method made once

    # -- values -> bytes
    def pack(self, obj: Any) -> bytes:
        """msgpack bytes of a value: ormsgpack at C speed, the Python pre-pass when it refuses."""
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth >= MAX_DEPTH:
            raise _TooDeep(_DEPTH_MESSAGE)
        local.depth = depth + 1
        try:
            if _packb is not None:
                local.error = None
                try:
                    return _packb(obj, default=self.default_fast, option=_FAST_OPTIONS)
                except TypeError:
                    error = local.error
                    if error is not None:
                        local.error = None
                        raise error from None
            return _MSGPACK.encode(self.prepare(obj))
        finally:
            local.depth = depth

    def _default_fast(self, obj: Any) -> Any:
        """ormsgpack's ``default``: typed Ext; our failure is kept, ormsgpack drops its cause."""
        try:
            return _FastExt(*self.ext(obj))
        except BaseException as exc:
            self._local.error = exc
            raise TypeError("see the kept error") from None

    def prepare(self, obj: Any) -> Any:
        """A tree msgspec encodes to the wire format (used where ormsgpack refuses a value)."""
        cls = type(obj)
        if cls in _ATOMS or (cls is int and _INT64[0] <= obj <= _INT64[1]):
            return obj
        if cls is list:
            return [self.prepare_item(v) for v in obj]
        if cls is dict:
            if all(type(k) in _KEY_ATOMS or _is_int64(k) for k in obj):
                return {k: self.prepare_item(v) for k, v in obj.items()}
            flat: list[Any] = []
            for k, v in obj.items():
                flat.append(self.prepare_item(k))
                flat.append(self.prepare_item(v))
            return _Ext(EXT_MAP, _MSGPACK.encode(flat))
        if cls is bytearray or cls is memoryview:
            return bytes(obj)
        return _Ext(*self.ext(obj))

    def prepare_item(self, obj: Any) -> Any:
        if type(obj) in _ATOMS or _is_int64(obj):
            return obj
        return msgspec.Raw(self.pack(obj))

    def ext(self, obj: Any) -> tuple[int, bytes]:
        """``(code, payload)`` of a non-plain value."""
        cls = type(obj)
        kind = _classify(cls)
        pack = self.pack
        if kind in (EXT_TUPLE, EXT_SET, EXT_FROZENSET):
            return kind, pack(list(obj))
        if kind == EXT_PYDANTIC:
            state = obj.__getstate__()
            try:
                flat = [
                    _ref(cls),
                    state["__dict__"],
                    list(state["__pydantic_fields_set__"]),
                    state["__pydantic_extra__"],
                    state["__pydantic_private__"],
                ]
            except (KeyError, TypeError):
                raise _Unencodable(obj, "its __getstate__ is not pydantic's") from None
            return kind, pack(flat)
        if kind == EXT_DATACLASS:
            state = _attributes(obj)
            for field in dataclasses.fields(obj):
                if field.name not in state and hasattr(obj, field.name):
                    state[field.name] = getattr(obj, field.name)
            return kind, pack([_ref(cls), state])
        if kind == EXT_ENUM:
            return kind, pack([_ref(cls), obj.value])
        if kind == EXT_DATETIME:
            return kind, pack(
                [
                    obj.year,
                    obj.month,
                    obj.day,
                    obj.hour,
                    obj.minute,
                    obj.second,
                    obj.microsecond,
                    obj.fold,
                    _tz_out(obj.tzinfo),
                ]
            )
        if kind == EXT_DATE:
            return kind, pack([obj.year, obj.month, obj.day])
        if kind == EXT_TIME:
            return kind, pack(
                [obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold, _tz_out(obj.tzinfo)]
            )
        if kind == EXT_TIMEDELTA:
            return kind, pack([obj.days, obj.seconds, obj.microseconds])
        if kind == EXT_DECIMAL:
            return kind, pack(str(obj))
        if kind == EXT_UUID:
            return kind, obj.bytes
        if kind == EXT_NAMEDTUPLE:
            return kind, pack([_ref(cls), list(obj)])
        if kind == EXT_STRUCT:
            return kind, pack([_ref(cls), {f: getattr(obj, f) for f in cls.__struct_fields__}])
        if kind == EXT_EXCEPTION:
            args, attrs = _exception_args_attrs(obj)
            return kind, pack([_ref(cls), [str(obj)] if args is None else args, attrs])
        if kind == EXT_REGISTERED:
            return kind, pack([_ref(cls), _attributes(obj)])
        if kind == EXT_BIGINT:
            size = (obj.bit_length() + 8) // 8
            return kind, obj.to_bytes(size, "big", signed=True)
        if kind == EXT_COMPLEX:
            return kind, pack([obj.real, obj.imag])
        if kind == EXT_CLASS:
            return kind, pack(_ref(obj))
        if self.allow_pickle:
            try:
                return EXT_PICKLE, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise _Unencodable(obj, f"cannot be pickled: {exc}") from None
        raise _Unencodable(
            obj,
            "no typed form (not a dataclass, pydantic model, enum, NamedTuple, msgspec Struct, "
            "exception or registered class); make it a dataclass, decorate its class with "
            "@subiso.codec.register (in a module both sides import), or convert it to plain data",
        )

    # -- bytes -> values
    def ext_hook(self, code: int, data: memoryview) -> Any:
        if code == EXT_TUPLE:
            return tuple(self.values.decode(data))
        if code == EXT_PYDANTIC:
            ref, fields, fields_set, extra, private = self.values.decode(data)
            cls = _resolve(code, ref)
            model = cls.__new__(cls)
            model.__setstate__(
                {
                    "__dict__": fields,
                    "__pydantic_fields_set__": set(fields_set),
                    "__pydantic_extra__": extra,
                    "__pydantic_private__": private,
                }
            )
            return model
        if code in (EXT_DATACLASS, EXT_REGISTERED):
            ref, state = self.values.decode(data)
            cls = _resolve(code, ref)
            return _set_attributes(cls.__new__(cls), state)
        if code == EXT_SET:
            return set(self.values.decode(data))
        if code == EXT_FROZENSET:
            return frozenset(self.values.decode(data))
        if code == EXT_ENUM:
            ref, value = self.values.decode(data)
            return _resolve(code, ref)(value)
        if code == EXT_DATETIME:
            y, mo, d, h, mi, s, us, fold, tz = self.values.decode(data)
            return dt.datetime(y, mo, d, h, mi, s, us, _tz_in(tz), fold=fold)
        if code == EXT_DATE:
            return dt.date(*self.values.decode(data))
        if code == EXT_TIME:
            h, mi, s, us, fold, tz = self.values.decode(data)
            return dt.time(h, mi, s, us, _tz_in(tz), fold=fold)
        if code == EXT_TIMEDELTA:
            return dt.timedelta(*self.values.decode(data))
        if code == EXT_DECIMAL:
            return Decimal(self.values.decode(data))
        if code == EXT_UUID:
            return uuid.UUID(bytes=bytes(data))
        if code == EXT_NAMEDTUPLE:
            ref, items = self.values.decode(data)
            return tuple.__new__(_resolve(code, ref), items)
        if code == EXT_STRUCT:
            ref, fields = self.values.decode(data)
            return _resolve(code, ref)(**fields)
        if code == EXT_EXCEPTION:
            ref, args, attrs = self.values.decode(data)
            return _rebuild_exception(_resolve(code, ref), args, attrs)
        if code == EXT_BIGINT:
            return int.from_bytes(data, "big", signed=True)
        if code == EXT_COMPLEX:
            return complex(*self.values.decode(data))
        if code == EXT_CLASS:
            return _resolve(code, self.values.decode(data))
        if code == EXT_MAP:
            flat = self.values.decode(data)
            return dict(zip(flat[::2], flat[1::2], strict=True))
        if code == EXT_PICKLE:
            if not self.allow_pickle:
                raise SerializationError(
                    "refusing a pickled value: unpickling runs code chosen by the sender; "
                    "decode with allow_pickle=True only if you trust it"
                )
            return pickle.loads(data)
        raise SerializationError(f"unknown msgpack extension code {code}")

    # -- wire messages
    def message(self, obj: Any) -> Any:
        """A wire message with each value it carries replaced by its encoded ``msgspec.Raw``."""
        if type(obj) is tuple:
            return tuple(self._message_part(item) for item in obj)
        return self._message_part(obj)

    def _message_part(self, obj: Any) -> Any:
        cls = type(obj)
        if cls in _ATOMS or cls is msgspec.Raw or obj is msgspec.UNSET or _is_int64(obj):
            return obj  # msgspec writes these itself (an UNSET field is left out)
        if _is_wire_struct(cls):
            # The struct's own layout (array or map, with its tag) holding encoded values;
            # built as a list/dict, not a copy of the struct, whose __post_init__ would see Raws.
            config = cls.__struct_config__
            parts = [
                (name, self._message_part(value))
                for name in cls.__struct_fields__
                if (value := getattr(obj, name)) is not msgspec.UNSET
            ]
            if config.array_like:
                row = [value for _, value in parts]
                return row if config.tag is None else [config.tag, *row]
            fields = dict(parts)
            if config.tag is not None:
                fields = {config.tag_field: config.tag, **fields}
            return fields
        return msgspec.Raw(self.pack(obj))


def _is_int64(obj: Any) -> bool:
    return type(obj) is int and _INT64[0] <= obj <= _INT64[1]


_WIRE: dict[type, bool] = {}


def _is_wire_struct(cls: type) -> bool:
    """A Struct of subiso's own messages (encoded as the array its decoder expects)."""
    wire = _WIRE.get(cls)
    if wire is None:
        wire = _WIRE[cls] = issubclass(cls, msgspec.Struct) and (
            cls.__module__ == "subiso" or cls.__module__.startswith("subiso.")
        )
    return wire


def _is_message(obj: Any) -> bool:
    """A subiso wire Struct, or a tuple row (``(tag, rid, ...)``) carrying one or a Raw."""
    cls = type(obj)
    if cls is tuple:
        return any(t is msgspec.Raw or _is_wire_struct(t) for t in set(map(type, obj)))
    return _is_wire_struct(cls)


_SAFE = _Codec(allow_pickle=False)
_PICKLING = _Codec(allow_pickle=True)


def _codec(allow_pickle: bool) -> _Codec:
    return _PICKLING if allow_pickle else _SAFE


def _encodes(value: Any) -> bool:
    try:
        _SAFE.pack(value)
    except Exception:
        return False
    return True


# -- encode / decode -----------------------------------------------------------------------------
_DECODERS: dict[tuple[Any, bool], msgspec.msgpack.Decoder[Any]] = {}


def decoder(type_: Any = Any, *, allow_pickle: bool = False) -> msgspec.msgpack.Decoder[Any]:
    """A cached msgpack decoder for ``type_`` that rebuilds the typed extension values."""
    key = (type_, allow_pickle)
    dec = _DECODERS.get(key)
    if dec is None:
        hook = _codec(allow_pickle).ext_hook
        dec = _DECODERS[key] = msgspec.msgpack.Decoder(type_, ext_hook=hook)
    return dec


def encode(
    obj: Any, *, label: str = "value", part: Any = None, allow_pickle: bool = False
) -> bytes:
    """Encode ``obj``; on failure raise SerializationError naming the key path of the culprit.

    ``obj`` is a value, or a wire message of subiso's (a tagged Struct such as ``Failed``, or its
    row form ``(tag, rid, ...)`` holding a Struct or ``msgspec.Raw``) whose values are encoded
    as values. ``part`` is the sub-object the path is reported for (e.g. the state inside a
    request envelope) and ``label`` its name in the message (``"state"``, ``"output"``).
    ``allow_pickle`` pickles values of classes with no typed form (see the module docstring).
    """
    codec = _codec(allow_pickle)
    try:
        if _is_message(obj):
            return _MSGPACK.encode(codec.message(obj))
        return codec.pack(obj)
    except (_TooDeep, RecursionError):
        raise SerializationError(f"cannot encode {label}: {_DEPTH_MESSAGE}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        target = obj if part is None else part
        raise serialization_error(target, label, exc, allow_pickle=allow_pickle) from None


def decode(
    data: bytes | memoryview, type_: Any = Any, *, label: str = "value", allow_pickle: bool = False
) -> Any:
    """Decode bytes from :func:`encode`; a failure (e.g. an unimportable class) names ``label``."""
    try:
        return decoder(type_, allow_pickle=allow_pickle).decode(data)
    except SerializationError as exc:
        raise SerializationError(f"cannot decode {label}: {exc}") from None
    except RecursionError:
        raise SerializationError(f"cannot decode {label}: {_DEPTH_MESSAGE}") from None
    except Exception as exc:
        raise SerializationError(f"cannot decode {label}: {type(exc).__name__}: {exc}") from None


def serialization_error(
    obj: Any, label: str, exc: BaseException, *, allow_pickle: bool = False
) -> SerializationError:
    """A SerializationError for ``obj`` naming the first value that cannot cross."""
    try:
        found = find_unencodable(obj, label, allow_pickle=allow_pickle)
    except RecursionError:
        found = None
    if found is None:
        return SerializationError(f"cannot encode {label}: {_reason(exc)}")
    path, culprit, reason = found
    return SerializationError(
        f"cannot encode {path}: {type(culprit).__module__}.{type(culprit).__qualname__} "
        f"cannot cross the boundary ({reason})"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Unencodable):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def find_unencodable(
    obj: Any, label: str = "value", *, allow_pickle: bool = False
) -> tuple[str, Any, str] | None:
    """``(key path, value, reason)`` of the first value that cannot be encoded, or None.

    Only called after an encode failed, so its cost (a Python walk) never hits the hot path.
    """
    codec = _codec(allow_pickle)
    for path, leaf in _walk(obj, label, codec):
        reason = _leaf_failure(leaf, codec)
        if reason is not None:
            return path, leaf, reason
    return None


def _walk(obj: Any, path: str, codec: _Codec) -> Iterator[tuple[str, Any]]:
    """Depth-first (path, leaf) pairs; containers and typed values are descended."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(key, f"{path}<key {key!r}>", codec)
            yield from _walk(value, f"{path}[{_fmt_key(key)}]", codec)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]", codec)
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield from _walk(value, f"{path}{{{value!r}}}", codec)
    elif isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            yield from _walk(getattr(obj, name), f"{path}.{name}", codec)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            if hasattr(obj, field.name):
                yield from _walk(getattr(obj, field.name), f"{path}.{field.name}", codec)
        yield path, obj  # the class itself (e.g. not importable)
    elif not isinstance(obj, _PLAIN) and _leaf_failure(obj, codec) is not None:
        # A typed value that fails: point inside it if we can.
        inner = _attributes(obj) if not isinstance(obj, BaseException) else {}
        pointed_inside = False
        for name, value in inner.items():
            for sub in _walk(value, f"{path}.{name}", codec):
                if _leaf_failure(sub[1], codec) is not None:
                    pointed_inside = True
                    yield sub
        if not pointed_inside:
            yield path, obj
    else:
        yield path, obj


def _fmt_key(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    return repr(key)


def _leaf_failure(leaf: Any, codec: _Codec = _SAFE) -> str | None:
    if type(leaf) in _ATOMS:
        return None
    try:
        codec.pack(leaf)
    except (_TooDeep, RecursionError):
        return _DEPTH_MESSAGE
    except Exception as exc:
        return _reason(exc)
    return None


# -- exceptions across the boundary --------------------------------------------------------------
class WireError(msgspec.Struct, array_like=True, frozen=True):
    """An exception as data: enough to re-raise it on the other side with its own type.

    ``args`` and ``attrs`` (the ``__dict__`` attributes) hold only values that encode; ``args``
    is None when they do not (the exception is then rebuilt with ``(message,)``).
    """

    module: str
    qualname: str
    message: str
    traceback: str
    args: list[Any] | None = None
    attrs: dict[str, Any] | None = None


def exception_to_wire(exc: BaseException) -> WireError:
    """Capture ``exc``: type name, message, traceback text, its encodable args and attributes."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    args, attrs = _exception_args_attrs(exc)
    cls = type(exc)
    return WireError(cls.__module__, cls.__qualname__, message, tb, args, attrs or None)


def exception_from_wire(err: WireError) -> BaseException:
    """Rebuild the exception with its own type (``__init__`` is not called), else
    :class:`RemoteError`; ``__cause__`` carries the remote traceback text. Never unpickles."""
    exc: BaseException | None = None
    try:
        cls = _import_ref(f"{err.module}:{err.qualname}")
        if isinstance(cls, type) and issubclass(cls, BaseException):
            args = (err.message,) if err.args is None else err.args
            exc = _rebuild_exception(cls, args, err.attrs)
    except Exception:
        exc = None
    if exc is None:
        exc = RemoteError(f"{err.module}.{err.qualname}: {err.message}")
    exc.__cause__ = RemoteTraceback(err.traceback)
    return exc
