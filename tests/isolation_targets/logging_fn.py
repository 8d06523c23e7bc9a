"""Stdlib-only functions that log and read the OpenTelemetry context: they load in
subinterpreters, where the observability tests run them whole (full mode) and offloaded."""

from __future__ import annotations

import logging
from typing import Any

from subiso import offload

log = logging.getLogger("tests.observe.interp")


def _otel_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@offload
def log_and_report(x: int) -> dict[str, Any]:
    """Offloaded node work: logs from inside its interpreter, reports the trace it sees."""
    log.warning("offloaded call logs from its interpreter (x=%d)", x)
    return {"x": x, "otel_trace_id": _otel_trace_id()}


def workflow(value: Any) -> dict[str, Any]:
    """A whole workflow function (full mode): logs and reports the trace it sees."""
    log.warning("workflow function logs from its interpreter")
    return {"value": value, "otel_trace_id": _otel_trace_id()}
