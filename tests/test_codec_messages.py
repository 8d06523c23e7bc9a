"""subiso.codec on wire messages: each of the process tier's messages, laid out by its fields'
declared types and packed in one pass, decodes back as itself through its typed decoder, with
the values it carries keeping their types - with ormsgpack's Fragment and without it (Python
3.10, where spliced bytes go through msgspec)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from subiso import codec
from subiso.codec import messages
from subiso.config import GraphConfig
from subiso.executors.process import wire
from subiso.report import Offloaded, RunReport
from subiso.runtime.call import Call
from tests.codec_workloads import Doc


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _messages() -> list[tuple[Any, Any, Any]]:
    """(message, the type it is decoded as, what it decodes to when that differs)."""
    state = {"doc": Doc("d", (1, 2)), "when": dt.date(2024, 1, 2), "cfg": GraphConfig(graph="a:b")}
    cfg = GraphConfig(
        graph="tests.workloads:echo",
        input=state,
        config={"tags": ["x"], "configurable": {"thread_id": "t-1"}},
    )
    call = Call(cfg=cfg, op="update_state", values={"n": Decimal("1.5")}, as_node="n")
    report = RunReport(
        tier="process",
        pid=1,
        os_thread_id=2,
        thread_id="t-1",
        run_id="r-1",
        offloaded=Offloaded(calls=1, interpreter_ids=(3, 4), interp_s=0.1, transfer_s=0.2),
    )
    output = codec.encode({"out": (1, "a")})
    deep = codec.encode(_nested(400))  # a splice ormsgpack's Fragment refuses (255 levels)
    error = codec.exception_to_wire(KeyError("k", (1, 2)))
    return [
        (wire.RunOut(7, call, 3), wire.ToWorker, wire.Run(7, msgspec.Raw(codec.encode(call)), 3)),
        (wire.Stop(), wire.ToWorker, None),
        (wire.Done(7, msgspec.Raw(output), report, 0.1, 0.2, 0.3), wire.ToHost, None),
        (wire.Done(8, msgspec.Raw(deep), report, 0.1, 0.2, 0.3), wire.ToHost, None),
        (wire.Failed(7, error, 0.5, True), wire.ToHost, None),
        (wire.Event(7, msgspec.Raw(output)), wire.ToHost, None),
        (wire.Hello(123, "preload failed"), wire.ToHost, None),
        (wire.Cancelled(7), wire.ToHost, None),
        (wire.Cancel(7), wire.Control, None),
        (wire.CancelQueued([1, 2]), wire.Control, None),
        (wire.Credit(7, 4), wire.Control, None),
    ]


@pytest.fixture(params=["fragments", "no fragments"])
def fragments(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no fragments":
        monkeypatch.setattr(messages, "Fragment", None)
    return request.param  # type: ignore[no-any-return]


def test_each_wire_message_decodes_as_itself(fragments: str) -> None:
    for msg, type_, want in _messages():
        data = codec.encode(msg)
        got = codec.decode(data, type_)
        assert got == (msg if want is None else want), type(msg).__name__
        if isinstance(msg, (wire.Done, wire.Event)):
            raw = msg.output if isinstance(msg, wire.Done) else msg.payload
            out = got.output if isinstance(got, wire.Done) else got.payload
            assert bytes(out) == bytes(raw)  # spliced as they were


def test_values_in_messages_keep_their_types(fragments: str) -> None:
    msg, _, _ = _messages()[0]
    run = codec.decode(codec.encode(msg), wire.ToWorker)
    call = codec.decode(run.call, Call)
    assert call == msg.call
    state = call.cfg.input
    assert type(state["doc"]) is Doc and type(state["doc"].pages) is tuple
    assert type(state["cfg"]) is GraphConfig  # a subiso Struct as a value stays one
    assert type(call.values["n"]) is Decimal
    done = codec.decode(codec.encode(_messages()[2][0]), wire.ToHost)
    assert done.report.offloaded.interpreter_ids == (3, 4)  # a tuple[int, ...] field
