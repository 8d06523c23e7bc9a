"""The caller's trace, carried to the worker: LangSmith and OpenTelemetry context as strings.

A run executes in its worker's own context, never the caller's (a run started inside a LangGraph
node must not be taken for a subgraph, and a context cannot cross a process anyway). So what a
trace needs is carried explicitly, the way distributed tracing carries it between services:

* :func:`capture` runs on the caller's thread or task at submit. LangSmith: the current run
  tree's headers (``RunTree.to_headers()``: ``langsmith-trace`` and ``baggage``, which is how
  LangGraph's Agent Server and ``RemoteGraph(distributed_tracing=True)`` pass a trace) and the
  ``tracing_context`` settings (``enabled``, project, tags, metadata). OpenTelemetry: what the
  global propagator injects (W3C ``traceparent``/``tracestate``/``baggage``).
* :func:`restore` runs in the worker around the graph call:
  ``langsmith.tracing_context(parent=headers, ...)`` and
  ``opentelemetry.context.attach(propagate.extract(...))``, so LangChain's tracer makes the
  graph's runs children of the caller's run tree and a node's ``trace.get_current_span()`` is
  in the caller's trace.

Both libraries stay optional and unimported: :func:`capture` looks only at libraries the
caller's process has already imported, and :func:`restore` imports one only when the carrier
holds its context (so the caller had it). A caller with no trace carries nothing.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from subiso.observe.runs import TraceCarrier

log = logging.getLogger("subiso.trace")

#: LangSmith's distributed-tracing headers (``RunTree.to_headers``).
_LS_HEADERS = ("langsmith-trace", "baggage")


def capture() -> TraceCarrier | None:
    """The calling thread's (or task's) tracing context, or None when there is none."""
    langsmith = _capture_langsmith() if "langsmith.run_helpers" in sys.modules else None
    otel = capture_otel() if "opentelemetry.context" in sys.modules else None
    if not langsmith and not otel:
        return None
    return TraceCarrier(langsmith=langsmith or {}, otel=otel or {})


class _Modules:
    """The tracing libraries' functions, looked up once each (a capture runs per run)."""

    ls_context: Any = None  # langsmith.run_helpers.get_tracing_context
    #: the context variables that tell whether there is anything to capture at all (a quick
    #: "no" for the usual caller holding no trace); empty where langsmith keeps them elsewhere
    ls_vars: tuple[Any, ...] = ()
    otel_current: Any = None  # opentelemetry.context.get_current


def _langsmith_context() -> Any:
    from langsmith import run_helpers

    keys = getattr(run_helpers, "_CONTEXT_KEYS", None) or {}
    names = ("parent_ref", "project_name", "tags", "metadata", "enabled")
    if all(name in keys for name in names):
        _Modules.ls_vars = tuple(keys[name] for name in names)
    _Modules.ls_context = run_helpers.get_tracing_context
    return run_helpers.get_tracing_context


_get_var = contextvars.ContextVar.get
_NONE = itertools.repeat(None)  # ``var.get(None)``'s default, for as many vars as there are


def _capture_langsmith() -> dict[str, str] | None:
    get_context = _Modules.ls_context or _langsmith_context()
    ls_vars = _Modules.ls_vars
    if ls_vars and not any(map(_get_var, ls_vars, _NONE)):  # (C calls only: once per run)
        return None  # no trace, no tracing settings: nothing to carry
    try:
        context = get_context()
        parent = context.get("parent")
        enabled = context.get("enabled")
        project = context.get("project_name")
        tags = context.get("tags")
        metadata = context.get("metadata")
        if parent is None and enabled is None and not project and not tags and not metadata:
            return None
        carrier: dict[str, str] = {}
        if parent is not None:
            carrier.update(parent.to_headers())
        if enabled is not None:
            carrier["enabled"] = "local" if enabled == "local" else str(bool(enabled)).lower()
        if project:
            carrier["project"] = str(project)
        if tags:
            carrier["tags"] = json.dumps([str(tag) for tag in tags])
        if metadata:
            carrier["metadata"] = json.dumps(dict(metadata), default=str)
        return carrier
    except Exception:  # a tracing library problem must never fail a run
        log.debug("could not capture the LangSmith tracing context", exc_info=True)
        return None


def capture_otel() -> dict[str, str] | None:
    """OpenTelemetry's current context as W3C headers (None when it holds nothing)."""
    current = _Modules.otel_current
    if current is None:
        from opentelemetry import context as otel_context

        current = _Modules.otel_current = otel_context.get_current
    if not current():  # an empty Context: no span, no baggage
        return None
    try:
        from opentelemetry import propagate

        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None
    except Exception:
        log.debug("could not capture the OpenTelemetry context", exc_info=True)
        return None


Undo = Callable[[], None]


def restore(carrier: TraceCarrier | None) -> Undo | None:
    """Make ``carrier``'s context current; returns what undoes it (None: nothing to undo).

    Call the undo in the same context (thread or task) before it ends."""
    if carrier is None:
        return None
    undos: list[Undo] = []
    if carrier.langsmith:
        undo = _restore_langsmith(carrier.langsmith)
        if undo is not None:
            undos.append(undo)
    if carrier.otel:
        undo = restore_otel(carrier.otel)
        if undo is not None:
            undos.append(undo)
    if not undos:
        return None

    def undo_all() -> None:
        for undo in reversed(undos):
            try:
                undo()
            except Exception:
                log.debug("could not leave a restored tracing context", exc_info=True)

    return undo_all


def _restore_langsmith(carrier: dict[str, str]) -> Undo | None:
    try:
        from langsmith import run_helpers

        options: dict[str, Any] = {}
        headers = {k: carrier[k] for k in _LS_HEADERS if k in carrier}
        if "langsmith-trace" in headers:
            options["parent"] = headers
        enabled = carrier.get("enabled")
        if enabled is not None:
            options["enabled"] = "local" if enabled == "local" else enabled == "true"
        if "project" in carrier:
            options["project_name"] = carrier["project"]
        if "tags" in carrier:
            options["tags"] = json.loads(carrier["tags"])
        if "metadata" in carrier:
            options["metadata"] = json.loads(carrier["metadata"])
        manager = run_helpers.tracing_context(**options)
        manager.__enter__()
    except Exception:
        log.debug("could not restore the LangSmith tracing context", exc_info=True)
        return None

    def leave() -> None:
        manager.__exit__(None, None, None)

    return leave


def restore_otel(carrier: dict[str, str]) -> Undo | None:
    """Attach the OpenTelemetry context ``carrier`` holds; the undo detaches it."""
    try:
        from opentelemetry import context as otel_context
        from opentelemetry import propagate

        token = otel_context.attach(propagate.extract(carrier))
    except Exception:
        log.debug("could not restore the OpenTelemetry context", exc_info=True)
        return None
    return lambda: otel_context.detach(token)


def from_headers(headers: Any) -> TraceCarrier | None:
    """The trace an HTTP request carries: LangSmith's distributed-tracing headers
    (``langsmith-trace``, ``baggage``: what ``RemoteGraph(distributed_tracing=True)`` sends)
    and W3C trace context (``traceparent``, ``tracestate``, ``baggage``). ``headers`` is any
    case-insensitive mapping (Starlette's, httpx's)."""
    langsmith = {k: headers[k] for k in _LS_HEADERS if k in headers}
    otel = {k: headers[k] for k in ("traceparent", "tracestate", "baggage") if k in headers}
    if "langsmith-trace" not in langsmith:
        langsmith = {}
    if "traceparent" not in otel:
        otel = {}
    if not langsmith and not otel:
        return None
    return TraceCarrier(langsmith=langsmith, otel=otel)


def flush_langsmith() -> None:
    """Send what LangSmith's client still holds (a worker process about to exit; its
    interpreter runs no atexit handlers under multiprocessing)."""
    client_module = sys.modules.get("langsmith.run_trees")
    client = getattr(client_module, "_CLIENT", None) if client_module else None
    if client is None:
        return
    try:
        client.flush()
    except Exception:
        log.debug("could not flush LangSmith's client", exc_info=True)
