"""What one Celery worker child keeps for subiso's tasks, and how a subiso task is sent.

* the worker's settings and its executor: built from the settings file on first need (the
  signals :func:`subiso.celery.install` connects build it as a child starts), shared by the
  child's tasks - ``subiso.run_graph`` and ``subiso serve``'s ``subiso.serve_run`` - and
  closed when the child shuts down;
* :func:`send`: the one way a subiso task is published, carrying the caller's trace context.

Apart from :mod:`subiso.celery` (the tasks and ``install``) so that what serves runs
(:mod:`subiso.serve.queue_worker`) uses the worker's executor without importing the tasks that
call it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import msgspec

from subiso.observe.trace import capture

log = logging.getLogger("subiso.celery")

_lock = threading.Lock()
_executor: Any = None
_settings: Any = None  # ResolvedSettings of this worker


# -- the worker's executor ---------------------------------------------------------------------
def resolved() -> Any:
    """This worker's settings (``subiso.load_executor``'s sources), read on first need."""
    global _settings
    if _settings is None:
        from subiso.settings import resolve_settings

        _settings = resolve_settings()
    return _settings


def worker_executor() -> Any:
    """This worker child's executor (built from the settings file on first need)."""
    global _executor
    with _lock:
        if _executor is None or _executor.closed:
            from subiso.settings import build_executor

            _executor = build_executor(resolved())
            log.info("subiso: %r for this worker (settings: %s)", _executor, resolved().describe())
        return _executor


def close_worker_executor(**_: Any) -> None:
    """Close this worker child's executor (its runs are over when Celery shuts a child down),
    and first what serves ``subiso serve``'s runs with it."""
    global _executor, _settings
    serving = sys.modules.get("subiso.serve.queue_worker")
    if serving is not None:
        serving.close_host()
    with _lock:
        executor, _executor, _settings = _executor, None, None
    if executor is not None:
        executor.close(wait=True)


def send(app: Any, name: str, payload: Any, **apply_async_options: Any) -> Any:
    """Send the subiso task ``name`` with ``payload``, carrying the caller's trace context."""
    carrier = capture()
    kwargs = {} if carrier is None else {"trace": msgspec.to_builtins(carrier)}
    return app.send_task(name, args=(payload,), kwargs=kwargs, **apply_async_options)
