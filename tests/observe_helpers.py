"""What the observability tests watch with: a logging handler that can be waited on, and the
OpenTelemetry SDK (a tracer provider with an in-memory exporter, a meter provider with an
in-memory reader), installed once per test process as an application would."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: How long a test waits for a record that must come (a bound that turns a bug into a failure
#: instead of a hang; never a sleep).
WAIT_S = 60.0


class Records(logging.Handler):
    """Keeps every record it sees; ``wait_for`` blocks until one matches (or the bound)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()
        self.on_record: Callable[[logging.LogRecord], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()
        if self.on_record is not None:
            self.on_record(record)

    def matching(self, predicate: Callable[[logging.LogRecord], bool]) -> list[logging.LogRecord]:
        with self._cond:
            return [r for r in self.records if predicate(r)]

    def wait_for(
        self, predicate: Callable[[logging.LogRecord], bool], timeout: float = WAIT_S
    ) -> logging.LogRecord:
        with self._cond:
            found = self._cond.wait_for(
                lambda: next((r for r in self.records if predicate(r)), None), timeout
            )
        assert found is not None, f"no matching record within {timeout}s: {self.summary()}"
        return found

    def summary(self) -> list[str]:
        with self._cond:
            return [
                f"{r.name}:{r.levelname}:{r.getMessage()[:120]}:{vars(r)}" for r in self.records
            ]


@contextmanager
def recording(*levels: tuple[str, int]) -> Iterator[Records]:
    """A Records handler on the root logger, with ``(logger, level)`` pairs set meanwhile."""
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name, _ in levels]
    for name, level in levels:
        logging.getLogger(name).setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)


# -- the OpenTelemetry SDK, once per process ----------------------------------------------------
_SDK: dict[str, Any] = {}
_SDK_LOCK = threading.Lock()


def otel_sdk() -> dict[str, Any]:
    """``{"tracer": ..., "spans": InMemorySpanExporter, "metrics": InMemoryMetricReader}``,
    installed globally on first use (OpenTelemetry allows one provider per process)."""
    with _SDK_LOCK:
        if not _SDK:
            from opentelemetry import metrics, trace
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            spans = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(provider)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            _SDK.update(tracer=trace.get_tracer("subiso-tests"), spans=spans, metrics=reader)
        return _SDK


def metric_points(name: str) -> list[Any]:
    """Every data point of metric ``name`` the in-memory reader collects now."""
    data = otel_sdk()["metrics"].get_metrics_data()
    points: list[Any] = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points.extend(metric.data.data_points)
    return points


def metric_value(name: str, **attributes: Any) -> float:
    """The sum (counters), count (histograms) or value of ``name``'s points with exactly
    these attributes."""
    total = 0.0
    for point in metric_points(name):
        if dict(point.attributes) != attributes:
            continue
        total += getattr(point, "count", None) or getattr(point, "value", 0)
    return total
