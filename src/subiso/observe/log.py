"""One log stream, tagged by run: the ``subiso.<tier>`` loggers and the run attributes.

**Loggers.** Everything a run's life produces is logged on its tier's logger
(``subiso.inline``, ``subiso.context``, ``subiso.thread``, ``subiso.subinterpreter``,
``subiso.process``): ``run started`` (DEBUG), ``run finished`` with its outcome and timings
(INFO; WARNING for an error, a timeout, a crash), and the host's side of failures (a worker
crashed, a run killed at its timeout, a run sent again, a worker replaced). Loop health (a
blocked loop, tasks left behind) uses the same loggers.

**Run attributes.** Every record emitted while a run executes - by subiso or by the run's own
nodes, on any thread or task of the run - carries ``run_id``, ``tier``, ``thread_id``
(LangGraph's) and ``interpreter_id`` as LogRecord attributes, so a JSON formatter emits them and
``%(run_id)s`` works in a format string (give a default for records outside runs:
``logging.Formatter(fmt, defaults={"run_id": "-"})``). They come from the run's
:data:`~subiso.observe.runs.CURRENT_RUN`, added when the record is made. ``extra={"run_id":
...}`` given by the caller wins: that is why this is done in ``Logger.makeRecord`` (wrapped
once, on first use) and not with a record factory, whose attributes an ``extra`` of the same
name would make ``makeRecord`` reject with a KeyError.

**Records from elsewhere.** Worker processes and interpreters send their records to the host
(:mod:`subiso.observe.records`), which replays them on the logger of the same name: the
host's handlers see every record of every tier.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import sys
import threading
import time
from typing import Any, TextIO

import msgspec

from subiso.errors import RunTimeout, WorkerCrashed
from subiso.observe.runs import CURRENT_RUN, RunTag

#: Outcomes a run ends with (``ExecutorStats.runs_completed`` keys, the log's ``outcome``).
OUTCOMES = ("done", "interrupted", "error", "timeout", "crashed", "cancelled")
_QUIET_OUTCOMES = frozenset({"done", "interrupted", "cancelled"})


def outcome_of(error: BaseException) -> str:
    """The outcome a run that raised ``error`` ended with."""
    if isinstance(error, RunTimeout):
        return "timeout"
    if isinstance(error, WorkerCrashed):
        return "crashed"
    if isinstance(error, (asyncio.CancelledError, cf.CancelledError)):
        return "cancelled"
    return "error"


_loggers: dict[str, logging.Logger] = {}
_install_lock = threading.Lock()
_installed = False


def logger_for(tier: str) -> logging.Logger:
    """The ``subiso.<tier>`` logger."""
    logger = _loggers.get(tier)
    if logger is None:
        logger = _loggers[tier] = logging.getLogger(f"subiso.{tier}")
    return logger


def install() -> None:
    """Add the current run's attributes to every record made while a run executes (once per
    process; see the module docstring)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        original = logging.Logger.makeRecord

        def makeRecord(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
            record = original(self, *args, **kwargs)
            tag = CURRENT_RUN.get()
            if tag is not None:
                tag_record(record, tag)
            return record

        makeRecord.__wrapped__ = original  # type: ignore[attr-defined]
        logging.Logger.makeRecord = makeRecord  # type: ignore[method-assign]
        _installed = True


def tag_record(record: logging.LogRecord, tag: RunTag) -> None:
    """Give ``record`` the run's attributes it does not have yet."""
    fields = record.__dict__
    for key, value in tag.attributes().items():
        fields.setdefault(key, value)


# -- a run's own records ---------------------------------------------------------------------
def run_started(tag: RunTag) -> None:
    logger = logger_for(tag.tier)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "run %s started: %s (queued %.3fs)",
            tag.run_id,
            tag.graph,
            tag.queue_wait_s,
            extra={"queue_wait_s": tag.queue_wait_s, **tag.attributes()},
        )


def run_finished(
    tag: RunTag, outcome: str, duration_s: float, error: BaseException | None = None
) -> None:
    """``run <id> <outcome>: <graph> in <duration> (queued ...)`` on the run's tier logger."""
    level = logging.INFO if outcome in _QUIET_OUTCOMES else logging.WARNING
    logger = logger_for(tag.tier)
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {
        "outcome": outcome,
        "duration_s": duration_s,
        "queue_wait_s": tag.queue_wait_s,
        **tag.attributes(),
    }
    if error is None:
        logger.log(
            level,
            "run %s %s: %s in %.3fs (queued %.3fs)",
            tag.run_id,
            outcome,
            tag.graph,
            duration_s,
            tag.queue_wait_s,
            extra=extra,
        )
        return
    extra["error_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
    logger.log(
        level,
        "run %s %s: %s after %.3fs: %s: %s",
        tag.run_id,
        outcome,
        tag.graph,
        duration_s,
        type(error).__name__,
        error,
        extra=extra,
    )


def for_run(
    tier: str,
    level: int,
    msg: str,
    *args: Any,
    run_id: str | None,
    thread_id: str | None = None,
    **extra: Any,
) -> None:
    """A record about a run, made outside it (the host hearing its worker died)."""
    logger = logger_for(tier)
    if logger.isEnabledFor(level):
        fields = {"run_id": run_id, "tier": tier, "thread_id": thread_id, **extra}
        logger.log(level, msg, *args, extra=fields)


# -- formatting (the command line's --log-format) ----------------------------------------------
#: A record's attributes that a JSON line always has, under these keys.
_JSON_FIELDS = {
    "levelname": "level",
    "name": "logger",
    "process": "pid",
    "threadName": "thread",
}
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [run %(run_id)s] %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, thread, every extra
    attribute (``run_id``, ``tier``, ``thread_id``, ``outcome``, ``duration_s``, ...) and the
    exception text. Encoded with msgspec (a dependency already); anything that is not JSON
    becomes its ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "message": record.getMessage(),
        }
        for attr, key in _JSON_FIELDS.items():
            data[key] = getattr(record, attr)
        for key, value in vars(record).items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc_text"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_text"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = record.stack_info
        return msgspec.json.encode(data, enc_hook=str).decode()


def configure(fmt: str = "text", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send records to ``stream`` (stderr) as text or JSON lines: the command line's
    ``--log-format``. Replaces the root logger's handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, defaults={"run_id": "-"}))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    install()
