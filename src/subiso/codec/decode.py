"""Bytes -> values: msgspec decodes, and calls :meth:`Decoder.ext_hook` once per typed value.

The hook looks the code up in a table of readers (the pydantic model, the commonest typed value
in LangGraph states, is tested first); a reader decodes the payload and rebuilds the value
without calling ``__init__``: classes come from :func:`subiso.codec.table.resolve`, which
checks the named class is of the code's kind before anything is built from it.
"""

from __future__ import annotations

import datetime as dt
import pickle
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from subiso.codec.echo import ROLE, ReceivedModels, SentModels, in_role
from subiso.codec.table import (
    DEPTH_MESSAGE,
    EXT_BIGINT,
    EXT_CLASS,
    EXT_COMPLEX,
    EXT_DATACLASS,
    EXT_DATE,
    EXT_DATETIME,
    EXT_DECIMAL,
    EXT_ECHO,
    EXT_ENUM,
    EXT_EXCEPTION,
    EXT_FROZENSET,
    EXT_MAP,
    EXT_NAMEDTUPLE,
    EXT_PICKLE,
    EXT_PYDANTIC,
    EXT_REGISTERED,
    EXT_SET,
    EXT_STRUCT,
    EXT_TIME,
    EXT_TIMEDELTA,
    EXT_TUPLE,
    EXT_UUID,
    resolve,
    set_attributes,
    tz_in,
)
from subiso.errors import SerializationError

_set = object.__setattr__
_new = object.__new__


class Decoder:
    """One flavour of the codec's decoding: with or without unpickling (code 1), and for a
    process run's Call and output or not (``in_run``: the worker numbers the Call's models,
    the host resolves the output's references to them, see :mod:`subiso.codec.echo`; the
    other flavours never look for a run)."""

    def __init__(self, allow_pickle: bool, in_run: bool = False) -> None:
        self.allow_pickle = allow_pickle
        self.in_run = in_run
        self.values = msgspec.msgpack.Decoder(ext_hook=self.ext_hook)
        self._decode = self.values.decode
        self._models: dict[str, tuple[Any, bool]] = {}  # by class name: see _model_class
        decode = self._decode
        self._readers: dict[int, Callable[[memoryview], Any]] = {
            EXT_TUPLE: lambda data: tuple(decode(data)),
            EXT_DATACLASS: self._attributes_of(EXT_DATACLASS),
            EXT_REGISTERED: self._attributes_of(EXT_REGISTERED),
            EXT_SET: lambda data: set(decode(data)),
            EXT_FROZENSET: lambda data: frozenset(decode(data)),
            EXT_ENUM: self._enum,
            EXT_DATETIME: self._datetime,
            EXT_DATE: lambda data: dt.date(*decode(data)),
            EXT_TIME: self._time,
            EXT_TIMEDELTA: lambda data: dt.timedelta(*decode(data)),
            EXT_DECIMAL: lambda data: Decimal(decode(data)),
            EXT_UUID: lambda data: uuid.UUID(bytes=bytes(data)),
            EXT_NAMEDTUPLE: self._namedtuple,
            EXT_STRUCT: self._struct,
            EXT_EXCEPTION: self._exception,
            EXT_BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
            EXT_COMPLEX: lambda data: complex(*decode(data)),
            EXT_CLASS: lambda data: resolve(EXT_CLASS, decode(data)),
            EXT_MAP: self._map,
            EXT_PICKLE: self._pickle,
            EXT_ECHO: self._echo,
        }

    def ext_hook(self, code: int, data: memoryview) -> Any:
        if code == EXT_PYDANTIC:
            return self._model(data)
        reader = self._readers.get(code)
        if reader is None:
            raise SerializationError(f"unknown msgpack extension code {code}")
        return reader(data)

    # -- readers
    def _model(self, data: memoryview) -> Any:
        name, fields, fields_set, extra, private = self._decode(data)
        found = self._models.get(name) if type(name) is str else None
        if found is None:
            found = self._models[name] = self._model_class(name)
        cls, fast = found
        model: Any
        if fast:  # pydantic's own BaseModel.__new__ and __setstate__, in place
            model = _new(cls)
            _set(model, "__pydantic_fields_set__", set(fields_set))
            _set(model, "__pydantic_extra__", extra)
            _set(model, "__pydantic_private__", private)
            _set(model, "__dict__", fields)
        else:
            model = cls.__new__(cls)
            model.__setstate__(
                {
                    "__dict__": fields,
                    "__pydantic_fields_set__": set(fields_set),
                    "__pydantic_extra__": extra,
                    "__pydantic_private__": private,
                }
            )
        if self.in_run:
            role = ROLE.get()
            if type(role) is ReceivedModels:  # a run's Call: numbered, its bytes kept
                role.add(model, data, fields_set)
        return model

    def _echo(self, data: memoryview) -> Any:
        """A model of the run's own input, sent back unchanged: the host's own object."""
        role = ROLE.get() if self.in_run else None
        number = int.from_bytes(data, "big")
        if type(role) is not SentModels:
            raise SerializationError(
                "a reference to a model of a run's input outside that run's output"
            )
        if not 0 <= number < len(role.models):
            raise SerializationError(
                f"a reference to model {number} of a run's input, which held "
                f"{len(role.models)} models"
            )
        return role.models[number]

    @staticmethod
    def _model_class(name: Any) -> tuple[Any, bool]:
        """The model class ``name`` names, and whether it keeps pydantic's own construction
        and ``__setstate__`` (then rebuilt in place)."""
        cls = resolve(EXT_PYDANTIC, name)
        base = sys.modules["pydantic"].BaseModel
        fast = cls.__new__ is _new and cls.__setstate__ is base.__setstate__
        return cls, fast

    def _attributes_of(self, code: int) -> Callable[[memoryview], Any]:
        decode = self._decode

        def read(data: memoryview) -> Any:
            name, state = decode(data)
            cls = resolve(code, name)
            return set_attributes(cls.__new__(cls), state)

        return read

    def _enum(self, data: memoryview) -> Any:
        name, value = self._decode(data)
        return resolve(EXT_ENUM, name)(value)

    def _datetime(self, data: memoryview) -> Any:
        y, mo, d, h, mi, s, us, fold, tz = self._decode(data)
        return dt.datetime(y, mo, d, h, mi, s, us, tz_in(tz), fold=fold)

    def _time(self, data: memoryview) -> Any:
        h, mi, s, us, fold, tz = self._decode(data)
        return dt.time(h, mi, s, us, tz_in(tz), fold=fold)

    def _namedtuple(self, data: memoryview) -> Any:
        name, items = self._decode(data)
        return tuple.__new__(resolve(EXT_NAMEDTUPLE, name), items)

    def _struct(self, data: memoryview) -> Any:
        name, fields = self._decode(data)
        return resolve(EXT_STRUCT, name)(**fields)

    def _exception(self, data: memoryview) -> Any:
        name, args, attrs = self._decode(data)
        return rebuild_exception(resolve(EXT_EXCEPTION, name), args, attrs)

    def _map(self, data: memoryview) -> Any:
        flat = self._decode(data)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def _pickle(self, data: memoryview) -> Any:
        if not self.allow_pickle:
            raise SerializationError(
                "refusing a pickled value: unpickling runs code chosen by the sender; "
                "decode with allow_pickle=True only if you trust it"
            )
        return pickle.loads(data)


def rebuild_exception(cls: type[BaseException], args: Any, attrs: Any) -> BaseException:
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


_FLAVOURS = {
    (pickle_, in_run): Decoder(pickle_, in_run)
    for pickle_ in (False, True)
    for in_run in (False, True)
}
_DECODERS: dict[tuple[Any, bool, bool], msgspec.msgpack.Decoder[Any]] = {}


def decoder(
    type_: Any = Any, *, allow_pickle: bool = False, in_run: bool = False
) -> msgspec.msgpack.Decoder[Any]:
    """A cached msgpack decoder for ``type_`` that rebuilds the typed extension values."""
    key = (type_, allow_pickle, in_run)
    dec = _DECODERS.get(key)
    if dec is None:
        hook = _FLAVOURS[allow_pickle, in_run].ext_hook
        dec = _DECODERS[key] = msgspec.msgpack.Decoder(type_, ext_hook=hook)
    return dec


def decode(
    data: bytes | memoryview,
    type_: Any = Any,
    *,
    label: str = "value",
    allow_pickle: bool = False,
    role: SentModels | ReceivedModels | None = None,
) -> Any:
    """Decode bytes from :func:`~subiso.codec.encode`; a failure (e.g. an unimportable class)
    names ``label``. ``role``: number the models of a run's Call as they are read (worker), or
    resolve the references its output holds to them (host); see :mod:`subiso.codec.echo`."""
    dec = decoder(type_, allow_pickle=allow_pickle, in_run=role is not None)
    return in_role(role, _decode, data, dec, label)


def _decode(data: bytes | memoryview, dec: msgspec.msgpack.Decoder[Any], label: str) -> Any:
    try:
        return dec.decode(data)
    except SerializationError as exc:
        raise SerializationError(f"cannot decode {label}: {exc}") from None
    except RecursionError:
        raise SerializationError(f"cannot decode {label}: {DEPTH_MESSAGE}") from None
    except Exception as exc:
        raise SerializationError(f"cannot decode {label}: {type(exc).__name__}: {exc}") from None
