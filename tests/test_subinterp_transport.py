"""Low-level subinterpreter layer: backend, probes, offload plans, InterpreterPool transport.

Runs for real on 3.13 (interpreters-pep-734 backport) and 3.14 (stdlib); skipped with the
backend's reason on 3.10-3.12. Synchronisation is by interpreter queues and futures only.
"""

from __future__ import annotations

import marshal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from subiso.errors import (
    ExecutorClosed,
    NotIsolatable,
    RemoteTraceback,
    RunTimeout,
    SerializationError,
)
from subiso.executors import subinterpreter as si
from subiso.executors.subinterpreter import interp_side
from tests.conftest import BACKEND, list_all_interpreters, make_interpreter_queue, needs_backend

PURE = "tests.isolation_targets.pure"
BLOCKING = "tests.isolation_targets.blocking"


@pytest.fixture
def pool() -> Iterator[si.InterpreterPool]:
    with si.InterpreterPool(2) as created:
        assert created.wait_ready(30)
        yield created


@pytest.fixture
def single() -> Iterator[si.InterpreterPool]:
    with si.InterpreterPool(1) as created:
        assert created.wait_ready(30)
        yield created


def test_backend_names_api_or_reason() -> None:
    if sys.version_info < (3, 13):
        assert not BACKEND
        assert BACKEND.name is None and "3.1" in BACKEND.reason
        assert "interpreters_backport" not in sys.modules
    elif sys.version_info >= (3, 14):
        assert BACKEND.name == "concurrent.interpreters"
    else:
        assert BACKEND.name in ("interpreters_backport", None)


# --- interpreter side, tested in the host too (it is plain stdlib Python) -------------------


def test_key_path_of_unencodable_value() -> None:
    codec = interp_side.Codec()
    value = ({"docs": [1, 2, 3, {1, 2}, object()]},)
    where = interp_side.find_unencodable(value, codec, "args")
    assert where is not None and where.startswith('args[0]["docs"][4]')


def test_handle_round_trip_and_msgpack_codec_in_host() -> None:
    payload = marshal.dumps(((2, 3), {}))
    reply = interp_side.handle(marshal.dumps(("call", "operator:add", payload, None, None)))
    assert marshal.loads(reply) == ("ok", marshal.dumps(5), ())
    pytest.importorskip("msgspec")
    msgpack = interp_side.make_codec("msgpack")
    assert msgpack.loads(msgpack.dumps({"a": [1, "x"]})) == {"a": [1, "x"]}


# --- real interpreters ----------------------------------------------------------------------


@needs_backend
def test_interp_side_imports_in_a_subinterpreter_without_msgspec() -> None:
    interp = BACKEND.module.create()
    try:
        interp.prepare_main(path=marshal.dumps(list(sys.path)))
        interp.exec(
            "import marshal, sys\n"
            "sys.path[:] = marshal.loads(path)\n"
            "import subiso.executors.subinterpreter.interp_side\n"
            "assert 'msgspec' not in sys.modules, sorted(sys.modules)\n"
        )
    finally:
        interp.close()
    assert si.probe_module("subiso.executors.subinterpreter.interp_side").ok


@needs_backend
def test_sync_and_async_run_in_other_interpreters(pool: si.InterpreterPool) -> None:
    value, sync_id = pool.call(f"{PURE}:add", 2, 3)
    future = pool.submit(si.CallSpec(f"{PURE}:async_add", (4, 5)))
    assert (value, future.result()[0]) == (5, 9)
    assert sync_id != 0 and future.result()[1] != 0
    assert future.interpreter_id == future.result()[1]
    assert future.interpreter_id in pool.interpreter_ids


@needs_backend
def test_offload_decorated_function_runs_unwrapped(pool: si.InterpreterPool) -> None:
    from tests.isolation_targets import pure

    assert si.resolve_offload(pure.offloaded_double).kind == "import"
    value, interp_id = pool.call(pure.offloaded_double, 21)
    assert value == 42 and interp_id != 0


@needs_backend
def test_event_loop_persists_across_calls(single: si.InterpreterPool) -> None:
    seen = {single.call(f"{PURE}:loop_identity") for _ in range(4)}
    assert len(seen) == 1


@needs_backend
def test_exception_reraises_with_type_and_traceback(single: si.InterpreterPool) -> None:
    from tests.isolation_targets.pure import TargetError

    with pytest.raises(TargetError, match="it broke") as info:
        single.call(f"{PURE}:boom", "it broke")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in boom" in cause.tb and "TargetError: it broke" in cause.tb
    assert single.call(f"{PURE}:trivial", 1) == 1  # the worker lives on


@needs_backend
def test_async_timeout_cancels_on_the_interpreter_loop(single: si.InterpreterPool) -> None:
    spec = si.CallSpec(f"{PURE}:wait_forever", ("first",), timeout=0.2)
    with pytest.raises(RunTimeout):
        single.submit(spec).result()
    assert single.call(f"{PURE}:cancelled_labels") == ["first"]


@needs_backend
def test_sync_timeout_fails_the_future_while_the_call_runs_on(single: si.InterpreterPool) -> None:
    inbox = make_interpreter_queue()
    future = single.submit(si.CallSpec(f"{PURE}:block_until_message", (inbox.id,), timeout=0.1))
    with pytest.raises(RunTimeout):
        future.result()
    inbox.put("release")  # let the uncancellable call finish so the worker is free again
    assert single.call(f"{PURE}:trivial", "after") == "after"


@needs_backend
def test_unencodable_arguments_name_the_key_path(single: si.InterpreterPool) -> None:
    ids = single.interpreter_ids
    bad = {"docs": ["a", "b", "c", object()]}
    with pytest.raises(SerializationError, match=r'args\[0\]\["docs"\]\[3\]'):
        single.submit(si.CallSpec(f"{PURE}:trivial", (bad,)))
    with pytest.raises(SerializationError, match=r'kwargs\["x"\]'):
        single.submit(si.CallSpec(f"{PURE}:trivial", (), {"x": object()}))
    with pytest.raises(SerializationError, match="result"):
        single.call(f"{PURE}:returns_object")
    assert single.call(f"{PURE}:trivial", {"ok": [1, 2.5, "x"]}) == {"ok": [1, 2.5, "x"]}
    assert single.interpreter_ids == ids


@needs_backend
def test_blocking_module_verdict_and_shipping(pool: si.InterpreterPool) -> None:
    from tests.isolation_targets import blocking

    verdict = si.probe_module(BLOCKING)
    assert not verdict.ok and verdict.blocked_by == "msgspec._core"
    assert si.probe_module(BLOCKING) is verdict  # cached
    with pytest.raises(NotIsolatable, match=r"msgspec\._core"):
        pool.submit(si.CallSpec(f"{BLOCKING}:square", (3,)))
    with pytest.raises(NotIsolatable, match="msgspec"):
        si.resolve_offload(blocking.uses_msgspec)
    with pytest.raises(NotIsolatable, match="FACTOR"):
        pool.call(blocking.uses_factor, 2)
    with pytest.raises(NotIsolatable, match="closes over k"):
        si.resolve_offload(blocking.make_closure(1))

    plan = si.resolve_offload(blocking.square)
    assert plan.kind == "ship" and "msgspec._core" in plan.reason
    assert si.resolve_offload(blocking.square) is plan
    assert pool.call(blocking.square, 7) == 49
    assert pool.call(blocking.hypot, 3.0) == 5.0  # module global `math`, defaults
    assert pool.call(blocking.fact, 6) == 720  # recursion through its own global name
    cube, interp_id = pool.call(blocking.offloaded_cube, 3)
    assert cube == 27 and interp_id not in (0, None)
    assert pool.call(blocking.where) != 0


@needs_backend
def test_recycles_after_max_tasks() -> None:
    before = len(list_all_interpreters())
    with si.InterpreterPool(1, max_tasks_per_worker=2) as pool:
        ids = [pool.call(f"{PURE}:interp_id") for _ in range(5)]
    assert ids[0] == ids[1] != ids[2] == ids[3] != ids[4]
    assert len(list_all_interpreters()) == before


@needs_backend
def test_close_destroys_interpreters_and_joins_threads() -> None:
    si.probe_msgspec()  # probes run in their own short-lived threads; do them first
    si.probe_module(PURE)
    threads_before = set(threading.enumerate())
    interps_before = len(list_all_interpreters())
    pool = si.InterpreterPool(2)
    assert pool.wait_ready(30)
    assert len(list_all_interpreters()) == interps_before + 2
    futures = [pool.submit(si.CallSpec(f"{PURE}:cpu", (2000,))) for _ in range(20)]
    pool.submit(si.CallSpec(f"{PURE}:wait_forever", ("x",), timeout=0.05))
    pool.close()
    assert all(f.done() and f.result() == futures[0].result() for f in futures)
    assert len(list_all_interpreters()) == interps_before
    assert set(threading.enumerate()) == threads_before
    with pytest.raises(ExecutorClosed):
        pool.submit(si.CallSpec(f"{PURE}:trivial"))


@needs_backend
def test_close_cancel_pending_resolves_every_future() -> None:
    inbox, started = make_interpreter_queue(), make_interpreter_queue()
    pool = si.InterpreterPool(1)
    blocker = pool.submit(si.CallSpec(f"{PURE}:block_until_message", (inbox.id, started.id)))
    assert started.get(timeout=30) == "started"  # the blocker runs; the rest stays queued
    queued = [pool.submit(si.CallSpec(f"{PURE}:trivial", (i,))) for i in range(10)]
    closer = threading.Thread(target=pool.close, kwargs={"cancel_pending": True})
    closer.start()
    inbox.put("go")
    closer.join()
    assert blocker.result() == "go"
    for index, future in enumerate(queued):
        assert future.done()
        try:
            assert future.result() == index
        except CancelledError:
            pass


@needs_backend
def test_two_workers_overlap_on_cpu_work(pool: si.InterpreterPool) -> None:
    q_a, q_b = make_interpreter_queue(), make_interpreter_queue()
    first = pool.submit(si.CallSpec(f"{PURE}:rendezvous", ("a", q_a.id, q_b.id, 200_000)))
    second = pool.submit(si.CallSpec(f"{PURE}:rendezvous", ("b", q_b.id, q_a.id, 200_000)))
    peer_a, work_a, id_a = first.result()
    peer_b, work_b, id_b = second.result()
    assert (peer_a, peer_b) == ("b", "a")  # each saw the other mid-flight
    assert work_a == work_b and id_a != id_b and 0 not in (id_a, id_b)
