"""Wire messages (subiso's own Structs) laid out for one ``packb``.

A message such as ``RunOut(rid, call, window)`` becomes the lists and dicts msgspec's typed
decoder reads back as that Struct (array or map, with its tag), each field laid out by its
declared type: ``Any`` fields (and ``list[Any]``, ``dict[str, Any]``...) are values, left in
place for the value encoder, which keeps their types; nested wire Structs are laid out in turn;
``msgspec.Raw`` fields are spliced as the bytes they are; fields of any other type are written
by msgspec itself and spliced (a ``tuple[int, ...]`` field is an array, as its decoder wants).
The layout of each Struct class is worked out once, so a message costs a few list and dict
builds and one ``packb`` with its values, instead of one encode per field.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from subiso.codec.table import ATOMS, is_int64

_Raw = msgspec.Raw
_MSGPACK = msgspec.msgpack.Encoder()
_UNSET = msgspec.UNSET
asdict = msgspec.structs.asdict
astuple = msgspec.structs.astuple

try:  # pre-encoded msgpack spliced into a packb (ormsgpack 1.13+, Python 3.11+)
    import ormsgpack

    Fragment: Any = getattr(ormsgpack, "Fragment", None)
except ImportError:  # pragma: no cover
    Fragment = None


class Spliced:
    """msgpack bytes (a ``msgspec.Raw`` field, or what msgspec wrote for a field) to write as
    they are, where ormsgpack has no ``Fragment``: the tree then goes through the pre-pass
    (``Encoder.prepare``), which writes it as a ``Raw``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def splice(raw: Any) -> Any:
    """Bytes of msgpack to write as they are in a tree for ``packb``: an ormsgpack
    ``Fragment`` (1.13+, Python 3.11+) where it takes them, else a :class:`Spliced` (one that
    holds more than 255 levels makes the packer fall back to its pre-pass)."""
    view = memoryview(raw)
    whole = type(view.obj) is bytes and view.nbytes == len(view.obj)
    data: bytes = view.obj if whole else bytes(view)  # type: ignore[assignment]
    if Fragment is not None:
        try:
            return Fragment(data)
        except ValueError:  # it checks what it holds: nested past its 255-level limit
            pass
    return Spliced(data)


_ATOM, _NATIVE, _VALUE, _RAW, _STRUCT = range(5)
_ATOM_TYPES = (str, int, float, bool, type(None))
_WIRE: dict[type, bool] = {}


def is_wire_struct(cls: type) -> bool:
    """A Struct of subiso's own messages (laid out as its typed decoder expects)."""
    wire = _WIRE.get(cls)
    if wire is None:
        wire = _WIRE[cls] = issubclass(cls, msgspec.Struct) and (
            cls.__module__ == "subiso" or cls.__module__.startswith("subiso.")
        )
    return wire


def is_message(obj: Any) -> bool:
    """A subiso wire Struct, or a tuple row (``(tag, rid, ...)``) carrying one or a Raw."""
    cls = type(obj)
    if cls is tuple:
        return any(t is _Raw or is_wire_struct(t) for t in set(map(type, obj)))
    return is_wire_struct(cls)


def _kind_of(tp: Any) -> int:
    """How a field declared ``tp`` is laid out: see :func:`_layout`."""
    if tp is Any:
        return _VALUE
    if tp is msgspec.Raw:
        return _RAW
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None and isinstance(tp, type):  # (a list[Any] passes for a type on 3.10)
        if is_wire_struct(tp):
            return _STRUCT
        return _ATOM if issubclass(tp, _ATOM_TYPES) else _NATIVE
    if origin is typing.Literal:
        return _ATOM if all(isinstance(a, _ATOM_TYPES) for a in args) else _NATIVE
    kinds = {_kind_of(a) for a in args}
    if origin is typing.Union or origin is types.UnionType:
        if kinds != {_ATOM}:
            kinds.discard(_ATOM)  # None (or a str...) beside another kind: laid out as that one
        if len(kinds) == 1:
            return kinds.pop()
        if kinds & {_VALUE, _STRUCT, _RAW}:
            raise TypeError(f"wire field type {tp!r} mixes kinds the codec lays out apart")
        return _NATIVE
    if _VALUE in kinds:
        return _VALUE  # list[Any], dict[str, Any]...: a value whose parts keep their types
    if _STRUCT in kinds or _RAW in kinds:
        raise TypeError(f"wire field type {tp!r}: structs and Raw only as fields")
    return _NATIVE


_LAYOUTS: dict[type, Callable[[Any], Any]] = {}
_NATIVE_STRUCTS: dict[type, bool] = {}


def _struct_types(tp: Any) -> list[type]:
    """The wire Struct classes a field's declared type names (``Offloaded | None``...)."""
    if typing.get_origin(tp) is None and isinstance(tp, type):
        return [tp] if is_wire_struct(tp) else []
    return [c for arg in typing.get_args(tp) for c in _struct_types(arg)]


def is_native(cls: type) -> bool:
    """A wire Struct that holds no values (no ``Any`` field, nor in the Structs it holds):
    msgspec writes it whole, exactly as its decoder reads it - ``Raw`` fields as the bytes they
    are (a reply's ``Done``: one encode instead of a layout, a splice and a pack)."""
    native = _NATIVE_STRUCTS.get(cls)
    if native is None:
        native = True
        for f in msgspec.structs.fields(cls):
            kind = _kind_of(f.type)
            if kind == _STRUCT:
                native = all(is_native(c) for c in _struct_types(f.type))
            elif kind not in (_ATOM, _NATIVE, _RAW):
                native = False
            if not native:
                break
        _NATIVE_STRUCTS[cls] = native
    return native


def _layout(cls: type) -> Callable[[Any], Any]:
    """``obj -> list | dict``: the array (or map) msgspec's typed decoder reads as ``cls``.

    Fields declared ``Any`` (or holding ``Any``) stay as they are: values, packed with their
    types. ``Raw`` fields, fields of other types and nested Structs that hold no values are
    written by msgspec itself and spliced (a ``tuple[int, ...]`` field is an array, as its
    decoder wants); nested Structs that do hold values are laid out in turn.
    """
    layout = _LAYOUTS.get(cls)
    if layout is not None:
        return layout
    if is_native(cls):
        layout = _LAYOUTS[cls] = _natively
        return layout
    fields = msgspec.structs.fields(cls)
    config = cls.__struct_config__  # type: ignore[attr-defined]
    tag = config.tag
    kinds = {f.name: _kind_of(f.type) for f in fields}
    fix = [(name, kind) for name, kind in kinds.items() if kind in (_NATIVE, _STRUCT, _RAW)]
    if config.array_like:
        offset = 0 if tag is None else 1
        fix_at = [(offset + list(kinds).index(name), kind) for name, kind in fix]

        def array(obj: Any) -> Any:
            row = list(astuple(obj)) if tag is None else [tag, *astuple(obj)]
            for i, kind in fix_at:
                row[i] = _fixed(row[i], kind)
            return row

        layout = array
    else:
        renamed = {f.name: f.encode_name for f in fields if f.encode_name != f.name}
        unset = [f.name for f in fields if f.default is msgspec.UNSET]

        def mapping(obj: Any) -> Any:
            out = asdict(obj)
            for name, kind in fix:
                out[name] = _fixed(out[name], kind)
            for name in unset:
                if out[name] is _UNSET:
                    del out[name]
            for name, key in renamed.items():
                out[key] = out.pop(name)
            return out if tag is None else {config.tag_field: tag, **out}

        layout = mapping
    _LAYOUTS[cls] = layout
    return layout


def _natively(obj: Any) -> Any:
    return splice(_MSGPACK.encode(obj))


def _fixed(value: Any, kind: int) -> Any:
    """A field of ``kind`` as the tree holds it."""
    if kind == _STRUCT:
        return value if value is None else _layout(type(value))(value)
    if kind == _RAW:
        return splice(value)
    if type(value) in ATOMS or is_int64(value):
        return value
    return splice(_MSGPACK.encode(value))


def message_tree(obj: Any) -> Any:
    """A wire message as lists and dicts holding its values (see :func:`_layout`)."""
    if type(obj) is tuple:
        return [_row_item(item) for item in obj]
    return _layout(type(obj))(obj)


def _row_item(item: Any) -> Any:
    if type(item) is _Raw:
        return splice(item)
    return _layout(type(item))(item) if is_wire_struct(type(item)) else item
