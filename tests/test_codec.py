"""subiso.codec: values come back with their own type, nothing is unpickled unless asked."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.types import Command, Interrupt, Send

from subiso import codec
from subiso.errors import RemoteError, RemoteTraceback, SerializationError
from tests.codec_workloads import (
    APIError,
    Color,
    Doc,
    Exit41,
    Frozen,
    Item,
    Level,
    Mode,
    Model,
    Opaque,
    Point,
)

pytestmark = pytest.mark.timeout(60)


def round_trip(value: Any, **kwargs: Any) -> Any:
    return codec.decode(codec.encode(value, **kwargs), **kwargs)


def assert_exact(out: Any, want: Any, path: str = "value") -> None:
    """``out == want`` and the same type at every level."""
    assert type(out) is type(want), f"{path}: {type(out)} is not {type(want)}"
    assert out == want, path
    if isinstance(want, dict):
        for (ko, vo), (kw, vw) in zip(out.items(), want.items(), strict=True):
            assert_exact(ko, kw, f"{path}<key {kw!r}>")
            assert_exact(vo, vw, f"{path}[{kw!r}]")
    elif isinstance(want, (list, tuple)):
        for i, (a, b) in enumerate(zip(out, want, strict=True)):
            assert_exact(a, b, f"{path}[{i}]")
    elif isinstance(want, (set, frozenset)):
        assert {type(x) for x in out} == {type(x) for x in want}, path
    elif dataclasses.is_dataclass(want) and not isinstance(want, type):
        for f in dataclasses.fields(want):
            assert_exact(getattr(out, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(want, msgspec.Struct):
        for name in want.__struct_fields__:
            assert_exact(getattr(out, name), getattr(want, name), f"{path}.{name}")
    elif hasattr(want, "__pydantic_fields_set__"):
        assert out.__pydantic_fields_set__ == want.__pydantic_fields_set__, path
        for name, value in want.__dict__.items():
            assert_exact(out.__dict__[name], value, f"{path}.{name}")
    elif isinstance(want, Send):
        assert_exact(out.arg, want.arg, f"{path}.arg")


def messages() -> list[Any]:
    return [
        SystemMessage("You review contracts."),
        HumanMessage("Check clause 7", id="h1", additional_kwargs={"lang": "en"}),
        AIMessage(
            content="",
            tool_calls=[{"name": "lookup", "args": {"clause": 7, "deep": True}, "id": "call_1"}],
            usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
            response_metadata={"model": "m", "finish_reason": "tool_calls"},
        ),
        ToolMessage("clause 7 caps liability", tool_call_id="call_1", artifact={"hits": [1, 2]}),
        AIMessageChunk(content="partial", id="c1"),
        AIMessage(content=[{"type": "text", "text": "done"}], name="reviewer"),
    ]


SCALARS: list[Any] = [
    Decimal("1.10"),
    Decimal("-Infinity"),
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
    dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
    dt.datetime(2024, 5, 6, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30), "NST")),
    dt.date(2024, 2, 29),
    dt.time(23, 59, 58, 1),
    dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    dt.timedelta(days=-2, seconds=5, microseconds=7),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    (1, "a", None),
    (),
    {1, 2, 3},
    frozenset({"a", "b"}),
    set(),
    Color.RED,
    Color.PAIR,
    Level.HIGH,
    Mode.FAST,
    Point(1, 2),
    b"\x00bytes",
    2**80,
    -(2**70),
    3 + 4j,
    Doc("t", (1, 2), {"k": (3,)}),
    Frozen("abcd"),
    Item("x", frozenset({"a"})),
    Model(name="m", when=dt.date(2020, 1, 1), children=[(1, 2)]),
    Command(resume={"answer": 42}, goto=[Send("node", {"x": (1,)})], update={"k": Decimal(1)}),
    Command(graph=Command.PARENT, goto="other"),
    Interrupt(value={"question": "ok?"}, id="int-1"),
    Interrupt(value="q", id="i2", response_schema={"type": "string"}),
    Send("worker", {"doc": Doc("d")}),
    Doc,
    *messages(),
]


@pytest.mark.parametrize("value", SCALARS, ids=lambda v: type(v).__name__)
def test_each_type_round_trips_exactly(value: Any) -> None:
    assert_exact(round_trip(value), value)
    assert_exact(round_trip([value]), [value])


def test_time_zones_are_kept() -> None:
    for value in SCALARS:
        if isinstance(value, (dt.datetime, dt.time)):
            out = round_trip(value)
            assert out.tzinfo == value.tzinfo and type(out.tzinfo) is type(value.tzinfo)
            assert out.fold == value.fold
            if value.tzinfo is not None:
                assert out.tzname() == value.tzname()


def test_nested_mixture_round_trips_exactly() -> None:
    state = {
        "messages": messages(),
        "by_pair": {(1, "a"): [Doc("x", (1,), {"m": messages()[2]})], (2, "b"): []},
        ("k", 1): {Level.LOW: {frozenset({1}): Point(3, 4)}},
        1: "int key",
        2.5: "float key",
        Color.RED: "enum key",
        "deep": [[({"a": (Decimal("1"), {dt.date(2020, 1, 1)})},)]],
        "struct": Item("i", frozenset({"t"})),
        "plain": {"a": [1, 2.5, "s", None, True, b"b"]},
        "commands": (Command(resume=Interrupt(value=(1, 2), id="x")),),
    }
    assert_exact(round_trip(state), state)


def test_plain_data_bytes_are_msgpack_as_before() -> None:
    state = {"a": [1, 2.5, "s", None, True, b"b", {"n": -(2**63)}], "b": {"c": 2**64 - 1}}
    assert codec.encode(state) == msgspec.msgpack.encode(state)
    assert_exact(codec.decode(codec.encode(state)), state)


def test_langgraph_command_and_interrupt() -> None:
    cmd = Command(resume={"approved": True}, goto=[Send("a", {"x": 1}), Send("b", (2,))])
    out = round_trip({"cmd": cmd})["cmd"]
    assert type(out) is Command and out == cmd and out.resume == {"approved": True}
    assert [type(s) for s in out.goto] == [Send, Send] and out.goto[1].arg == (2,)
    result = round_trip({"__interrupt__": [Interrupt(value="approve?", id="abc")]})
    assert result["__interrupt__"][0].value == "approve?"
    assert result["__interrupt__"][0].id == "abc"


def test_langchain_messages_with_tool_calls() -> None:
    out = round_trip({"messages": messages()})["messages"]
    assert out == messages()
    assert out[2].tool_calls[0]["args"] == {"clause": 7, "deep": True}
    assert [type(m) for m in out] == [type(m) for m in messages()]


def test_struct_and_graphconfig_messages_still_decode_as_structs() -> None:
    from subiso.config import GraphConfig

    cfg = GraphConfig(graph="tests.workloads:square", input={"t": (1, Decimal("2"))})
    out = codec.decode(codec.encode((0, 7, cfg), part=cfg.input))
    assert out[:2] == [0, 7]
    back = codec.decode(codec.encode(cfg), GraphConfig)
    assert type(back) is GraphConfig and back == cfg
    assert_exact(back.input, cfg.input)


# -- failures ------------------------------------------------------------------------------------
def test_unimportable_class_names_the_key_path() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError, match=r'state\["docs"\]\[1\]') as info:
        codec.encode({"docs": [1, Local(1)]}, label="state")
    assert "cannot be imported" in str(info.value)


def test_class_without_typed_form_is_refused_with_its_path() -> None:
    with pytest.raises(SerializationError, match=r'output\["x"\]\[0\].*no typed form'):
        codec.encode({"x": (Opaque(1),)}, label="output")


def test_lock_is_refused_with_its_path() -> None:
    import threading

    with pytest.raises(SerializationError, match=r'state\["d"\]\.meta\["lock"\]'):
        codec.encode({"d": Doc("t", meta={"lock": threading.Lock()})}, label="state")


def test_pickle_opt_in_carries_arbitrary_classes() -> None:
    value = {"o": Opaque((1, 2)), "t": (1,)}
    out = round_trip(value, allow_pickle=True)
    assert out == value and type(out["o"]) is Opaque and type(out["t"]) is tuple
    with pytest.raises(SerializationError, match="refusing a pickled value"):
        codec.decode(codec.encode(value, allow_pickle=True))


def test_pickled_payload_is_not_executed_by_default() -> None:
    payload = msgspec.msgpack.encode(
        {"out": msgspec.msgpack.Ext(codec.EXT_PICKLE, pickle.dumps(Exit41()))}
    )
    with pytest.raises(SerializationError, match="refusing a pickled value"):
        codec.decode(payload, label="output")
    assert os.getpid() > 0  # still here: os._exit(41) did not run


def test_pickled_payload_exits_only_when_allowed() -> None:
    """The same payload with allow_pickle=True does run the code (in a child process)."""
    script = textwrap.dedent(
        """
        import pickle, msgspec
        from subiso import codec
        from tests.codec_workloads import Exit41
        data = msgspec.msgpack.encode(msgspec.msgpack.Ext(1, pickle.dumps(Exit41())))
        try:
            codec.decode(data)
        except Exception:
            print("refused", flush=True)  # os._exit below flushes nothing
        codec.decode(data, allow_pickle=True)
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.stdout.strip() == "refused" and proc.returncode == 41, proc.stderr


def test_class_named_by_bytes_must_be_of_its_kind() -> None:
    for code, payload in (
        (codec.EXT_DATACLASS, ["os:system", {"x": 1}]),
        (codec.EXT_ENUM, ["os:_exit", 41]),
        (codec.EXT_STRUCT, ["subprocess:Popen", {"args": "true"}]),
        (codec.EXT_PYDANTIC, ["builtins:dict", {}, [], None, None]),
        (codec.EXT_EXCEPTION, ["builtins:open", ["/x"], {}]),
        (codec.EXT_REGISTERED, ["tests.codec_workloads:Opaque", {"value": 1}]),
        (codec.EXT_NAMEDTUPLE, ["builtins:tuple", [1]]),
    ):
        data = msgspec.msgpack.encode(msgspec.msgpack.Ext(code, msgspec.msgpack.encode(payload)))
        with pytest.raises(SerializationError, match="not a class of the kind"):
            codec.decode(data)
    bad = msgspec.msgpack.encode(msgspec.msgpack.Ext(99, b""))
    with pytest.raises(SerializationError, match="unknown msgpack extension code 99"):
        codec.decode(bad)


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "dataclass"])
def test_deep_nesting_is_a_serialization_error(kind: str) -> None:
    value: Any = 0
    for _ in range(5000):
        value = {
            "list": lambda v: [v],
            "tuple": lambda v: (v,),
            "dict": lambda v: {"k": v},
            "dataclass": lambda v: Doc("d", meta={"v": v}),
        }[kind](value)
    with pytest.raises(SerializationError, match="nested deeper"):
        codec.encode(value, label="state")


def test_self_reference_is_a_serialization_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"nested deeper|self-referencing"):
        codec.encode({"loop": loop})
    ring: list[Any] = [(1,)]
    ring.append((ring,))
    with pytest.raises(SerializationError):
        codec.encode(ring)


def test_deeply_nested_bytes_do_not_crash_the_decoder() -> None:
    data = msgspec.msgpack.encode(0)
    for _ in range(20000):
        data = msgspec.msgpack.encode(msgspec.msgpack.Ext(codec.EXT_TUPLE, b"\x91" + data))
    with pytest.raises(SerializationError, match="cannot decode"):
        codec.decode(data)


# -- exceptions ----------------------------------------------------------------------------------
def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_exception_with_keyword_only_constructor_keeps_its_type() -> None:
    sent = _raised(APIError("rate limited", request=object(), body={"retry": (1, 2)}))
    wire = codec.decode(codec.encode(codec.exception_to_wire(sent)), codec.WireError)
    exc = codec.exception_from_wire(wire)
    assert type(exc) is APIError
    assert exc.args == ("rate limited",) and str(exc) == "rate limited"
    assert exc.body == {"retry": (1, 2)} and type(exc.body["retry"]) is tuple
    assert exc.status_code == 429
    assert not hasattr(exc, "request")  # an object() does not encode: dropped
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "APIError: rate limited" in exc.__cause__.tb


def test_builtin_exceptions_keep_args_and_attributes() -> None:
    for sent in (
        KeyError(("a", 1)),
        FileNotFoundError(2, "No such file", "/tmp/x"),
        StopIteration(5),
    ):
        wire = codec.decode(codec.encode(codec.exception_to_wire(_raised(sent))), codec.WireError)
        exc = codec.exception_from_wire(wire)
        assert type(exc) is type(sent) and exc.args == sent.args, sent
    if sys.version_info < (3, 11):  # no ExceptionGroup before 3.11
        return
    group_cls: Any = builtins.ExceptionGroup
    group = group_cls("many", [ValueError("v"), TypeError("t")])
    exc = codec.exception_from_wire(codec.exception_to_wire(_raised(group)))
    assert type(exc) is group_cls and exc.message == "many"
    assert [(type(e), e.args) for e in exc.exceptions] == [
        (ValueError, ("v",)),
        (TypeError, ("t",)),
    ]
    fnf = codec.exception_from_wire(codec.exception_to_wire(FileNotFoundError(2, "x", "/f")))
    assert fnf.errno == 2 and fnf.filename == "/f"  # type: ignore[attr-defined]


def test_unimportable_exception_becomes_remote_error() -> None:
    class LocalError(Exception):
        pass

    wire = codec.exception_to_wire(_raised(LocalError("boom")))
    exc = codec.exception_from_wire(codec.decode(codec.encode(wire), codec.WireError))
    assert type(exc) is RemoteError and "LocalError: boom" in str(exc)
    assert isinstance(exc.__cause__, RemoteTraceback)
    not_exc = codec.WireError("os", "getcwd", "m", "tb", ["x"])
    assert type(codec.exception_from_wire(not_exc)) is RemoteError
    assert codec.RemoteError is RemoteError


def test_subinterpreter_error_body_rebuilds_without_pickle() -> None:
    from subiso.executors.subinterpreter import interp_side

    status, body = interp_side.encode_error(KeyError("k", 1))
    exc = codec.exception_from_wire(codec.WireError(*body))
    assert status == "error" and type(exc) is KeyError and exc.args == ("k", 1)
    _, body = interp_side.encode_error(APIError("x", request=None, body=object()))
    assert body[4] == ("x",)
    assert type(codec.exception_from_wire(codec.WireError(*body))) is APIError


def test_exception_as_a_value() -> None:
    out = round_trip({"error": APIError("e", request=None, body=[1])})["error"]
    assert type(out) is APIError and out.args == ("e",) and out.body == [1]


# -- end to end ----------------------------------------------------------------------------------
def test_process_tier_returns_exact_types() -> None:
    from subiso import ProcessExecutor

    with ProcessExecutor(max_workers=1) as ex:
        out = ex.run({"graph": "tests.codec_workloads:exact_output", "input": {"t": (1,)}})
        with pytest.raises(APIError, match="rate limited") as info:
            ex.run({"graph": "tests.codec_workloads:raise_api_error"})
    assert type(out["doc"]) is Doc and out["doc"] == Doc(
        "contract", (1, 2), {"cap": Decimal("1000.50")}
    )
    assert type(out["doc"].pages) is tuple and type(out["doc"].meta["cap"]) is Decimal
    assert type(out["pair"]) is tuple and out["pair"] == ("a", 1)
    assert type(out["amount"]) is Decimal and out["amount"] == Decimal("12.345")
    cmd = out["command"]
    assert type(cmd) is Command and type(cmd.goto[0]) is Send
    assert cmd.goto[0].arg == {"id": (7,)} and type(cmd.goto[0].arg["id"]) is tuple
    assert info.value.body == {"retry": (1, 2)}
    assert isinstance(info.value.__cause__, RemoteTraceback)
