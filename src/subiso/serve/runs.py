"""A run's life on the server: created ``pending``, claimed ``running`` when its thread is free,
executed on a subiso executor, ended ``success``, ``error``, ``timeout`` or ``interrupted``
(or removed by a rollback).

* **One run per thread at a time.** A new run on a busy thread follows its
  ``multitask_strategy``: ``reject`` (409), ``enqueue`` (waits its turn), ``interrupt`` or
  ``rollback`` (the running run is cancelled - and, for rollback, its checkpoints and row
  deleted - then the new one starts). Turns are taken with :meth:`Rows.claim`, atomic in the
  database, so servers sharing one database never run a thread twice.
* **Graph code never runs here.** :class:`LocalEngine` hands each run to the executor of the
  chosen tier (``executor.submit_stream``) and only relays its chunks.
* **Queue mode** (``queue``, :mod:`subiso.serve.queue`): a claimed run is sent to the Celery
  workers instead of supervised here. The worker that takes it runs this same class
  (:meth:`RunManager.run_here`, :mod:`subiso.serve.queue_worker`) - executes the run on its
  executor, writes its end, starts the thread's next run - so a run never depends on the
  server that accepted it staying up.
* **Cancel** cancels the supervising task, which cancels the run on its worker (a
  process-tier run past its timeout is killed by the executor); in queue mode the request
  travels to the worker running it. A client leaving a stream cancels its run unless it asked
  for ``on_disconnect=continue``.
* **Shutdown** waits ``grace_s`` for running runs, then cancels the rest and puts them back to
  ``pending``; the next start claims them again with ``GraphConfig.recover`` set, so they
  continue from their last checkpoint. (Queue mode: runs live on the workers; a server stops
  without touching them.)

The run id is made once, in :func:`new_run_id` (time-ordered, as LangGraph's own ids), and is
the run's id everywhere: its row, its events, its checkpoints' metadata, LangGraph's
``config["run_id"]`` - so subiso's ``RunReport.run_id`` and the ``run_id`` of every log record
the run emits, on whichever tier it executes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from subiso.config import GraphConfig
from subiso.errors import ConfigError, RunTimeout
from subiso.observe.runs import TraceCarrier
from subiso.observe.trace import restore
from subiso.serve import store as rowstore
from subiso.serve.bus import CANCEL, DONE, Bus, LocalBus, Subscription
from subiso.serve.encode import error_payload, interrupt_of, jsonable
from subiso.serve.events import INTERRUPT, RunEvents, graph_modes
from subiso.serve.schemas import Invalid, RunCreate, check_run, coerce, command_of

log = logging.getLogger("subiso.serve")

Publish = Callable[[str, Any], Awaitable[None]]
#: How long a cancelled run's worker gets to stop it before the server moves on (a sync node
#: on the thread tier cannot be interrupted; the process tier kills past a run's timeout).
STOP_WAIT_S = 10.0


def new_run_id() -> str:
    """A time-ordered UUID (v6, LangGraph's checkpoint id scheme): runs sort by creation."""
    from langgraph.checkpoint.base.id import uuid6

    return str(uuid6())


class NotFound(Exception):
    """HTTP 404: the message names what is missing."""


class Busy(Exception):
    """HTTP 409: the thread runs another run and the strategy is ``reject``."""


class Unavailable(Exception):
    """HTTP 503: the server is shutting down."""


@dataclass
class Job:
    """One execution of a run: its GraphConfig and how the client wants it streamed."""

    run_id: str
    cfg: GraphConfig
    modes: list[str]
    subgraphs: bool


class Engine(Protocol):
    async def execute(self, job: Job, publish: Publish) -> RunEvents: ...

    async def state(self, cfg: GraphConfig) -> Any: ...

    async def history(self, cfg: GraphConfig, limit: int | None) -> list[Any]: ...

    async def update_state(self, cfg: GraphConfig, values: Any, as_node: str | None) -> Any: ...


class RunQueue(Protocol):
    """Where claimed runs go in queue mode (:class:`subiso.serve.queue.CeleryQueue`)."""

    async def send(self, run_id: str, trace: TraceCarrier | None) -> None: ...

    async def cancel(self, run_id: str, action: str) -> None: ...

    async def cancelled(self, run_id: str) -> str | None: ...


class LocalEngine:
    """Runs on an executor of this server (any tier): the run's chunks come back through an
    EventChannel and are relayed as events."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    async def execute(self, job: Job, publish: Publish) -> RunEvents:
        events = RunEvents(job.modes, job.subgraphs)
        modes: Any = graph_modes(job.modes)
        # made here, on the request's task: the run carries its id and the request's trace
        future, channel = self.executor.submit_stream(
            job.cfg, stream_mode=modes, subgraphs=job.subgraphs
        )
        try:
            async for chunk in channel:
                for name, data in events.take(chunk):
                    await publish(name, data)
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # Cancelled (a client, a multitask strategy, the shutdown): stop the run on its
            # worker and wait until it has stopped, so that nothing it writes - a checkpoint
            # a rollback is about to delete - comes after its status.
            channel.abandon()
            if not future.cancel():
                self.executor.cancel_running(future)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), STOP_WAIT_S)
            raise
        return events

    async def state(self, cfg: GraphConfig) -> Any:
        return await self.executor.aget_state(cfg)

    async def history(self, cfg: GraphConfig, limit: int | None) -> list[Any]:
        return list(await self.executor.aget_state_history(cfg, limit=limit))

    async def update_state(self, cfg: GraphConfig, values: Any, as_node: str | None) -> Any:
        return await self.executor.aupdate_state(cfg, values, as_node=as_node)


@dataclass
class _Live:
    task: asyncio.Task[RunEvents] | None = None
    action: str = "interrupt"
    started: asyncio.Event = field(default_factory=asyncio.Event)


class RunManager:
    """See the module docstring."""

    def __init__(
        self,
        rows: rowstore.Rows,
        graphs: Any,
        engine: Engine,
        bus: Bus | None = None,
        *,
        checkpointer: str,
        store: str | None,
        grace_s: float = 30.0,
        queue: RunQueue | None = None,
        run_timeout: float | None = None,
    ) -> None:
        self.rows = rows
        self.graphs = graphs
        self.engine = engine
        self.bus: Bus = bus if bus is not None else LocalBus()
        self.checkpointer = checkpointer
        self.store = store
        self.grace_s = grace_s
        self.queue = queue
        self.run_timeout = run_timeout
        self.accepting = True
        self._live: dict[str, _Live] = {}
        self._supervisors: set[asyncio.Task[None]] = set()
        self._recovered: set[str] = set()

    # -- creating --------------------------------------------------------------------------------
    def graph_config(
        self, run: dict[str, Any], body: RunCreate, *, recover: bool = False
    ) -> GraphConfig:
        """The GraphConfig of ``run``: the assistant's graph, the client's arguments, the
        server's checkpointer and store, and the ids in config and metadata."""
        graph_id = run["assistant_id"]
        target = self.graphs.target(graph_id)
        if target is None:
            raise NotFound(f"assistant {graph_id!r} not found")
        config = dict(body.config)
        configurable = dict(config.get("configurable") or {})
        configurable.update(thread_id=run["thread_id"], graph_id=graph_id, assistant_id=graph_id)
        checkpoint = body.checkpoint
        checkpoint_id = body.checkpoint_id or (checkpoint.checkpoint_id if checkpoint else None)
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        if checkpoint is not None and checkpoint.checkpoint_ns:
            configurable["checkpoint_ns"] = checkpoint.checkpoint_ns
        config["configurable"] = configurable
        metadata = {**(config.get("metadata") or {}), **body.metadata}
        metadata.update(
            run_id=run["run_id"],
            thread_id=run["thread_id"],
            graph_id=graph_id,
            assistant_id=graph_id,
        )
        config["metadata"] = metadata
        # the run's id is LangGraph's (its root run in LangSmith) and subiso's (its report and
        # every log record it emits)
        config["run_id"] = uuid.UUID(run["run_id"])
        durability = body.durability
        if durability is None and body.checkpoint_during is not None:
            durability = "async" if body.checkpoint_during else "exit"
        temporary = bool(run.get("temporary"))
        try:
            return GraphConfig(
                graph=target,
                input=command_of(body.command) if body.command is not None else body.input,
                config=config,
                context=body.context,
                durability=durability,
                interrupt_before=body.interrupt_before,
                interrupt_after=body.interrupt_after,
                checkpointer=None if temporary else self.checkpointer,
                store=self.store,
                recover=recover and not temporary,
                timeout=self.run_timeout,
            )
        except ConfigError as exc:
            raise Invalid(str(exc).replace("GraphConfig.", "")) from None

    async def create(
        self,
        thread_id: str | None,
        body: RunCreate,
        *,
        follow: bool = False,
        trace: TraceCarrier | None = None,
    ) -> tuple[dict[str, Any], Subscription | None]:
        """Validate, queue and (when its thread is free) start a run; with ``follow``, a
        subscription to its events made before it can start. ``trace``: the request's trace
        context, restored where the run starts (so its nodes are in the client's trace)."""
        if not self.accepting:
            raise Unavailable("the server is shutting down; it takes no new runs")
        check_run(body)
        if self.graphs.target(body.assistant_id) is None:
            raise NotFound(f"assistant {body.assistant_id!r} not found")
        temporary = thread_id is None
        if thread_id is None:
            thread_id = new_run_id()
            await self.rows.create_thread(thread_id, {"graph_id": body.assistant_id})
        else:
            thread = await self.rows.thread(thread_id)
            metadata = {"graph_id": body.assistant_id, "assistant_id": body.assistant_id}
            if thread is None:
                if body.if_not_exists != "create":
                    raise NotFound(f"thread {thread_id} not found (if_not_exists='reject')")
                await self.rows.create_thread(thread_id, metadata, if_exists="do_nothing")
            elif thread["metadata"].get("graph_id") != body.assistant_id:
                await self.rows.patch_thread(
                    thread_id, metadata
                )  # the graph its state is read with
        stamp = rowstore.now()
        run = {
            "run_id": new_run_id(),
            "thread_id": thread_id,
            "assistant_id": body.assistant_id,
            "created_at": stamp,
            "updated_at": stamp,
            "status": "pending",
            "metadata": body.metadata,
            "kwargs": jsonable(msgspec.to_builtins(body)),
            "multitask_strategy": body.multitask_strategy,
            "temporary": temporary,
        }
        self.graph_config(run, body)  # a bad config is a 422 now, not a failed run later
        active = await self.rows.active_runs(thread_id)
        if active:
            if body.multitask_strategy == "reject":
                raise Busy(
                    f"thread {thread_id} is already running run {active[0]['run_id']}; wait for "
                    "it to finish or choose another multitask_strategy"
                )
            if body.multitask_strategy in ("interrupt", "rollback"):
                for other in active:
                    await self.cancel(other["run_id"], thread_id, body.multitask_strategy)
        if trace is not None:  # kept with the run: whoever starts it restores it
            run["trace"] = msgspec.to_builtins(trace)
        await self.rows.insert_run(run, temporary=temporary)
        await self.rows.set_thread(thread_id, "busy")
        sub = await self.bus.subscribe(run["run_id"]) if follow else None
        await self.kick(thread_id)
        row = await self.rows.run(run["run_id"])
        return (row or run), sub

    # -- running ---------------------------------------------------------------------------------
    async def kick(self, thread_id: str) -> None:
        """Start (queue mode: send) the thread's oldest pending run if no run of the thread is
        running."""
        if not self.accepting:
            return
        active = await self.rows.active_runs(thread_id)
        if not active or active[0]["status"] == "running":
            return
        run = active[0]
        if not await self.rows.claim(run["run_id"]):
            return
        if self.queue is None:
            live = self._live[run["run_id"]] = _Live()
            recovered = run["run_id"] in self._recovered
            self._recovered.discard(run["run_id"])
            supervisor = asyncio.ensure_future(self._supervise(run, live, recovered))
            self._supervisors.add(supervisor)
            supervisor.add_done_callback(self._supervisors.discard)
            return
        try:  # the request's trace goes with the task (subiso.celery captures it)
            await self.queue.send(run["run_id"], await self._trace(run["run_id"]))
        except Exception as exc:
            log.warning("run %s was not queued: %s: %s", run["run_id"], type(exc).__name__, exc)
            await self._finish(run, "error", error_payload(exc), None)
            await self.kick(thread_id)

    async def _trace(self, run_id: str) -> TraceCarrier | None:
        raw = await self.rows.run_trace(run_id)
        if not raw:
            return None
        try:
            return msgspec.convert(raw, TraceCarrier)
        except msgspec.ValidationError:
            return None

    async def run_here(self, run_id: str, *, again: bool) -> str | None:
        """Queue mode, on the worker the run's task reached: execute the claimed run ``run_id``
        and write its end; None when it is not running (its end is written already - a
        delivery after the one that finished it - or it was never claimed). ``again``: a
        redelivery, so it continues from its last checkpoint. A cancel sent before the run
        got here (kept by the queue) or while it runs (on its channel) stops it."""
        assert self.queue is not None
        watch = await self.bus.subscribe(run_id, control=True)  # before the cancel key is read
        watcher: asyncio.Task[None] | None = None
        try:
            run = await self.rows.run(run_id)
            if run is None or run["status"] != "running":
                return None
            early = await self.queue.cancelled(run_id)
            if early is not None:  # cancelled before it got here: it never starts
                status = "rollback" if early == "rollback" else "interrupted"
                await self._finish(run, status, None, None)
                await self.kick(run["thread_id"])
            else:
                live = self._live[run_id] = _Live()
                supervisor = asyncio.ensure_future(self._supervise(run, live, again))
                self._supervisors.add(supervisor)
                supervisor.add_done_callback(self._supervisors.discard)
                watcher = asyncio.ensure_future(self._watch(watch))
                await supervisor
            return await self.rows.run_status(run_id)
        finally:
            if watcher is not None:
                watcher.cancel()
            await watch.close()

    async def _watch(self, watch: Subscription) -> None:
        async for event, data in watch:
            if event == CANCEL:
                await self.cancel(watch.run_id, None, str(data.get("action", "interrupt")))

    async def _supervise(self, run: dict[str, Any], live: _Live, recovered: bool) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        status, error, events = "success", None, None
        # the request's trace, current while the run is submitted (it is captured there)
        undo = restore(await self._trace(run_id))
        try:
            body = coerce(run["kwargs"], RunCreate)
            run["temporary"] = await self.rows.run_temporary(run_id)
            job = Job(
                run_id,
                self.graph_config(run, body, recover=recovered),
                body.modes,
                body.stream_subgraphs,
            )
            await self.bus.publish(
                run_id, "metadata", {"run_id": run_id, "attempt": 2 if recovered else 1}
            )

            async def publish(event: str, data: Any) -> None:
                await self.bus.publish(run_id, event, data)

            live.task = asyncio.ensure_future(self.engine.execute(job, publish))
            live.started.set()
            events = await live.task
        except asyncio.CancelledError:
            # live.action says who cancelled: a client (interrupt, rollback) or the shutdown
            status = {"interrupt": "interrupted", "rollback": "rollback"}.get(
                live.action, "pending"
            )
        except RunTimeout as exc:
            status, error = "timeout", error_payload(exc)
        except Exception as exc:
            status, error = "error", error_payload(exc)
            log.info("run %s failed: %s: %s", run_id, type(exc).__name__, exc)
        finally:
            live.started.set()
            if undo is not None:
                undo()
        try:
            await self._finish(run, status, error, events)
        finally:
            self._live.pop(run_id, None)
            with contextlib.suppress(Exception):
                await self.kick(thread_id)

    async def _finish(
        self, run: dict[str, Any], status: str, error: Any, events: RunEvents | None
    ) -> None:
        run_id, thread_id = run["run_id"], run["thread_id"]
        if status == "pending":  # requeued at shutdown (queue mode: left to the broker)
            if self.queue is None:
                await self.rows.set_run(run_id, "pending")
            return
        if error is not None:
            await self.bus.publish(run_id, "error", error)
        output: Any = (
            {"__error__": error} if error is not None else (events.output() if events else {})
        )
        # The thread's row first, the run's status after: whoever sees the run ended (a join)
        # then reads the thread's final values.
        on_completion = run["kwargs"].get("on_completion") or "delete"
        temporary = bool(run.get("temporary")) and on_completion == "delete"
        if status == "rollback":
            await rowstore.delete_checkpoints(self.checkpointer, thread_id, run_id)
            await self.rows.delete_run(run_id)
            await self.rows.set_thread(thread_id, "idle")
        else:
            if not temporary:
                await self._update_thread(run_id, thread_id, status, error, events)
            await self.rows.set_run(run_id, status, error=error)
        if temporary:
            await self.rows.delete_thread(thread_id)
        await self.bus.publish(
            run_id,
            DONE,
            {"status": "interrupted" if status == "rollback" else status, "output": output},
        )

    async def _update_thread(
        self, run_id: str, thread_id: str, status: str, error: Any, events: RunEvents | None
    ) -> None:
        values = events.values if events is not None else None
        if isinstance(values, dict) and INTERRUPT in values:
            values = {k: v for k, v in values.items() if k != INTERRUPT}
        interrupts: dict[str, Any] | None = None
        thread_status = "error" if status in ("error", "timeout") else "idle"
        if events is not None and (events.interrupts or status == "success"):
            state = await self._state_or_none(thread_id)
            if state is not None and (state.next or state.interrupts):
                thread_status = "interrupted"
                interrupts = {}
                for task in state.tasks:
                    if task.interrupts:
                        interrupts[task.id] = [interrupt_of(i) for i in task.interrupts]
            elif state is not None:
                interrupts = {}
        others = [r for r in await self.rows.active_runs(thread_id) if r["run_id"] != run_id]
        if others and thread_status == "idle":
            thread_status = "busy"
        await self.rows.set_thread(
            thread_id, thread_status, values=values, interrupts=interrupts, error=error
        )

    async def _state_or_none(self, thread_id: str) -> Any:
        cfg = await self.thread_config(thread_id)
        if cfg is None:
            return None
        try:
            return await self.engine.state(cfg)
        except Exception as exc:  # the thread's values stay; its status says idle
            log.warning("state of thread %s unreadable after its run: %s", thread_id, exc)
            return None

    async def thread_config(
        self, thread_id: str, checkpoint: dict[str, Any] | None = None
    ) -> GraphConfig | None:
        """A GraphConfig addressing ``thread_id`` (at ``checkpoint``) through the graph it runs;
        None when the thread has no graph yet."""
        thread = await self.rows.thread(thread_id)
        if thread is None:
            raise NotFound(f"thread {thread_id} not found")
        graph_id = thread["metadata"].get("graph_id")
        target = self.graphs.target(graph_id) if isinstance(graph_id, str) else None
        if target is None:
            return None
        configurable = {"thread_id": thread_id, **(checkpoint or {})}
        configurable["thread_id"] = thread_id
        return GraphConfig(
            graph=target,
            config={"configurable": configurable},
            checkpointer=self.checkpointer,
            store=self.store,
        )

    # -- cancelling and waiting ----------------------------------------------------------------
    async def cancel(
        self, run_id: str, thread_id: str | None, action: str = "interrupt"
    ) -> dict[str, Any]:
        run = await self.rows.run(run_id, thread_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        if run["status"] == "pending":
            if action == "rollback":
                await self.rows.delete_run(run_id)
            else:
                await self.rows.set_run(run_id, "interrupted", only_if=("pending",))
            await self.bus.publish(run_id, DONE, {"status": "interrupted", "output": {}})
            await self.kick(run["thread_id"])
        elif run["status"] == "running":
            live = self._live.get(run_id)
            if live is not None:
                live.action = action
                await live.started.wait()
                if live.task is not None:
                    live.task.cancel()
            elif self.queue is not None:  # a worker runs it: the queue tells that worker
                await self.queue.cancel(run_id, action)
        return run

    async def wait(
        self, sub: Subscription, on_event: Callable[[str, Any], Awaitable[None]] | None = None
    ) -> Any:
        """Follow ``sub`` to its DONE and return what it carries (``{"status", "output"}``)."""
        try:
            async for event, data in sub:
                if event == DONE:
                    return data
                if on_event is not None:
                    await on_event(event, data)
            return None
        finally:
            await sub.close()

    async def follow(
        self, run_id: str, thread_id: str | None
    ) -> tuple[dict[str, Any], Subscription | None]:
        """A subscription to a run that has not ended (None if it has), made before its status is
        read so that its end cannot be missed."""
        sub = await self.bus.subscribe(run_id)
        run = await self.rows.run(run_id, thread_id)
        if run is None:
            await sub.close()
            raise NotFound(f"run {run_id} not found")
        if run["status"] not in rowstore.ACTIVE:
            await sub.close()
            return run, None
        return run, sub

    # -- starting and stopping -------------------------------------------------------------------
    async def recover(self) -> None:
        """Requeue runs a previous server left running, then start every thread's next run.
        (Queue mode: a running run is in the broker's hands - a server, or another one
        sharing the database, does not own it.)"""
        for run in await self.rows.active_runs():
            if run["status"] == "running" and self.queue is None:
                await self.rows.set_run(run["run_id"], "pending")
                self._recovered.add(run["run_id"])
        for thread_id in {r["thread_id"] for r in await self.rows.active_runs()}:
            await self.kick(thread_id)

    async def shutdown(self) -> None:
        """Take no new runs; give running ones ``grace_s``, then requeue what is left."""
        self.accepting = False
        pending = set(self._supervisors)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.grace_s)
        for run_id, live in list(self._live.items()):
            live.action = "requeue"
            if live.task is not None:
                live.task.cancel()
            log.info("run %s requeued at shutdown", run_id)
        if pending:
            await asyncio.wait(pending)

    def counts(self) -> dict[str, int]:
        return {"running_here": len(self._live)}
