"""The messages a ProcessExecutor host and its workers exchange, used on both sides.

msgspec msgpack, array-like tagged structs, one length-prefixed frame per message:

* host -> worker, run pipe: :class:`Run` ``(rid, cfg)``, :class:`Stop` (drain and exit);
* host -> worker, control pipe: :class:`Cancel` ``(rid)``, :class:`CancelQueued` ``(rids)``
  (cancel those of the runs that have not started);
* worker -> host, run pipe: :class:`Hello` ``(pid, preload_error)`` once at start, then per
  run exactly one of :class:`Done`, :class:`Failed` or :class:`Cancelled`.

Payloads (``cfg`` and the output) travel as ``msgspec.Raw`` so a payload that fails to decode
fails only its own run, with the run id still known.
"""

from __future__ import annotations

import msgspec

from subiso import codec
from subiso.config import GraphConfig
from subiso.report import RunReport


class Run(msgspec.Struct, array_like=True, tag=0):
    """A run, as the worker reads it: ``cfg`` stays raw until the run id is known."""

    rid: int
    cfg: msgspec.Raw


class RunOut(msgspec.Struct, array_like=True, tag=0):
    """The same frame as :class:`Run`, as the host writes it: ``cfg`` encoded in place."""

    rid: int
    cfg: GraphConfig


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


ToWorker = Run | Stop
Control = Cancel | CancelQueued
ToHost = Hello | Done | Failed | Cancelled
