"""Log records as plain data, to carry them from a worker process or an interpreter to the host.

Standard library only: :mod:`subiso.executors.subinterpreter.interp_side` imports this inside
own-GIL interpreters, where msgspec does not load.

A record becomes a dict of strings, numbers and None (:func:`to_dict`): its message is
formatted where it was emitted (its ``args`` may not cross), its exception and stack become
text, and any attribute a formatter might read (``run_id``, ``extra=...`` fields) is kept, as
``repr`` when it is not a plain value. On the host, :func:`replay` rebuilds the record and hands
it to the logger of the same name, so the host's handlers, filters and formatters see it as if
it had been emitted there - with the worker's pid, thread and timestamps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

#: Attributes every LogRecord has (not "extra"), plus what formatters add.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}
_PLAIN = (str, int, float, bool, type(None))
_formatter = logging.Formatter()


def to_dict(record: logging.LogRecord) -> dict[str, Any]:
    """``record`` as plain data (see the module docstring)."""
    try:
        message = record.getMessage()
    except Exception:  # bad args: keep what was meant
        message = f"{record.msg!r} % {record.args!r}"
    data: dict[str, Any] = {
        "name": record.name,
        "levelno": record.levelno,
        "levelname": record.levelname,
        "msg": message,
        "pathname": record.pathname,
        "filename": record.filename,
        "module": record.module,
        "lineno": record.lineno,
        "funcName": record.funcName,
        "created": record.created,
        "msecs": record.msecs,
        "relativeCreated": record.relativeCreated,
        "thread": record.thread,
        "threadName": record.threadName,
        "processName": record.processName,
        "process": record.process,
    }
    task_name = getattr(record, "taskName", None)
    if task_name is not None:
        data["taskName"] = task_name
    if record.exc_info:
        data["exc_text"] = record.exc_text or _formatter.formatException(record.exc_info)
    elif record.exc_text:
        data["exc_text"] = record.exc_text
    if record.stack_info:
        data["stack_info"] = record.stack_info
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in data:
            data[key] = value if isinstance(value, _PLAIN) else repr(value)
    return data


def replay(data: dict[str, Any], **attributes: Any) -> None:
    """Hand a record that :func:`to_dict` made elsewhere to this process's logger of the same
    name (if it takes the record's level); ``attributes`` are added where the record lacks
    them (the run a record from an interpreter belongs to)."""
    try:
        logger = logging.getLogger(str(data.get("name") or "root"))
        if not logger.isEnabledFor(int(data.get("levelno", logging.WARNING))):
            return
        record = logging.makeLogRecord(data)
        record.args = None
        for key, value in attributes.items():
            record.__dict__.setdefault(key, value)
        logger.handle(record)
    except Exception:  # a malformed record must not take its reader down
        logging.getLogger("subiso").debug("could not replay a worker's log record", exc_info=True)


class ForwardingHandler(logging.Handler):
    """Sends each record, as :func:`to_dict` data, to ``send`` (a worker's channel to its
    host). Installed on a worker's root logger instead of any stream handler, so records reach
    the host's handlers, never the worker's stderr."""

    def __init__(self, send: Callable[[dict[str, Any]], None], level: int = logging.NOTSET):
        super().__init__(level)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(to_dict(record))
        except Exception:
            self.handleError(record)


class CollectingHandler(logging.Handler):
    """Keeps each record as :func:`to_dict` data until :meth:`take` (an interpreter returns
    them to the host with its reply)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(to_dict(record))
        except Exception:
            self.handleError(record)

    def take(self) -> list[dict[str, Any]]:
        records, self.records = self.records, []
        return records


def host_levels() -> dict[str, int]:
    """The levels set on this process's loggers (``""``: the root), for a worker to mirror so
    it sends only what the host's loggers would take."""
    levels = {"": logging.getLogger().level}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def route_to(handler: logging.Handler, levels: dict[str, int]) -> None:
    """Make ``handler`` the root logger's only handler, with the host's ``levels``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
