"""The ``subiso`` command (also ``python -m subiso``): run, inspect, diagnose.

* ``subiso run CONFIG_OR_TARGET`` runs a GraphConfig file, a langgraph.json graph, an import
  path or a ``file.py:attr`` through the executor the settings choose (``--executor``
  overrides) and prints a summary of the output and the RunReport (``--output full``, ``--json``
  for more); ``--stream`` prints events as they happen; ``--resume`` continues an interrupted
  thread; ``--repeat``/``--concurrency`` run it many times with a progress line and a duration
  table.
* ``subiso info`` says what this Python can do, which tiers run here, what "auto" picks and
  which settings file is in effect.
* ``subiso doctor TARGET`` imports the target's modules in scratch subinterpreters and names
  what blocks isolation.

Exit codes: 0 ok (an interrupted run included); 1 the run failed (error printed without a
traceback unless ``-v``); 2 bad usage or bad config (click's own usage errors are 2 as well).
"""

from __future__ import annotations

from subiso.bench import cli as _bench_cli  # registers the `bench` command
from subiso.cli import _run  # registers the command
from subiso.cli._app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from subiso.cli._inspect import _target_modules, tier_availability, tier_status
from subiso.cli._serve import register as _register_serve

_register_serve()  # `subiso serve`, when the serve extra is installed

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "_target_modules",
    "main",
    "tier_availability",
    "tier_status",
]

if __name__ == "__main__":  # pragma: no cover
    main()
