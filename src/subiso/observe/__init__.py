"""What makes a run visible wherever it executes, in one place for every tier (and the server).

* :mod:`.runs` - a run's identity: :class:`~.runs.RunInfo` (run id, submit time, the caller's
  trace context as plain strings) travels with every :class:`~subiso.runtime.call.Call`;
  :class:`~.runs.RunTag` is its live form where the run executes, held in a context variable
  that the run's nodes (threads and tasks alike) inherit.
* :mod:`.trace` - capture the caller's LangSmith and OpenTelemetry context at submit, restore
  it around the graph call in the worker (neither library is imported unless the caller had
  imported it).
* :mod:`.log` - the ``subiso.<tier>`` loggers, per-run records, ``run_id``/``tier``/
  ``thread_id`` attributes on every record a run emits, and the plumbing that brings records
  from worker processes and interpreters to the host's handlers.
* :mod:`.metrics` - :class:`~.metrics.ExecutorStats` (``Executor.stats()``) and the optional
  OpenTelemetry instruments.
* :mod:`.loop_health` - loop lag probes, the blocked-loop watchdog, leftover-task reports.

Everything here runs on the host or in a worker that can import msgspec; code inside
subinterpreters has its own stdlib-only counterpart in
:mod:`subiso.executors.subinterpreter.interp_side`.
"""
