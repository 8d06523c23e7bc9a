"""What becomes of the runs a dead worker held: :func:`triage`.

A worker process that dies (a segfault, ``os._exit``, the OOM killer, a kill after a timeout)
held runs in three situations, and each gets what is right for it:

* **not started** - its frame was still unread in the pipe (the worker's shared frame count
  says so): nothing of it ran, so it goes to another worker as if nothing happened;
* **the culprit** - the run the worker was killed for, or the only run it was running: it
  fails with ``WorkerCrashed`` (or ``RunTimeout`` for a kill after its timeout), ``culprit``
  being its own config;
* **collateral** - started, running beside the culprit: sent again, once, when that is safe -
  a read-only call; a run with a durable checkpointer and a thread_id, which resumes from its
  last checkpoint (``recover``); any run when the executor has ``retry_collateral`` - else it
  fails with ``WorkerCrashed`` naming the culprit. When several runs were running and none is
  known to be the culprit, each one sent again runs *alone* on its worker, so that if it
  crashes again it is the culprit, and is named.

A run whose thread's checkpoints lived only in that worker (``"memory"``) cannot go anywhere:
its history died with the worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import msgspec

from subiso.config import GraphConfig
from subiso.errors import WorkerCrashed
from subiso.executors.process.handle import PendingRun
from subiso.runtime.call import Call


class Crash:
    """The ``WorkerCrashed`` one run gets, short of the worker's own description."""

    def __init__(self, pending: PendingRun, culprit: PendingRun | None, why: str) -> None:
        self.pending = pending
        self.culprit = culprit
        self.why = why

    def crashed(self, died: str) -> WorkerCrashed:
        """``died``: "worker process N was killed by SIGSEGV (exit code -11)" and the like."""
        graph = self.pending.graph
        culprit = self.culprit
        if culprit is self.pending:
            text = f"{died} while running {graph!r}; the pool replaced it"
        elif culprit is not None:
            text = (
                f"{died} while running {culprit.graph!r} (the run that crashed it) beside this "
                f"run of {graph!r}, which {self.why}; the pool replaced the worker"
            )
        else:
            text = f"{died} while running this run of {graph!r} and others; {self.why}"
        return WorkerCrashed(text, culprit=None if culprit is None else culprit.cfg)


Verdict = Call | Crash | Literal["timeout"]

_NOT_SAFE = (
    "could not be sent again safely: give it a durable checkpointer and a thread_id (it then "
    "resumes from its last checkpoint) or pass retry_collateral=True to run it again from its "
    "input"
)
_LOST = "kept its thread's checkpoints in that worker's memory, which died with it"


def triage(
    held: Sequence[PendingRun],
    frames_read: int,
    killed_for: PendingRun | None,
    retry_collateral: bool,
) -> Iterator[tuple[PendingRun, Verdict]]:
    """Each held run and what it gets: a Call to dispatch again, a Crash, or "timeout"."""
    started = [p for p in held if 0 < p.seq <= frames_read]

    culprit = killed_for if killed_for in held else None
    if culprit is None and len(started) == 1:
        culprit = started[0]
    for pending in held:
        if pending is culprit:
            if pending is killed_for and pending.timed_out:
                yield pending, "timeout"
            else:
                yield pending, Crash(pending, pending, "")
        elif pending.pinned():
            yield pending, Crash(pending, culprit, _LOST)
        elif pending not in started:
            yield pending, pending.call
        elif pending.retried:
            yield pending, Crash(pending, culprit, "had been sent again once already")
        elif pending.read_only() or pending.resumable() or retry_collateral:
            pending.retried = True
            pending.exclusive = culprit is None
            yield pending, _again(pending.call, recover=pending.resumable())
        else:
            why = (
                _NOT_SAFE
                if culprit is not None
                else f"which run crashed it is unknown; {_NOT_SAFE}"
            )
            yield pending, Crash(pending, culprit, why)


def _again(call: Call, *, recover: bool) -> Call:
    if not recover:
        return call
    cfg: GraphConfig = call.cfg.replace(recover=True)
    return msgspec.structs.replace(call, cfg=cfg)
