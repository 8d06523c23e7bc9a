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

import operator
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from subiso.codec.table import ATOMS, is_int64

_Raw = msgspec.Raw
_MSGPACK = msgspec.msgpack.Encoder()
_UNSET = msgspec.UNSET


class Spliced:
    """A wire message's ``msgspec.Raw`` field: msgpack bytes to splice as they are."""

    __slots__ = ("data",)

    def __init__(self, raw: Any) -> None:
        view = memoryview(raw)
        whole = type(view.obj) is bytes and view.nbytes == len(view.obj)
        self.data: bytes = view.obj if whole else bytes(view)  # type: ignore[assignment]


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
    if isinstance(tp, type):
        if is_wire_struct(tp):
            return _STRUCT
        return _ATOM if issubclass(tp, _ATOM_TYPES) else _NATIVE
    origin, args = typing.get_origin(tp), typing.get_args(tp)
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


def _layout(cls: type) -> Callable[[Any], Any]:
    """``obj -> list | dict``: the array (or map) msgspec's typed decoder reads as ``cls``.

    Fields declared ``Any`` (or holding ``Any``) stay as they are: values, packed with their
    types; nested wire Structs are laid out in turn; other fields are converted as msgspec
    are written by msgspec and spliced (a ``tuple[int, ...]`` field is an array).
    """
    layout = _LAYOUTS.get(cls)
    if layout is not None:
        return layout
    fields = msgspec.structs.fields(cls)
    config = cls.__struct_config__  # type: ignore[attr-defined]
    names = [f.name for f in fields]
    keys = [f.encode_name for f in fields]
    getter: Callable[[Any], Any]
    if len(names) > 1:
        getter = operator.attrgetter(*names)
    elif names:
        getter = lambda obj: (getattr(obj, names[0]),)  # noqa: E731
    else:
        getter = lambda obj: ()  # noqa: E731
    kinds = [_kind_of(f.type) for f in fields]
    fix = [(i, kind) for i, kind in enumerate(kinds) if kind in (_NATIVE, _STRUCT, _RAW)]
    unset = [i for i, f in enumerate(fields) if f.default is msgspec.UNSET]
    tag = config.tag

    def lay_out(obj: Any) -> Any:
        row = list(getter(obj))
        for i, kind in fix:
            value = row[i]
            if kind == _STRUCT:
                if value is not None:
                    row[i] = _layout(type(value))(value)
            elif kind == _RAW:
                row[i] = Spliced(value)
            elif type(value) not in ATOMS and not is_int64(value):
                row[i] = Spliced(_MSGPACK.encode(value))
        if config.array_like:
            return row if tag is None else [tag, *row]
        out = dict(zip(keys, row, strict=True))
        for i in unset:
            if row[i] is _UNSET:
                del out[keys[i]]
        return out if tag is None else {config.tag_field: tag, **out}

    _LAYOUTS[cls] = lay_out
    return lay_out


def message_tree(obj: Any) -> Any:
    """A wire message as lists and dicts holding its values (see :func:`_layout`)."""
    if type(obj) is tuple:
        return [_row_item(item) for item in obj]
    return _layout(type(obj))(obj)


def _row_item(item: Any) -> Any:
    if type(item) is _Raw:
        return Spliced(item)
    return _layout(type(item))(item) if is_wire_struct(type(item)) else item
