"""``subiso serve``: LangGraph's Agent Server API on subiso's tiers.

The flow of one run, by module:

* :mod:`~subiso.serve.app` - the Starlette application, its start and stop, the token check;
  :mod:`~subiso.serve.routes` - one handler per route the official client calls (the store's
  in :mod:`~subiso.serve.store_routes`);
  :mod:`~subiso.serve.schemas` - request bodies, validated (422 naming the field);
* :mod:`~subiso.serve.runs` - the run's life: pending, claimed, executed through an engine
  (a subiso executor of the chosen tier), ended with a status; multitask
  strategies, cancel, requeue at shutdown;
* :mod:`~subiso.serve.events` - the run's chunks as the API's events;
  :mod:`~subiso.serve.bus` - those events on their way to the requests following the run;
  :mod:`~subiso.serve.sse` - written as Server-Sent Events;
* :mod:`~subiso.serve.queue` - queue mode (``--queue``): claimed runs sent as Celery tasks,
  cancels sent to the worker running them; :mod:`~subiso.serve.queue_worker` - the task's
  body on a Celery worker, where the run's whole life then happens;
  :mod:`~subiso.serve.redis_bus` - the events over Redis pub/sub, across servers and workers;
* :mod:`~subiso.serve.store` - assistant, thread and run rows (SQLite or PostgreSQL);
* :mod:`~subiso.serve.graphs` / :mod:`~subiso.serve.describe` - langgraph.json, and the graphs'
  drawings and schemas computed in a child process.

Graph code never runs in the server process's event loop: runs, state reads and state
updates go through the executor of the chosen tier (queue mode: runs go to the workers).
"""

from __future__ import annotations

__all__ = ["ServeOptions", "create_app"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from subiso.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'subiso.serve' has no attribute {name!r}")
