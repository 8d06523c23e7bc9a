"""The process tier: warm worker processes, msgspec frames over pipes.

Host side, :class:`ProcessExecutor` and its parts:

* :mod:`.host` - the executor's face (the tier hooks) and dispatch;
* :mod:`.dispatch` - the dispatch policy as plain functions: which worker gets a run, which
  runs an idle worker takes back; :mod:`.triage` - what becomes of a dead worker's runs;
* :mod:`.pool` - the worker pool's life: start, ready, retire, stop, bury, replace;
* :mod:`.replies` - reading replies (a sync caller reads its own) and settling runs;
* :mod:`.timers` - timeouts and kill grace; :mod:`.state` - what the parts share;
* :mod:`.handle` - host-side records: a worker's handle and lifecycle, a pending run;
* :mod:`.transport` - the run pipe, with large frames through shared memory.

Both sides:

* :mod:`.worker` - **runs inside each worker process**: its loop, its channel to the host
  (log records and loop lag included);
* :mod:`.main_module` - workers start without the caller's ``__main__`` and import it only
  when a run needs it (so scripts need no main guard otherwise);
* :mod:`.wire` - the messages both sides exchange.

One run, end to end::

    host (caller thread)                          worker process
    --------------------                          --------------
    start(cfg) ─ encode RunOut ─ run pipe ──────▶ PipeInbox.get ─ decode Run ─ Job
         │                                                        │
         │ (a sync caller reads its own reply;                    ▼
         │  else the worker's reader thread)            LoopWorker: sync run on the main
         │                                              thread, async run as a loop task
         ▼                                                        │
    decode Done/Failed ◀─────────────── run pipe ─ encode Done / Failed
         │
    settle the run's Future ─▶ caller
    timeout / cancel ─ Cancel ─ control pipe ──▶ control thread cancels the run's task
    no reply in kill_grace ─▶ kill, replace, RunTimeout;  worker exit ─▶ WorkerCrashed
"""

from __future__ import annotations

from subiso.executors.process.host import ProcessExecutor

__all__ = ["ProcessExecutor"]
