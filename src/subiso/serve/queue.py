"""Queue mode (``subiso serve --queue redis://... --database postgresql://...``): runs are
Celery tasks that any number of ``celery worker`` processes, on any machine, execute.

The flow of one run::

    server   POST /runs -> row "pending" (PostgreSQL) -> claimed "running" -> CeleryQueue.send:
             task subiso.serve_run {run_id, database, graphs, timeout} (+ the request's trace)
    worker   queue_worker.serve_run: one execution at a time (a PostgreSQL advisory lock on
             the run id) -> RunManager.run_here: the run on this worker's executor, its
             events on the run's Redis channel, its end in the run and thread rows, then the
             thread's next run sent as a task
    servers  follow the run's channel (streams, waits and joins, on any server)

**The worker owns the run.** The server that accepted a run does not wait for it: the worker
that executes it writes its end and starts its thread's next run, running the same
:class:`~subiso.serve.runs.RunManager` code a local server runs. A server can stop, restart or
be one of several without a run depending on it - and no server ever takes a run that another
server "left running" (a second copy of a live run: Aegra's #502). LangGraph's own queue
workers own their runs the same way.

**Cancel** reaches the worker through Redis: a key (``subiso:cancel:<run_id>``, kept a week)
the worker reads when the run's task reaches it, and a ``CANCEL`` message on the run's
channel, which the worker running it follows.

**A killed worker** (its Celery child, SIGKILL): the task is ``acks_late`` with
``reject_on_worker_lost``, so Celery puts it back and another child takes it; the run is
still ``running`` in its row, and the new attempt continues it from its last checkpoint
(``GraphConfig.recover``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from subiso.observe.runs import TraceCarrier
from subiso.observe.trace import restore
from subiso.serve.bus import CANCEL

TASK_NAME = "subiso.serve_run"
CANCEL_KEY = "subiso:cancel:"
CANCEL_TTL_S = 7 * 24 * 3600


def celery_app(url: str) -> Any:
    """The server's Celery app: it only sends tasks (JSON only: a broker is a trust
    boundary)."""
    from celery import Celery

    app = Celery("subiso-serve", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return app


class CeleryQueue:
    """Where a server (or a worker, for a thread's next run) sends claimed runs; ``bus`` is the
    :class:`~subiso.serve.redis_bus.RedisBus` the cancels travel on."""

    def __init__(
        self,
        app: Any,
        bus: Any,
        *,
        database: str,
        graphs: dict[str, str],
        timeout: float | None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.bus = bus
        self.database = database
        self.graphs = dict(graphs)
        self.timeout = timeout
        self.options = dict(options or {})

    def job(self, run_id: str) -> dict[str, Any]:
        """The task's payload: the run, and what the worker needs to run it and the thread's
        next one (the workers check the database against their ``allowed_locations``, each
        graph against their ``allowed_graphs``)."""
        return {
            "run_id": run_id,
            "database": self.database,
            "graphs": self.graphs,
            "timeout": self.timeout,
        }

    async def send(self, run_id: str, trace: TraceCarrier | None) -> None:
        """Publish the run's task, in the run's request trace (``subiso.celery`` carries it)."""
        from subiso.celery_worker import send

        undo = restore(trace)
        try:  # kombu's producer blocks: off the loop (the thread takes this context along)
            await asyncio.to_thread(
                send, self.app, TASK_NAME, self.job(run_id), task_id=run_id, **self.options
            )
        finally:
            if undo is not None:
                undo()

    async def cancel(self, run_id: str, action: str) -> None:
        await self.bus.redis.set(CANCEL_KEY + run_id, action, ex=CANCEL_TTL_S)
        await self.bus.publish(run_id, CANCEL, {"action": action})

    async def cancelled(self, run_id: str) -> str | None:
        """The cancel sent for ``run_id`` before it reached a worker, if any."""
        action = await self.bus.redis.get(CANCEL_KEY + run_id)
        return None if action is None else bytes(action).decode()
