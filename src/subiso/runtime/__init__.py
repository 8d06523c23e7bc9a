"""The per-event-loop worker runtime: what every tier, built-in or plugin, runs a GraphConfig with.

* :class:`WorkerRuntime` - what one worker keeps for its life: targets resolved once
  (``"pkg.mod:attr"``), loop-bound checkpointers created on the loop that uses them, graphs
  compiled against them; ``run_sync`` / ``run_async`` / ``run_once`` choose sync or async
  dispatch, enforce ``timeout`` and return a :class:`~subiso.RunResult` with its RunReport.
* :class:`LoopWorker` - a thread owning one event loop for its whole life, taking :class:`Job`
  objects (a GraphConfig and the future its outcome goes to) from any thread.
* :class:`LoopResources`, :class:`Target`, :class:`TargetCache` and the loop helpers - the parts,
  for tiers that assemble their own worker.

A plugin tier is an :class:`~subiso.executors.base.Executor` whose ``start`` hands GraphConfigs
to these (README, "Writing a tier").
"""

from __future__ import annotations

from subiso.runtime.call import Call
from subiso.runtime.execute import WorkerRuntime, current_interpreter_id
from subiso.runtime.loop_worker import STOP, Inbox, Job, LoopWorker, Outcome, QueueInbox
from subiso.runtime.loops import (
    call_off_running_loop,
    run_on_fresh_loop,
    running_loop,
    shutdown_loop,
)
from subiso.runtime.resources import LoopResources
from subiso.runtime.targets import Target, TargetCache, import_attr

__all__ = [
    "STOP",
    "Call",
    "Inbox",
    "Job",
    "LoopResources",
    "LoopWorker",
    "Outcome",
    "QueueInbox",
    "Target",
    "TargetCache",
    "WorkerRuntime",
    "call_off_running_loop",
    "current_interpreter_id",
    "import_attr",
    "run_on_fresh_loop",
    "running_loop",
    "shutdown_loop",
]
