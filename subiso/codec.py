"""Bytes that cross a process (or interpreter) boundary: msgspec msgpack plus one extension hook.

Why msgspec: plain data (``dict``/``list``/``str``/``int``/``float``/``bool``/``None``/``bytes``)
is what LangGraph states and workflow inputs are made of, and msgspec encodes and decodes it in C
without running any Python per value: a ~1 MB contract-review state round-trips in 1.6-2.1x less
time than through pickle (``benchmarks/bench_process.py --only payload``). That is the hot path.

**The extension hook** (:func:`extension_encode` / :func:`extension_decode`): a value msgspec
cannot encode natively - a LangChain ``AIMessage``, a pydantic model, an arbitrary class - is
pickled into a msgpack ``Ext`` with code :data:`EXT_PICKLE` and unpickled on the other side, so it
arrives as the same type and compares equal. Only such values ever touch pickle; a state of
plain data never does.

What changes type on the way (msgspec encodes these natively, and generic decoding yields plain
data, exactly as after a JSON round trip): ``tuple``/``set``/``frozenset`` -> ``list``;
dataclasses, ``msgspec.Struct``, attrs classes -> ``dict``; ``NamedTuple`` -> ``list``; enums ->
their value; ``UUID``/``Decimal``/naive ``datetime``/``date``/``time``/``timedelta`` -> ``str``.
Timezone-aware datetimes stay datetimes. Send such values as pydantic models or your own
classes when the type matters.

A value that cannot cross at all (a lock, a generator, a lambda, an int wider than 64 bits)
raises :class:`subiso.errors.SerializationError` naming its key path, e.g.
``state["docs"][3]``; nothing has been sent at that point, so the worker is unharmed.

Exceptions cross as :class:`WireError` (type, message, traceback text, and the pickled exception
when it pickles) and are rebuilt by :func:`exception_from_wire` with their original type where
possible, ``__cause__`` set to :class:`subiso.errors.RemoteTraceback`.

This module is generic on purpose: the process tier uses it on both sides and the
subinterpreter tier on its host side.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import json
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import msgspec

from subiso.errors import RemoteTraceback, SerializationError, SubisoError

#: msgpack extension code of a pickled value (the one extension hook).
EXT_PICKLE = 1

_PLAIN = (str, int, float, bool, type(None), bytes, bytearray, memoryview)


# -- the extension hook ------------------------------------------------------------------------
def extension_encode(obj: Any) -> msgspec.msgpack.Ext:
    """msgspec ``enc_hook``: a value msgspec cannot encode becomes a pickled ``Ext``."""
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise _Unencodable(obj, exc) from None
    return msgspec.msgpack.Ext(EXT_PICKLE, data)


def extension_decode(code: int, data: memoryview) -> Any:
    """msgspec ``ext_hook``: the inverse of :func:`extension_encode`."""
    if code != EXT_PICKLE:
        raise SerializationError(f"unknown msgpack extension code {code}")
    return pickle.loads(data)


class _Unencodable(TypeError):
    """Raised inside the enc_hook; turned into SerializationError with a key path outside."""

    def __init__(self, obj: Any, cause: BaseException) -> None:
        super().__init__(f"{type(obj).__name__}: {cause}")
        self.obj = obj
        self.cause = cause


_ENCODER = msgspec.msgpack.Encoder(enc_hook=extension_encode)
_DECODERS: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def decoder(type_: Any = Any) -> msgspec.msgpack.Decoder[Any]:
    """A cached msgpack decoder for ``type_`` that understands the extension hook."""
    dec = _DECODERS.get(type_)
    if dec is None:
        dec = _DECODERS[type_] = msgspec.msgpack.Decoder(type_, ext_hook=extension_decode)
    return dec


# -- encode / decode ---------------------------------------------------------------------------
def encode(obj: Any, *, label: str = "value", part: Any = None) -> bytes:
    """Encode ``obj``; on failure raise SerializationError naming the key path of the culprit.

    ``part`` is the sub-object the path is reported for (e.g. the state inside a request
    envelope) and ``label`` its name in the message (``"state"``, ``"output"``).
    """
    try:
        return _ENCODER.encode(obj)
    except (TypeError, ValueError, OverflowError, pickle.PicklingError) as exc:
        raise serialization_error(obj if part is None else part, label, exc) from None


def decode(data: bytes | memoryview, type_: Any = Any, *, label: str = "value") -> Any:
    """Decode bytes from :func:`encode`; a failure (e.g. an unimportable class) names ``label``."""
    try:
        return decoder(type_).decode(data)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot decode {label}: {type(exc).__name__}: {exc}") from None


def serialization_error(obj: Any, label: str, exc: BaseException) -> SerializationError:
    """A SerializationError for ``obj`` naming the first value that cannot cross."""
    found = find_unencodable(obj, label)
    if found is None:
        return SerializationError(f"cannot encode {label}: {_reason(exc)}")
    path, culprit, reason = found
    return SerializationError(
        f"cannot encode {path}: {type(culprit).__module__}.{type(culprit).__qualname__} "
        f"cannot cross the boundary ({reason})"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Unencodable):
        exc = exc.cause
    return f"{type(exc).__name__}: {exc}"


def find_unencodable(obj: Any, label: str = "value") -> tuple[str, Any, str] | None:
    """``(key path, value, reason)`` of the first value that cannot be encoded, or None.

    Only called after an encode failed, so its cost (a Python walk) never hits the hot path.
    """
    for path, leaf in _walk(obj, label):
        reason = _leaf_failure(leaf)
        if reason is not None:
            return path, leaf, reason
    return None


def _walk(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Depth-first (path, leaf) pairs; containers msgspec handles natively are descended."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(key, f"{path}<key {key!r}>")
            yield from _walk(value, f"{path}[{_fmt_key(key)}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]")
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield from _walk(value, f"{path}{{{value!r}}}")
    elif isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            yield from _walk(getattr(obj, name), f"{path}.{name}")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from _walk(getattr(obj, field.name), f"{path}.{field.name}")
    elif not isinstance(obj, _PLAIN) and _leaf_failure(obj) is not None:
        # An object that goes through the extension hook and fails: point inside it if we can.
        inner = getattr(obj, "__dict__", None)
        if isinstance(inner, dict) and inner:
            before: str | None = path
            for name, value in inner.items():
                for sub in _walk(value, f"{path}.{name}"):
                    before = None
                    yield sub
            if before is not None:
                yield path, obj
        else:
            yield path, obj
    else:
        yield path, obj


def _fmt_key(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    return repr(key)


def _leaf_failure(leaf: Any) -> str | None:
    if isinstance(leaf, (str, float, bool, type(None), bytes)):
        return None
    try:
        _ENCODER.encode(leaf)
    except Exception as exc:
        return _reason(exc)
    return None


# -- exceptions across the boundary --------------------------------------------------------------
class WireError(msgspec.Struct, array_like=True, frozen=True):
    """An exception as data: enough to re-raise it on the other side with its own type."""

    module: str
    qualname: str
    message: str
    traceback: str
    pickled: bytes | None = None


class RemoteError(SubisoError):
    """Stands in for a worker-side exception whose type cannot be rebuilt in the caller."""


def exception_to_wire(exc: BaseException) -> WireError:
    """Capture ``exc`` with its traceback text; the pickled form only when it round-trips."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    pickled: bytes | None
    try:
        pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(pickled)  # an exception whose __init__ needs other args fails here
    except Exception:
        pickled = None
    cls = type(exc)
    return WireError(cls.__module__, cls.__qualname__, str(exc), tb, pickled)


def exception_from_wire(err: WireError) -> BaseException:
    """Rebuild the exception: unpickled, else its type called with the message, else
    :class:`RemoteError`; ``__cause__`` carries the remote traceback text."""
    exc = _unpickle_exception(err.pickled)
    if exc is None:
        exc = _construct_exception(err)
    if exc is None:
        exc = RemoteError(f"{err.module}.{err.qualname}: {err.message}")
    exc.__cause__ = RemoteTraceback(err.traceback)
    return exc


def _unpickle_exception(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        exc = pickle.loads(data)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def _construct_exception(err: WireError) -> BaseException | None:
    try:
        module = builtins if err.module == "builtins" else importlib.import_module(err.module)
        cls: Any = module
        for part in err.qualname.split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls(err.message)
    except Exception:
        pass
    return None
