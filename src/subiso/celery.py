"""Celery integration: run GraphConfigs as Celery tasks, one subiso executor per worker child.

::

    from celery import Celery
    import subiso.celery

    app = Celery("myapp", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/1")
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    subiso.celery.install(app)

    result = subiso.celery.submit(app, {"graph": "myapp.graphs:review", "input": {...}})
    result.get()   # {"output": ..., "report": {"tier": ..., "pid": ..., ...}}

:func:`install` registers the task ``subiso.run_graph`` (and ``subiso.serve_run``, the runs of
``subiso serve --queue``: :mod:`subiso.serve.queue`) and connects worker signals so that each
worker child owns one executor built from the settings file (``subiso.load_executor()``, read
in the worker's working directory or from ``SUBISO_CONFIG``): created in
``worker_process_init`` (prefork children) or ``worker_init`` (the threads and solo pools, where
the worker's threads share it - executors are thread-safe), closed at
``worker_process_shutdown`` / ``worker_shutdown``.

**A broker is a trust boundary.** Whoever can write to it can name any import path and any
file or database. The task therefore runs only graphs matching the settings key
``allowed_graphs`` and checkpointers/stores matching ``allowed_locations`` (``fnmatch``
patterns, see :mod:`subiso.allow`), checked before anything is imported or opened; with no
``allowed_graphs`` it refuses everything. Payloads and results are JSON (msgspec builtins),
never pickle: configure ``task_serializer``/``result_serializer``/``accept_content`` as above.

**Traces.** :func:`submit` carries the caller's LangSmith and OpenTelemetry context with the
task (as strings, :mod:`subiso.observe.trace`); the task restores it around the run, so the
graph's runs join the caller's trace. With opentelemetry-instrumentation-celery installed the
task's own span is already current in the worker (it propagates the W3C context in the
message headers): the run then continues that span instead, a child of the caller's.

**Errors.** ``RunTimeout`` and ``WorkerCrashed`` are retried (``autoretry_for``) with
exponential backoff, at most ``max_retries`` times (3 by default: ``install(app,
max_retries=5, retry_backoff=2, retry_backoff_max=120)``, or per deployment
``app.conf.task_annotations = {"subiso.run_graph": {"max_retries": 5}}``). A retried or
redelivered run of a thread (``config.configurable.thread_id`` and a checkpointer) continues
from its last checkpoint when it still has nodes to run (``GraphConfig.recover``), so completed
nodes are not run again. The task is ``acks_late`` with ``reject_on_worker_lost``: a task whose
worker child is killed goes back to the queue and resumes on another child. Any other error
fails the task; with the JSON result serializer the client's ``AsyncResult.get()`` raises an
exception of the same type name (``subiso.errors.ConfigError``, ``ValueError``, ...) carrying
the worker-side message.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import msgspec

from subiso.allow import check_allowed
from subiso.celery_worker import close_worker_executor, resolved, send, worker_executor
from subiso.config import GraphConfig
from subiso.errors import RunTimeout, SerializationError, WorkerCrashed
from subiso.observe.runs import TraceCarrier
from subiso.observe.trace import restore

TASK_NAME = "subiso.run_graph"
SERVE_TASK_NAME = "subiso.serve_run"
DEFAULT_MAX_RETRIES = 3
RETRYABLE = (RunTimeout, WorkerCrashed)

log = logging.getLogger("subiso.celery")


def _on_worker_process_init(**_: Any) -> None:
    worker_executor()


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    if _is_prefork(sender):
        return  # the pool's children build their own (worker_process_init), after the fork
    worker_executor()


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    close_worker_executor()


def _is_prefork(worker: Any) -> bool:
    pool_cls = getattr(worker, "pool_cls", None)
    if isinstance(pool_cls, str):
        return pool_cls.lower() in ("prefork", "processes") or "prefork" in pool_cls.lower()
    try:
        from celery.concurrency.prefork import TaskPool
    except ImportError:  # pragma: no cover - billiard missing
        return False
    return isinstance(pool_cls, type) and issubclass(pool_cls, TaskPool)


# -- the task ----------------------------------------------------------------------------------
def _json_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models, LangChain messages
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"a {type(obj).__module__}.{type(obj).__qualname__} is not JSON-able")


def result_payload(result: Any, graph: str) -> dict[str, Any]:
    """``{"output": ..., "report": {...}}`` as JSON-able builtins."""
    try:
        output = msgspec.to_builtins(result.output, enc_hook=_json_hook)
    except TypeError as exc:
        raise SerializationError(
            f"the output of {graph!r} cannot cross to the Celery client as JSON: {exc}"
        ) from None
    return {"output": output, "report": msgspec.to_builtins(result.report)}


def run_graph(
    task: Any, cfg: Mapping[str, Any], trace: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of ``subiso.run_graph``: check, convert, run on this worker's executor (in
    the caller's trace, when ``trace`` carries one)."""
    found = resolved()
    settings = found.settings
    if not isinstance(cfg, Mapping):
        from subiso.errors import ConfigError

        raise ConfigError(f"{TASK_NAME}: expected a GraphConfig as a JSON object, got {cfg!r}")
    # before anything is imported or opened (GraphConfig itself only validates strings)
    check_allowed(cfg, settings.allowed_graphs, settings.allowed_locations, where=found.describe())
    config = GraphConfig.from_dict(dict(cfg))
    request = getattr(task, "request", None)
    again = bool(getattr(request, "retries", 0)) or bool(
        (getattr(request, "delivery_info", None) or {}).get("redelivered")
    )
    if again and _has_thread(config):
        config = config.replace(recover=True)
    undo = restore(_carrier(trace))
    try:
        result = worker_executor().execute(config)  # captures the context restored here
    finally:
        if undo is not None:
            undo()
    return result_payload(result, config.graph)


def _carrier(trace: Mapping[str, Any] | None) -> TraceCarrier | None:
    """The submitter's trace context to restore here: its OpenTelemetry part only when no
    span is current already (an instrumented worker's task span continues the trace)."""
    if not trace:
        return None
    try:
        carrier = msgspec.convert(trace, TraceCarrier)
    except msgspec.ValidationError:
        log.warning("%s: ignored a malformed trace carrier", TASK_NAME)
        return None
    if carrier.otel and "opentelemetry.trace" in sys.modules:
        from opentelemetry import trace as otel_trace

        if otel_trace.get_current_span().get_span_context().is_valid:
            carrier = msgspec.structs.replace(carrier, otel={})
    return carrier


def _has_thread(cfg: GraphConfig) -> bool:
    configurable = (cfg.config or {}).get("configurable") or {}
    return bool(configurable.get("thread_id"))


def install(
    app: Any,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    retry_backoff: int | bool = True,
    retry_backoff_max: int = 60,
    retry_jitter: bool = True,
    **task_options: Any,
) -> Any:
    """Register ``subiso.run_graph`` on ``app`` and connect the worker signals; returns the
    task. ``task_options`` go to ``app.task`` (e.g. ``queue=``, ``time_limit=``)."""
    from celery import signals

    options: dict[str, Any] = {
        "name": TASK_NAME,
        "bind": True,
        "autoretry_for": RETRYABLE,
        "max_retries": max_retries,
        "retry_backoff": retry_backoff,
        "retry_backoff_max": retry_backoff_max,
        "retry_jitter": retry_jitter,
        "acks_late": True,
        "reject_on_worker_lost": True,
        **task_options,
    }

    def subiso_run_graph(
        self: Any, cfg: Mapping[str, Any], trace: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return run_graph(self, cfg, trace)

    task = app.task(**options)(subiso_run_graph)

    def subiso_serve_run(
        self: Any, job: Mapping[str, Any], trace: Mapping[str, Any] | None = None
    ) -> str | None:
        # the run's trace is restored from its row where it is submitted (as a server does)
        from subiso.serve.queue_worker import serve_run

        return serve_run(self, job)

    # A served run's errors end the run (its status says so), never a retry; a child killed
    # mid-run puts the task back (acks_late + reject_on_worker_lost) and the next delivery
    # continues the run from its last checkpoint.
    serve_options = {
        "name": SERVE_TASK_NAME,
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "ignore_result": True,
        **task_options,
    }
    app.task(**serve_options)(subiso_serve_run)
    # Signals are process-wide; the dispatch_uids make install() idempotent.
    signals.worker_process_init.connect(
        _on_worker_process_init, weak=False, dispatch_uid="subiso.worker_process_init"
    )
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="subiso.worker_init")
    signals.worker_process_shutdown.connect(
        close_worker_executor, weak=False, dispatch_uid="subiso.worker_process_shutdown"
    )
    signals.worker_shutdown.connect(
        _on_worker_shutdown, weak=False, dispatch_uid="subiso.worker_shutdown"
    )
    return task


def submit(app: Any, cfg: GraphConfig | Mapping[str, Any], **apply_async_options: Any) -> Any:
    """Send one run to the workers; returns the ``celery.result.AsyncResult``.

    ``cfg`` is a GraphConfig or a dict; it travels as JSON, with the caller's trace context
    (LangSmith, OpenTelemetry) when it has one. ``apply_async_options`` are Celery's
    (``queue=``, ``countdown=``, ``task_id=``, ...). The client need not have called
    :func:`install`.
    """
    payload = msgspec.to_builtins(cfg) if isinstance(cfg, GraphConfig) else dict(cfg)
    return send(app, TASK_NAME, payload, **apply_async_options)
