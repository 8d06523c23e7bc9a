"""Bytes that cross a process (or interpreter) boundary: msgpack with typed extension types.

A value comes back with its own type and compares equal: plain data (``dict``/``list``/``str``/
``int``/``float``/``bool``/``None``/``bytes``) as msgpack's own types, everything else as a
typed msgpack ``Ext`` whose payload is itself msgpack (the table of codes:
:mod:`subiso.codec.table`). Nothing is pickled unless the caller opts in (``allow_pickle=True``),
and decoding never runs code named by the bytes: a class is imported from ``module:qualname``
and used only if it really is of the kind the ext code says.

The package, by responsibility:

* :mod:`~subiso.codec.table` - the wire format: extension codes, the classes they may name,
  :func:`register`;
* :mod:`~subiso.codec.encode` - values and wire messages to bytes (ormsgpack at C speed, Python
  once per typed value), and the key path of a value that cannot cross;
* :mod:`~subiso.codec.decode` - bytes to values (msgspec, a table of readers per code);
* :mod:`~subiso.codec.remote` - exceptions across the boundary (:class:`WireError`);
* :mod:`~subiso.codec.echo` - a run's input models that its output holds unchanged travel back
  as references to the caller's own objects (the process tier's run frames and replies).

**Classes** are rebuilt without calling ``__init__``, from the state they had: dataclasses and
registered classes via ``cls.__new__(cls)`` and ``object.__setattr__`` (frozen, ``slots=True`` and
``init=False`` fields included); NamedTuples via ``tuple.__new__``; msgspec Structs via their
generated ``__init__``; enums via ``cls(value)``. Pydantic v2 models (LangChain messages among
them) use the model's own ``__getstate__``/``__setstate__`` pair, i.e. pydantic's pickle path
minus pickle (read and written in place when the class keeps pydantic's own pair): it restores
``__dict__``, the fields set, extras and private attributes exactly, so an ``AIMessage``
compares equal, and costs no validation. (``langchain_core.load.dumpd``/``load`` would cover
only ``Serializable`` objects, re-validate every message and drop fields outside the
constructor's keyword arguments.) A class that is not importable under its ``module:qualname``
(defined in a function), or of no kind the table lists, raises
:class:`subiso.errors.SerializationError` naming its key path, e.g. ``state["docs"][3]``;
nothing has been sent at that point.

**Pickle, opt-in** (``encode(..., allow_pickle=True)`` / ``decode(..., allow_pickle=True)``):
values of any other class are pickled into code 1. Warning: unpickling runs code chosen by
whoever wrote the bytes, so a host that decodes worker output with ``allow_pickle=True`` lets
code in the worker run code in the host. Without the flag, code 1 is refused unread.

Generic on purpose: the process tier uses it on both sides and the subinterpreter tier on its
host side.
"""

from subiso.codec.decode import decode, decoder
from subiso.codec.encode import encode, find_unencodable, serialization_error
from subiso.codec.remote import WireError, exception_from_wire, exception_to_wire
from subiso.codec.table import (
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
    MAX_DEPTH,
    register,
)
from subiso.errors import RemoteError

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
