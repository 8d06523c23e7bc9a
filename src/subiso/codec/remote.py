"""Exceptions across the boundary: :class:`WireError` and the two conversions.

An exception crosses as a WireError (type name, message, traceback text, ``args`` and the
``__dict__`` attributes that encode) and is rebuilt by :func:`exception_from_wire` with its
own type whatever its constructor takes (``__init__`` is not called), ``__cause__`` set to
:class:`subiso.errors.RemoteTraceback`; :class:`subiso.errors.RemoteError` stands in only when
the type cannot be imported. Nothing is unpickled.
"""

from __future__ import annotations

import traceback
from typing import Any

import msgspec

from subiso.codec.decode import rebuild_exception
from subiso.codec.encode import exception_args_attrs
from subiso.codec.table import import_ref
from subiso.errors import RemoteError, RemoteTraceback


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
    args, attrs = exception_args_attrs(exc)
    cls = type(exc)
    return WireError(cls.__module__, cls.__qualname__, message, tb, args, attrs or None)


def exception_from_wire(err: WireError) -> BaseException:
    """Rebuild the exception with its own type (``__init__`` is not called), else
    :class:`RemoteError`; ``__cause__`` carries the remote traceback text. Never unpickles."""
    exc: BaseException | None = None
    try:
        cls = import_ref(f"{err.module}:{err.qualname}")
        if isinstance(cls, type) and issubclass(cls, BaseException):
            args = (err.message,) if err.args is None else err.args
            exc = rebuild_exception(cls, args, err.attrs)
    except Exception:
        exc = None
    if exc is None:
        exc = RemoteError(f"{err.module}.{err.qualname}: {err.message}")
    exc.__cause__ = RemoteTraceback(err.traceback)
    return exc
