"""Values -> bytes: ormsgpack writes plain data at C speed; Python runs only for the values
msgpack has no type for, once per such value.

**The hot path.** msgspec encodes tuples, dataclasses, enums, ``Decimal``... natively, so its
``enc_hook`` never sees them (msgspec issue #734, open) and a Python pre-pass over every value
would cost more than the encode itself. So values are encoded by ``ormsgpack`` (already
installed: ``langgraph-checkpoint`` requires it) with its ``OPT_PASSTHROUGH_*`` options, which
hand exactly the non-plain values to a ``default`` hook at C speed; plain data never runs
Python. A typed value's payload is packed by a nested ``packb`` whose hook is the next one of a
chain of hooks, one per nesting level (``Encoder.packer``): the level of a value is known from
which hook met it, so nesting is bounded (``MAX_DEPTH``) without any per-value bookkeeping.
Each class is looked at once: its *writer* (a function from instance to ``(code, payload)``)
is made on first sight and cached, so a pydantic model (a LangChain message) costs one dict
lookup, its state read directly (pydantic's own ``__getstate__`` when a class overrides it)
and one nested ``packb``. A value ormsgpack refuses as a whole (a dict with non-``str`` keys,
plain nesting deeper than 254 levels) takes a Python pre-pass that produces the same bytes.

**Wire messages** (subiso's own Structs, e.g. ``RunOut(rid, call, window)``) are turned into
the lists and dicts msgspec's typed decoder expects (their layout: array or map, with the tag),
leaving the values they carry in place, and the whole tree is packed by one ``packb``: a
field is laid out by its declared type (``Any`` fields are values, encoded with their types;
fields of other types as msgspec would write them; ``msgspec.Raw`` fields spliced as they are).
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from subiso.codec import paths
from subiso.codec.echo import ROLE as _ROLE
from subiso.codec.echo import ReceivedModels, SentModels, in_role
from subiso.codec.messages import Spliced, is_message, is_native, message_tree
from subiso.codec.table import (
    ATOMS,
    CLASS_CACHES,
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
    INT64,
    MAX_DEPTH,
    TooDeep,
    Unencodable,
    attributes,
    classify,
    is_int64,
    ref,
    tz_out,
)
from subiso.errors import SerializationError

try:
    import ormsgpack
except ImportError:  # pragma: no cover - a dependency of langgraph-checkpoint; the slow path
    ormsgpack = None  # type: ignore[assignment]

_KEY_ATOMS = ATOMS
_MSGPACK = msgspec.msgpack.Encoder()
_Ext = msgspec.msgpack.Ext
_Raw = msgspec.Raw
_UNSET = msgspec.UNSET

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
    # Pre-encoded msgpack spliced into a packb (ormsgpack 1.13+, Python 3.11+); without it a
    # message carrying spliced bytes is laid out by the pre-pass (msgspec) instead.
    _Fragment: Any = getattr(ormsgpack, "Fragment", None)
    # ormsgpack doubles its output buffer past 256 KiB (16 MiB for a 10 MB state). glibc
    # serves such a size with a fresh mmap, page-faulting every byte written and unmapping it
    # after (a 10 MB state packed in 8-12 ms instead of 1.8-2 ms, measured), until freeing a
    # larger mmapped block raises its adaptive mmap threshold. Freeing one 31 MiB block here
    # raises it to its ceiling (32 MiB) once, so buffers up to that size are reused from the
    # heap; the price is that the heap keeps up to twice that much once it has held it (glibc
    # trims past 2x the threshold). Harmless on other allocators.
    if sys.platform == "linux":
        bytes(31 << 20)
else:  # pragma: no cover
    _FAST_OPTIONS = 0
    _packb = None
    _FastExt = None
    _Fragment = None

#: A writer turns an instance into ``(code, payload)``, packing what it holds with ``pack``.
Writer = Callable[[Any, Callable[[Any], bytes]], "tuple[int, bytes]"]


class _Unspliced(Exception):
    """Bytes to splice that ormsgpack could not take as a Fragment (more than 255 levels in
    them): the packer falls back to its pre-pass, which writes them as a ``Raw``."""


class Encoder:
    """One flavour of the codec's encoding: with or without pickle for classes of no typed form,
    and for a process run's frame and output or not (``in_run``: pydantic models are numbered
    or echoed, see :mod:`subiso.codec.echo`; the other flavours never look for a run).

    ``pack(value)`` is the packer of nesting level 0; ``packer(n)`` the one a typed value at
    level ``n`` packs its contents with. Thread-safe: the only state per call is the failure
    a hook keeps for the packer that called ormsgpack (ormsgpack drops a hook's exception).
    """

    def __init__(self, allow_pickle: bool, in_run: bool = False) -> None:
        self.allow_pickle = allow_pickle
        self.in_run = in_run
        self._kept = threading.local()
        self._packers: list[Callable[[Any], bytes]] = []
        self._writers: dict[type, Writer] = {Spliced: _write_spliced}
        CLASS_CACHES.append(self._writers)
        self._grow_lock = threading.Lock()
        self.pack = self.packer(0)

    # -- the chain of packers, one per nesting level
    def packer(self, depth: int) -> Callable[[Any], bytes]:
        packers = self._packers
        if depth < len(packers):
            return packers[depth]
        if depth >= MAX_DEPTH:
            raise TooDeep(DEPTH_MESSAGE)
        with self._grow_lock:
            while len(packers) <= depth:
                packers.append(self._make_packer(len(packers)))
        return packers[depth]

    def _make_packer(self, depth: int) -> Callable[[Any], bytes]:
        kept = self._kept
        write = self.write
        prepare = self.prepare

        def hook(obj: Any) -> Any:
            try:
                code, payload = write(obj, depth + 1)
            except BaseException as exc:
                kept.error = exc
                raise TypeError("see the kept error") from None
            return _FastExt(code, payload)

        in_run = self.in_run

        def pack(obj: Any) -> bytes:
            if _packb is not None:
                role = _ROLE.get() if in_run else None
                sent = role.models if type(role) is SentModels else None
                mark = 0 if sent is None else len(sent)
                try:
                    return _packb(obj, default=hook, option=_FAST_OPTIONS)
                except TypeError:
                    if sent is not None:  # numbered again as the pre-pass writes them
                        del sent[mark:]
                    error, kept.error = getattr(kept, "error", None), None
                    try:
                        if error is not None and type(error) is not _Unspliced:
                            raise error from None
                    finally:
                        # the error's traceback holds this frame: break the cycle, or the
                        # value being encoded lives on until the cyclic collector runs
                        error = None
            return _MSGPACK.encode(prepare(obj, depth))

        return pack

    # -- one typed value
    def write(self, obj: Any, depth: int) -> tuple[int, bytes]:
        """``(code, payload)`` of a non-plain value whose contents are at nesting ``depth``."""
        cls = type(obj)
        writer = self._writers.get(cls)
        if writer is None:
            writer = self._writer(cls)
        return writer(obj, self.packer(depth))

    def _writer(self, cls: type) -> Writer:
        kind = classify(cls)
        make = _WRITERS.get(kind)
        if make is None:
            return self._no_typed_form
        # built once per class; raises Unencodable for a class not importable by its name
        in_run = self.in_run and kind == EXT_PYDANTIC
        writer = _in_run(_pydantic_flat(cls)) if in_run else make(cls)
        self._writers[cls] = writer
        return writer

    def _no_typed_form(self, obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
        if self.allow_pickle:
            try:
                return EXT_PICKLE, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise Unencodable(obj, f"cannot be pickled: {exc}") from None
        raise Unencodable(
            obj,
            "no typed form (not a dataclass, pydantic model, enum, NamedTuple, msgspec Struct, "
            "exception or registered class); make it a dataclass, decorate its class with "
            "@subiso.codec.register (in a module both sides import), or convert it to plain data",
        )

    # -- the Python pre-pass, for what ormsgpack refuses as a whole
    def prepare(self, obj: Any, depth: int) -> Any:
        """A tree msgspec encodes to the wire format."""
        cls = type(obj)
        if cls in ATOMS or (cls is int and INT64[0] <= obj <= INT64[1]):
            return obj
        if cls is Spliced:
            return _Raw(obj.data)
        if cls is _Fragment:
            return _Raw(_packb(obj))  # type: ignore[misc]
        if cls is list:
            return [self._prepare_item(v, depth) for v in obj]
        if cls is dict:
            if all(type(k) in _KEY_ATOMS or is_int64(k) for k in obj):
                return {k: self._prepare_item(v, depth) for k, v in obj.items()}
            flat: list[Any] = []
            for k, v in obj.items():
                flat.append(self._prepare_item(k, depth))
                flat.append(self._prepare_item(v, depth))
            return _Ext(EXT_MAP, _MSGPACK.encode(flat))
        if cls is bytearray or cls is memoryview:
            return bytes(obj)
        return _Ext(*self.write(obj, depth + 1))

    def _prepare_item(self, obj: Any, depth: int) -> Any:
        cls = type(obj)
        if cls in ATOMS or is_int64(obj):
            return obj
        if cls is Spliced:
            return _Raw(obj.data)
        if cls is _Fragment:
            return _Raw(_packb(obj))  # type: ignore[misc]
        return _Raw(self.packer(depth + 1)(obj))


def _write_spliced(spliced: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
    raise _Unspliced


# -- writers, one per kind, made once per class ---------------------------------------------------
def _items_writer(kind: int) -> Callable[[type], Writer]:
    return lambda cls: lambda obj, pack: (kind, pack(list(obj)))


def _pydantic_flat(cls: type) -> Callable[[Any], list[Any]]:
    """What a model of ``cls`` is written as: pydantic's own pickle state, as a list."""
    name = ref(cls)
    pydantic = sys.modules["pydantic"]
    if cls.__getstate__ is not pydantic.BaseModel.__getstate__:

        def custom(obj: Any) -> list[Any]:
            state = obj.__getstate__()
            try:
                return [
                    name,
                    state["__dict__"],
                    list(state["__pydantic_fields_set__"]),
                    state["__pydantic_extra__"],
                    state["__pydantic_private__"],
                ]
            except (KeyError, TypeError):
                raise Unencodable(obj, "its __getstate__ is not pydantic's") from None

        return custom
    undefined = sys.modules["pydantic_core"].PydanticUndefined

    def flat(obj: Any) -> list[Any]:
        # pydantic's BaseModel.__getstate__, read in place
        private = obj.__pydantic_private__
        if private:
            private = {k: v for k, v in private.items() if v is not undefined}
        fields_set = list(obj.__pydantic_fields_set__)
        return [name, obj.__dict__, fields_set, obj.__pydantic_extra__, private]

    return flat


def _pydantic_writer(cls: type) -> Writer:
    flat = _pydantic_flat(cls)
    return lambda obj, pack: (EXT_PYDANTIC, pack(flat(obj)))


def _in_run(flat: Callable[[Any], list[Any]]) -> Writer:
    """A model written in a run's frame (numbered) or output (a reference when unchanged);
    see :mod:`subiso.codec.echo`."""

    def write(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
        role = _ROLE.get()
        if type(role) is SentModels:
            payload = pack(flat(obj))
            role.models.append(obj)  # after its contents: the order the worker reads them in
            return EXT_PYDANTIC, payload
        if type(role) is ReceivedModels:
            read = role.models.get(id(obj))
            if read is not None and read[0] is obj:
                state = _in_host_order(obj, flat(obj), read[3])
                if role.whole:  # inside a model being compared: whole, as the host wrote it
                    return EXT_PYDANTIC, pack(state)
                return _echoed(role, state, read, pack)
        return EXT_PYDANTIC, pack(flat(obj))

    return write


def _in_host_order(obj: Any, state: list[Any], read_order: list[Any]) -> list[Any]:
    """``state`` with its fields set listed in the order the host wrote them, when the set
    is still the one read: a set's order follows this process's string hashes and the order
    it was filled in, so listing it again may not give the host's bytes back."""
    fields_set = state[2]
    if len(fields_set) == len(read_order) and obj.__pydantic_fields_set__.issuperset(read_order):
        state[2] = read_order
    return state


def _echoed(
    role: ReceivedModels,
    state: list[Any],
    read: tuple[Any, bytes, int, list[Any]],
    pack: Callable[[Any], bytes],
) -> tuple[int, bytes]:
    """A model the run's Call held, as ``state``: a reference if its bytes are those it came
    in as (models inside it are written whole, to be compared with it)."""
    role.whole = True
    try:
        payload = pack(state)
    finally:
        role.whole = False
    if payload == read[1]:
        return EXT_ECHO, read[2].to_bytes(4, "big")
    return EXT_PYDANTIC, payload


def _dataclass_writer(cls: type) -> Writer:
    name = ref(cls)
    names = [f.name for f in dataclasses.fields(cls)]

    def write(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
        state = attributes(obj)
        for field in names:
            if field not in state and hasattr(obj, field):
                state[field] = getattr(obj, field)
        return EXT_DATACLASS, pack([name, state])

    return write


def _enum_writer(cls: type) -> Writer:
    name = ref(cls)
    return lambda obj, pack: (EXT_ENUM, pack([name, obj.value]))


def _namedtuple_writer(cls: type) -> Writer:
    name = ref(cls)
    return lambda obj, pack: (EXT_NAMEDTUPLE, pack([name, list(obj)]))


def _struct_writer(cls: type) -> Writer:
    name = ref(cls)
    fields = cls.__struct_fields__  # type: ignore[attr-defined]

    def write(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
        # an UNSET field is left out, as msgspec does: the constructor sets it back
        state = {f: value for f in fields if (value := getattr(obj, f)) is not _UNSET}
        return EXT_STRUCT, pack([name, state])

    return write


def _exception_writer(cls: type) -> Writer:
    name = ref(cls)

    def write(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
        args, attrs = exception_args_attrs(obj)
        return EXT_EXCEPTION, pack([name, [str(obj)] if args is None else args, attrs])

    return write


def _registered_writer(cls: type) -> Writer:
    name = ref(cls)
    return lambda obj, pack: (EXT_REGISTERED, pack([name, attributes(obj)]))


def _datetime(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
    return EXT_DATETIME, pack(
        [
            obj.year,
            obj.month,
            obj.day,
            obj.hour,
            obj.minute,
            obj.second,
            obj.microsecond,
            obj.fold,
            tz_out(obj.tzinfo),
        ]
    )


def _time(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
    return EXT_TIME, pack(
        [obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold, tz_out(obj.tzinfo)]
    )


def _big_int(obj: Any, pack: Callable[[Any], bytes]) -> tuple[int, bytes]:
    return EXT_BIGINT, obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True)


def _fixed(write: Writer) -> Callable[[type], Writer]:
    return lambda cls: write


_WRITERS: dict[int, Callable[[type], Writer]] = {
    EXT_TUPLE: _items_writer(EXT_TUPLE),
    EXT_SET: _items_writer(EXT_SET),
    EXT_FROZENSET: _items_writer(EXT_FROZENSET),
    EXT_PYDANTIC: _pydantic_writer,
    EXT_DATACLASS: _dataclass_writer,
    EXT_ENUM: _enum_writer,
    EXT_NAMEDTUPLE: _namedtuple_writer,
    EXT_STRUCT: _struct_writer,
    EXT_EXCEPTION: _exception_writer,
    EXT_REGISTERED: _registered_writer,
    EXT_DATETIME: _fixed(_datetime),
    EXT_DATE: _fixed(lambda obj, pack: (EXT_DATE, pack([obj.year, obj.month, obj.day]))),
    EXT_TIME: _fixed(_time),
    EXT_TIMEDELTA: _fixed(
        lambda obj, pack: (EXT_TIMEDELTA, pack([obj.days, obj.seconds, obj.microseconds]))
    ),
    EXT_DECIMAL: _fixed(lambda obj, pack: (EXT_DECIMAL, pack(str(obj)))),
    EXT_UUID: _fixed(lambda obj, pack: (EXT_UUID, obj.bytes)),
    EXT_BIGINT: _fixed(_big_int),
    EXT_COMPLEX: _fixed(lambda obj, pack: (EXT_COMPLEX, pack([obj.real, obj.imag]))),
    EXT_CLASS: _fixed(lambda obj, pack: (EXT_CLASS, pack(ref(obj)))),
}

_SAFE = Encoder(allow_pickle=False)
_PICKLING = Encoder(allow_pickle=True)
_IN_RUN = {False: Encoder(allow_pickle=False, in_run=True), True: Encoder(True, in_run=True)}


def encoder(allow_pickle: bool, in_run: bool = False) -> Encoder:
    if in_run:
        return _IN_RUN[allow_pickle]
    return _PICKLING if allow_pickle else _SAFE


def encodes(value: Any) -> bool:
    try:
        _SAFE.pack(value)
    except Exception:
        return False
    return True


def exception_args_attrs(exc: BaseException) -> tuple[list[Any] | None, dict[str, Any]]:
    """The ``args`` and attributes of ``exc`` that encode (the others are dropped)."""
    args = list(exc.args) if encodes(exc.args) else None
    attrs = {k: v for k, v in attributes(exc).items() if encodes(v)}
    if isinstance(exc, OSError):
        for name in ("filename", "filename2"):
            value = getattr(exc, name, None)
            if value is not None and encodes(value):
                attrs[name] = value
    return args, attrs


# -- encode --------------------------------------------------------------------------------------
def encode(
    obj: Any,
    *,
    label: str = "value",
    part: Any = None,
    allow_pickle: bool = False,
    role: SentModels | ReceivedModels | None = None,
) -> bytes:
    """Encode ``obj``; on failure raise SerializationError naming the key path of the culprit.

    ``obj`` is a value, or a wire message of subiso's (a tagged Struct such as ``Failed``, or its
    row form ``(tag, rid, ...)`` holding a Struct or ``msgspec.Raw``) whose values are encoded
    as values. ``part`` is the sub-object the path is reported for (e.g. the state inside a
    request envelope) and ``label`` its name in the message (``"state"``, ``"output"``).
    ``allow_pickle`` pickles values of classes with no typed form (see :mod:`subiso.codec`).
    ``role``: number the models of a run's frame (host), or write those of its output that
    came in unchanged as references (worker); see :mod:`subiso.codec.echo`.
    """
    return in_role(role, _encode, obj, label, part, encoder(allow_pickle, role is not None))


def _encode(obj: Any, label: str, part: Any, enc: Encoder) -> bytes:
    try:
        if not is_message(obj):
            return enc.pack(obj)
        if type(obj) is not tuple and is_native(type(obj)):
            return _MSGPACK.encode(obj)
        tree = message_tree(obj)
        if _Fragment is None:  # no splicing in ormsgpack (Python 3.10): msgspec lays it out
            return _MSGPACK.encode(enc.prepare(tree, 0))
        return enc.pack(tree)
    except (TooDeep, RecursionError):
        raise SerializationError(f"cannot encode {label}: {DEPTH_MESSAGE}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        target = obj if part is None else part
        raise paths.error_for(target, label, exc, enc.pack) from None


def serialization_error(
    obj: Any, label: str, exc: BaseException, *, allow_pickle: bool = False
) -> SerializationError:
    """A SerializationError for ``obj`` naming the first value that cannot cross."""
    return paths.error_for(obj, label, exc, encoder(allow_pickle).pack)


def find_unencodable(
    obj: Any, label: str = "value", *, allow_pickle: bool = False
) -> tuple[str, Any, str] | None:
    """``(key path, value, reason)`` of the first value that cannot be encoded, or None.

    Only called after an encode failed, so its cost (a Python walk) never hits the hot path.
    """
    return paths.culprit(obj, label, encoder(allow_pickle).pack)
