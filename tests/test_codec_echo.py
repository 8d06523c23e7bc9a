"""A run's input models that come back unchanged cross back as references (subiso.codec.echo):
the host gets its own objects, exactly what the inline tier returns; a model a node changed,
or one it made, comes back whole. The numbering holds when the packer falls back to its
pre-pass, and a reference outside a run's output is refused."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from subiso import codec
from subiso.codec.echo import ReceivedModels, SentModels
from subiso.errors import SerializationError
from tests.codec_workloads import Model


def _history(n: int) -> list[Any]:
    return [
        HumanMessage(content=f"question {i}", id=f"h{i}")
        if i % 2 == 0
        else AIMessage(content=f"answer {i}", id=f"a{i}", response_metadata={"n": i})
        for i in range(n)
    ]


def _round_trip(value: Any, change: Any = None) -> tuple[Any, bytes, bytes]:
    """Host encodes ``value``; the "worker" decodes it, applies ``change`` and encodes it back;
    the host decodes that. Returns (what the host got, frame bytes, reply bytes)."""
    sent = SentModels()
    frame = codec.encode(value, role=sent)
    received_models = ReceivedModels()
    received = codec.decode(frame, role=received_models)
    output = received if change is None else change(received)
    reply = codec.encode(output, role=received_models)
    return codec.decode(reply, role=sent), frame, reply


def test_unchanged_models_come_back_as_the_hosts_own_objects() -> None:
    state = {"messages": _history(40), "note": "plain data travels as before"}
    back, frame, reply = _round_trip(state, lambda s: {**s, "messages": [*s["messages"]]})
    assert back == state
    assert all(a is b for a, b in zip(back["messages"], state["messages"], strict=True))
    assert len(reply) < len(frame) / 4  # references, not the messages' bytes


def test_a_changed_model_comes_back_whole_and_the_callers_is_untouched() -> None:
    state = {"messages": _history(6)}

    def edit(s: dict[str, Any]) -> dict[str, Any]:
        s["messages"][2].content = "changed in the worker"
        s["messages"][3].response_metadata["n"] = -1  # a change inside a nested dict
        s["messages"].append(AIMessage(content="new", id="new"))
        return s

    back, _, _ = _round_trip(state, edit)
    out = back["messages"]
    assert [m is o for m, o in zip(out, state["messages"], strict=False)] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert out[2].content == "changed in the worker"
    assert state["messages"][2].content == "question 2"
    assert out[3].response_metadata == {"n": -1}
    assert state["messages"][3].response_metadata == {"n": 3}
    assert out[6] == AIMessage(content="new", id="new")


def test_a_model_holding_models_echoes_only_as_a_whole() -> None:
    inner = Model(name="inner", children=["a"])
    outer = Model(name="outer", children=[inner])

    def edit_inner(v: list[Any]) -> list[Any]:
        v[0].children[0].children.append("c")
        return v

    back, _, _ = _round_trip([outer])
    assert back[0] is outer
    back, _, _ = _round_trip([outer], edit_inner)
    assert back[0] is not outer and back[0].children[0].children == ["a", "c"]
    assert inner.children == ["a"]


def _listed_otherwise(fields: set[str]) -> set[str]:
    """An equal set that lists its items in another order: a set's order follows the
    string hashes of the process and the size of its table, as a worker's may."""
    for size in range(3, 17):
        padding = [f"padding {i}" for i in range(2**size)]
        grown = set(fields) | set(padding)
        for item in padding:
            grown.discard(item)  # one by one: discard() leaves the table at its size
        if list(grown) != list(fields):
            return grown
    raise AssertionError(f"no table size lists {fields} otherwise")


def test_a_model_inside_an_unchanged_model_is_compared_in_the_hosts_order() -> None:
    """The worker's copy of the inner model lists its fields set in another order than the
    host wrote it; the outer model still comes back as the host's own object."""
    outer = Model(name="outer", children=[Model(name="inner", when=1, children=["a"])])

    def relist_inner(v: list[Any]) -> list[Any]:
        inner = v[0].children[0]
        object.__setattr__(
            inner, "__pydantic_fields_set__", _listed_otherwise(inner.__pydantic_fields_set__)
        )
        return v

    back, _, _ = _round_trip([outer], relist_inner)
    assert back[0] is outer


def test_numbering_survives_the_packers_fallback_to_its_pre_pass() -> None:
    """A dict with an int key makes ormsgpack give up after it has written the models before
    it; the host must not count those twice."""
    first, second, third = _history(3)
    state = {"a": [first, second], 7: "an int key", "b": [third]}
    back, _, _ = _round_trip(state)
    assert back == state
    assert back["a"][0] is first and back["a"][1] is second and back["b"][0] is third


def test_a_reference_outside_a_runs_output_is_refused() -> None:
    _, _, reply = _round_trip({"messages": _history(2)})
    with pytest.raises(SerializationError, match="outside that run's output"):
        codec.decode(reply)
    with pytest.raises(SerializationError, match="held 1 models"):
        one = SentModels()
        one.models.append(object())
        codec.decode(reply, role=one)


def test_without_a_role_nothing_is_numbered_or_referenced() -> None:
    state = {"messages": _history(4)}
    back = codec.decode(codec.encode(state))
    assert back == state and all(
        a is not b for a, b in zip(back["messages"], state["messages"], strict=True)
    )


# -- on the process tier -------------------------------------------------------------------------
@pytest.fixture
def process(make_executor: Any) -> Any:
    return make_executor("process", max_workers=1)


def test_a_process_run_returns_the_unchanged_history_as_the_callers_objects(
    process: Any,
) -> None:
    history = _history(30)
    out = process.run(
        {"graph": "tests.process_workloads:chat_graph", "input": {"messages": history}}
    )
    assert all(a is b for a, b in zip(out["messages"], history, strict=False))
    assert len(out["messages"]) == 31 and out["messages"][-1].content == "re: answer 29"


def test_a_process_run_returns_a_message_its_node_changed_as_changed(
    process: Any, make_executor: Any
) -> None:
    cfg = {"graph": "tests.process_workloads:edit_graph", "input": {"messages": _history(4)}}
    expected = make_executor("inline").run({**cfg, "input": {"messages": _history(4)}})
    history = cfg["input"]["messages"]  # type: ignore[index]
    out = process.run(cfg)
    assert out == expected
    assert out["messages"][0].content == "edited in the worker"
    assert history[0].content == "question 0" and out["messages"][0] is not history[0]
    assert all(a is b for a, b in zip(out["messages"][1:], history[1:], strict=True))


def test_a_process_run_returns_unchanged_nested_models_as_the_callers_objects(
    process: Any,
) -> None:
    """Models inside models come back as the caller's own objects when the run leaves them
    alone (the order of their fields sets is forced apart in the test above)."""
    models = [
        Model(name=f"outer {i}", when=i, children=[Model(name=f"inner {i}", children=[i])])
        for i in range(20)
    ]
    out = process.run({"graph": "tests.process_workloads:echo", "input": models})
    assert all(a is b for a, b in zip(out, models, strict=True))
