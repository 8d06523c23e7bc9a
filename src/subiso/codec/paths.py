"""Which value cannot cross, and where: the key path (``state["docs"][3].meta``) of the first
value the encoder refuses, for the SerializationError. Only called after an encode failed, so
its cost (a Python walk, encoding each leaf alone) never hits the hot path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from subiso.codec.table import ATOMS, DEPTH_MESSAGE, TooDeep, Unencodable, attributes
from subiso.errors import SerializationError

_PLAIN = (str, int, float, bool, type(None), bytes, bytearray, memoryview)
Pack = Callable[[Any], bytes]


def error_for(obj: Any, label: str, exc: BaseException, pack: Pack) -> SerializationError:
    """A SerializationError for ``obj`` naming the first value ``pack`` cannot encode."""
    try:
        found = culprit(obj, label, pack)
    except RecursionError:
        found = None
    if found is None:
        return SerializationError(f"cannot encode {label}: {_reason(exc)}")
    path, value, reason = found
    return SerializationError(
        f"cannot encode {path}: {type(value).__module__}.{type(value).__qualname__} "
        f"cannot cross the boundary ({reason})"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Unencodable):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def culprit(obj: Any, label: str, pack: Pack) -> tuple[str, Any, str] | None:
    """``(key path, value, reason)`` of the first value ``pack`` cannot encode, or None."""
    for path, leaf in _walk(obj, label, pack):
        reason = _leaf_failure(leaf, pack)
        if reason is not None:
            return path, leaf, reason
    return None


def _walk(obj: Any, path: str, pack: Pack) -> Iterator[tuple[str, Any]]:
    """Depth-first (path, leaf) pairs; containers and typed values are descended."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(key, f"{path}<key {key!r}>", pack)
            yield from _walk(value, f"{path}[{_fmt_key(key)}]", pack)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]", pack)
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield from _walk(value, f"{path}{{{value!r}}}", pack)
    elif isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            yield from _walk(getattr(obj, name), f"{path}.{name}", pack)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            if hasattr(obj, field.name):
                yield from _walk(getattr(obj, field.name), f"{path}.{field.name}", pack)
        yield path, obj  # the class itself (e.g. not importable)
    elif not isinstance(obj, _PLAIN) and _leaf_failure(obj, pack) is not None:
        # A typed value that fails: point inside it if we can.
        inner = attributes(obj) if not isinstance(obj, BaseException) else {}
        pointed_inside = False
        for name, value in inner.items():
            for sub in _walk(value, f"{path}.{name}", pack):
                if _leaf_failure(sub[1], pack) is not None:
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


def _leaf_failure(leaf: Any, pack: Pack) -> str | None:
    if type(leaf) in ATOMS:
        return None
    try:
        pack(leaf)
    except (TooDeep, RecursionError):
        return DEPTH_MESSAGE
    except Exception as exc:
        return _reason(exc)
    return None
