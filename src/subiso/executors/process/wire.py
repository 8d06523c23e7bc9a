"""The messages a ProcessExecutor host and its workers exchange, used on both sides.

msgspec msgpack, array-like tagged structs, one length-prefixed frame per message:

* host -> worker, run pipe: :class:`Run` ``(rid, call, window)``, :class:`Stop` (drain and exit);
* host -> worker, control pipe: :class:`Cancel` ``(rid)``, :class:`CancelQueued` ``(rids)``
  (cancel those of the runs that have not started), :class:`Credit` ``(rid, n)`` (events taken);
* worker -> host, run pipe: :class:`Hello` ``(pid, preload_error)`` once at start, then per
  run any number of :class:`Event` then exactly one of :class:`Done`, :class:`Failed` or
  :class:`Cancelled`; at any time :class:`Log` (a log record, for the host's handlers) and
  :class:`LoopLag` (a lag probe's measurement of the worker's loop).

:class:`WorkerSettings` is what a worker starts with (passed as its process's argument).

Payloads (the call, events and the output) travel as ``msgspec.Raw`` so a payload that fails to decode
fails only its own run, with the run id still known.
"""

from __future__ import annotations

from typing import Any

import msgspec

from subiso import codec
from subiso.report import RunReport
from subiso.runtime.call import Call


class Run(msgspec.Struct, array_like=True, tag=0):
    """A run, as the worker reads it: ``call`` stays raw until the run id is known.
    ``window``: how many events it may send before it waits for a :class:`Credit` (0: the
    caller reads no events)."""

    rid: int
    call: msgspec.Raw
    window: int = 0


class RunOut(msgspec.Struct, array_like=True, tag=0):
    """The same frame as :class:`Run`, as the host writes it: ``call`` encoded in place."""

    rid: int
    call: Call
    window: int = 0


class Credit(msgspec.Struct, array_like=True, tag=4):
    """The caller took ``n`` more of run ``rid``'s events: it may send ``n`` more."""

    rid: int
    n: int


class Cancel(msgspec.Struct, array_like=True, tag=1):
    rid: int


class CancelQueued(msgspec.Struct, array_like=True, tag=2):
    rids: list[int]


class Stop(msgspec.Struct, array_like=True, tag=3):
    pass


class Hello(msgspec.Struct, array_like=True, tag=10):
    pid: int
    preload_error: str | None = None


class Done(msgspec.Struct, array_like=True, tag=11):
    rid: int
    output: msgspec.Raw
    report: RunReport
    span_s: float  # frame received -> reply encoded, inside the worker
    encode_s: float
    decode_s: float


class Failed(msgspec.Struct, array_like=True, tag=12):
    rid: int
    error: codec.WireError
    span_s: float = 0.0
    tainted: bool = False  # the run timed out but left threads running: retire the worker


class Cancelled(msgspec.Struct, array_like=True, tag=13):
    rid: int


class Event(msgspec.Struct, array_like=True, tag=14):
    """One event of run ``rid``, as it happened."""

    rid: int
    payload: msgspec.Raw


class Log(msgspec.Struct, array_like=True, tag=15):
    """A log record emitted in the worker (``subiso.observe.records.to_dict``)."""

    record: dict[str, Any]


class LoopLag(msgspec.Struct, array_like=True, tag=16):
    """What the worker loop's lag probe measured, in seconds."""

    lag_s: float


ToWorker = Run | Stop
Control = Cancel | CancelQueued | Credit
ToHost = Hello | Done | Failed | Cancelled | Event | Log | LoopLag


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker process starts: the host's import path, working directory and environment
    (a forkserver started earlier has stale ones), what to import up front, its grace to stop,
    its ``worker_init``, the host's logger levels (it sends only records the host would take)
    and its loop's block threshold."""

    sys_path: list[str]
    cwd: str
    env: dict[str, str]
    preload: list[str]
    kill_grace: float
    worker_init: str | None
    log_levels: dict[str, int]
    loop_block_threshold: float
