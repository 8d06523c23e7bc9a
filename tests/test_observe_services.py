"""Observability where services are involved: an unreachable PostgreSQL fails a run fast with
a typed error (host and port, never the password) and leaves the pool usable; a Celery task's
trace (opentelemetry-instrumentation-celery, or subiso.celery.submit's own carrier) reaches
the graph's nodes on a real worker."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import subiso

W = "tests.dist_workloads"


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_a_refused_postgresql_fails_fast_and_the_next_good_url_works(
    tier: str, postgres_url: str
) -> None:
    pytest.importorskip("langgraph.checkpoint.postgres")
    port = refused_port()
    bad = f"postgresql://ada:s3cret-pw@127.0.0.1:{port}/runs"
    cfg = {"graph": f"{W}:two_nodes", "input": {"x": 1}}
    with subiso.get_executor(tier, max_workers=1) as ex:
        with pytest.raises(subiso.ServiceUnreachable) as info:
            ex.run({**cfg, "checkpointer": bad, "config": {"configurable": {"thread_id": "a"}}})
        message = str(info.value)
        assert f"127.0.0.1:{port}" in message and "s3cret-pw" not in message
        assert info.value.run_id is not None
        good = {**cfg, "checkpointer": postgres_url, "config": {"configurable": {"thread_id": "b"}}}
        assert ex.run(good) == {"x": 4}
        assert ex.stats().runs_completed["error"] == 1


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_an_unroutable_postgresql_host_fails_within_the_connect_timeout(
    tier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10.255.255.1: a private address no network here routes (a connect hangs, or is
    refused by whatever sits in between): either way the run fails within the bound."""
    pytest.importorskip("langgraph.checkpoint.postgres")
    monkeypatch.setenv("SUBISO_CONNECT_TIMEOUT", "1")
    far = "postgresql://ada:s3cret-pw@10.255.255.1:5432/runs"
    cfg = {"graph": f"{W}:two_nodes", "input": {"x": 1}, "checkpointer": far}
    ex = subiso.get_executor(tier, max_workers=1)
    with ex, pytest.raises(subiso.ServiceUnreachable) as info:
        ex.run({**cfg, "config": {"configurable": {"thread_id": "a"}}})
    assert "10.255.255.1:5432" in str(info.value) and "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_a_silent_postgresql_fails_within_the_connect_timeout(
    tier: str, silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("langgraph.checkpoint.postgres")
    monkeypatch.setenv("SUBISO_CONNECT_TIMEOUT", "1")
    silent = f"postgresql://ada:s3cret-pw@127.0.0.1:{silent_server}/runs"
    cfg = {"graph": f"{W}:two_nodes", "input": {"x": 1}, "checkpointer": silent}
    ex = subiso.get_executor(tier, max_workers=1)
    with ex, pytest.raises(subiso.ServiceUnreachable, match="no answer within 1s") as info:
        ex.run({**cfg, "config": {"configurable": {"thread_id": "a"}}})
    assert f"127.0.0.1:{silent_server}" in str(info.value)
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize(("pool", "tier"), [("prefork", "thread"), ("threads", "process")])
def test_a_celery_tasks_span_reaches_the_nodes(
    pool: str, tier: str, redis_url: str, tmp_path: Path
) -> None:
    """With opentelemetry-instrumentation-celery on both sides, the client's span is the
    parent of the task's span in the worker, and the node runs inside that task span - on a
    worker thread (prefork + thread tier) or in a worker process (threads + process tier)."""
    pytest.importorskip("celery")
    pytest.importorskip("opentelemetry.instrumentation.celery")
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    import subiso.celery
    from tests.observe_helpers import otel_sdk
    from tests.services import CeleryWorker, celery_client

    tracer = otel_sdk()["tracer"]
    app = celery_client(redis_url)
    worker = CeleryWorker(
        redis_url, tmp_path, pool=pool, tier=tier, name=f"otel-{pool}", app="tests.celery_otel_app"
    )
    CeleryInstrumentor().instrument()  # the client injects its context at publish
    try:
        with tracer.start_as_current_span("client") as span:
            result = subiso.celery.submit(
                app,
                {"graph": "tests.observe_workloads:atrace_graph", "input": {"x": 1}},
                queue=worker.queue,
            )
        seen = result.get(timeout=120)["output"]["seen"]
    except BaseException:
        print(worker.tail())
        raise
    finally:
        CeleryInstrumentor().uninstrument()
        worker.stop()
    context = span.get_span_context()
    assert seen["otel_trace_id"] == format(context.trace_id, "032x")
    assert seen["otel_span_id"] != format(context.span_id, "016x")  # the task's span, below it
    assert seen["ls_trace_id"] is None


def test_submit_carries_the_callers_trace_without_instrumentation(
    redis_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("celery")
    import subiso.celery
    from tests.observe_helpers import otel_sdk
    from tests.services import CeleryWorker, celery_client

    tracer = otel_sdk()["tracer"]
    app = celery_client(redis_url)
    worker = CeleryWorker(redis_url, tmp_path, pool="solo", tier="thread", name="carrier")
    try:
        with tracer.start_as_current_span("client") as span:
            result = subiso.celery.submit(
                app,
                {"graph": "tests.observe_workloads:trace_graph", "input": {"x": 1}},
                queue=worker.queue,
            )
        seen = result.get(timeout=120)["output"]["seen"]
    except BaseException:
        print(worker.tail())
        raise
    finally:
        worker.stop()
    context = span.get_span_context()
    assert seen["otel_trace_id"] == format(context.trace_id, "032x")
    assert seen["otel_span_id"] == format(context.span_id, "016x")  # the client's own span


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_a_pool_a_run_opens_for_its_worker_is_no_leftover_of_the_run(
    tier: str, postgres_url: str
) -> None:
    """The first run on a worker loop opens the loop's PostgreSQL pool, whose tasks live on
    for every later run: they are the loop's, not tasks the run left behind."""
    pytest.importorskip("langgraph.checkpoint.postgres")
    from tests.observe_helpers import recording

    cfg = {"graph": f"{W}:two_nodes", "input": {"x": 1}, "checkpointer": postgres_url}
    with recording() as records, subiso.get_executor(tier, max_workers=1) as ex:
        for thread in ("p", "q"):
            assert ex.run({**cfg, "config": {"configurable": {"thread_id": thread}}}) == {"x": 4}
    assert not records.matching(lambda r: "task(s) pending" in r.getMessage()), records.summary()
