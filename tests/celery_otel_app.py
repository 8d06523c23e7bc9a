"""The example Celery app, instrumented with OpenTelemetry as a deployment would be
(opentelemetry-instrumentation-celery, an SDK tracer provider in each worker process): the
test that a Celery task's span reaches the graph's nodes runs its workers with this app."""

from __future__ import annotations

from typing import Any

from celery import signals

from examples.celery_app.app import app


def instrument(**_: Any) -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    CeleryInstrumentor().instrument()


def instrument_unless_prefork(sender: Any = None, **_: Any) -> None:
    if "prefork" not in str(getattr(sender, "pool_cls", "")).lower():
        instrument()


# prefork children instrument themselves after the fork; the threads pool in its one process
signals.worker_process_init.connect(instrument, weak=False)
signals.worker_init.connect(instrument_unless_prefork, weak=False)

__all__ = ["app"]
