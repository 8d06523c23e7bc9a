"""The process tier: warm worker processes, msgspec frames over pipes.

* :mod:`.host` - :class:`ProcessExecutor`: pool, dispatch, replies, supervision (host side);
* :mod:`.handle` - host-side records: a worker's handle and lifecycle, a pending run;
* :mod:`.worker` - **runs inside each worker process**: its loop, its channel to the host;
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
