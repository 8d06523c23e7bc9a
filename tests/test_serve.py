"""``subiso serve`` against the official client and RemoteGraph, every route, compared with
plain LangGraph running the same graphs in this process (tests/serve_app/graphs.py).

A server subprocess per module and tier (thread here; process for the isolation cases in
test_serve_isolation.py); each test uses its own threads.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
langgraph_sdk = pytest.importorskip("langgraph_sdk")

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.pregel.remote import RemoteGraph  # noqa: E402
from langgraph.types import Command  # noqa: E402

from tests.conftest import needs_async_run_context  # noqa: E402
from tests.serve_server import APP, Server  # noqa: E402

sys.path.insert(0, str(APP.parent))
from serve_app import graphs as G  # noqa: E402


def plain_json(value: Any) -> Any:
    """``value`` as JSON data, encoded without the server's encoder."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "model_dump"):
            return obj.model_dump()
        if dataclasses.is_dataclass(obj):
            return dataclasses.asdict(obj)  # type: ignore[arg-type]
        raise TypeError(type(obj))

    return json.loads(json.dumps(value, default=default))


def plain(name: str) -> Any:
    """The served graph ``name``, compiled here with an in-memory checkpointer."""
    return getattr(G, name).copy(update={"checkpointer": InMemorySaver()})


def tid() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def event_name(namespace: tuple[str, ...], mode: str) -> str:
    return "|".join([mode, *(part.split(":")[0] for part in namespace)])


def served_events(parts: Any) -> list[tuple[str, Any]]:
    """The events of a served stream, without metadata/end, task ids out of namespaces."""
    out = []
    for part in parts:
        if part.event in ("metadata", "end"):
            continue
        mode, *namespace = part.event.split("|")
        out.append(("|".join([mode, *(p.split(":")[0] for p in namespace)]), part.data))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("serve-thread"), "-e", "thread", "--max-workers", "2")
    yield srv
    code = srv.terminate()
    assert code == 0, srv.tail()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return server.client()


# -- meta and assistants -------------------------------------------------------------------------
def test_ok_info_metrics(server: Server, client: Any) -> None:
    import httpx

    assert httpx.get(f"{server.url}/ok").json() == {"ok": True}
    info = httpx.get(f"{server.url}/info").json()
    assert info["tier"] == "thread" and "echo" in info["graphs"]
    assert "runs" in info
    text = httpx.get(f"{server.url}/metrics").text
    assert 'subiso_serve_runs{status="success"}' in text


def test_assistants_one_per_graph(client: Any) -> None:
    found = client.assistants.search(limit=100)
    assert {a["assistant_id"] for a in found} == set(json.loads(
        (APP / "langgraph.json").read_text())["graphs"])  # fmt: skip
    echo = client.assistants.get("echo")
    assert echo["graph_id"] == "echo" and echo["version"] == 1
    assert [a["graph_id"] for a in client.assistants.search(graph_id="ask")] == ["ask"]
    assert client.assistants.count(graph_id="ask") == 1
    with pytest.raises(langgraph_sdk.errors.NotFoundError):
        client.assistants.get("nope")


def test_assistant_graph_and_schemas_equal_langgraph(client: Any) -> None:
    drawing = client.assistants.get_graph("nested")
    expected = G.nested.get_graph().to_json()
    assert {n["id"] for n in drawing["nodes"]} == {n["id"] for n in expected["nodes"]}
    assert len(drawing["edges"]) == len(expected["edges"])
    xray = client.assistants.get_graph("nested", xray=True)
    assert len(xray["nodes"]) > len(drawing["nodes"])
    schemas = client.assistants.get_schemas("echo")
    assert schemas["graph_id"] == "echo"
    assert schemas["input_schema"] == G.echo.get_input_jsonschema()
    assert schemas["output_schema"] == G.echo.get_output_jsonschema()
    assert set(schemas["state_schema"]["properties"]) == {"x", "log", "answer", "marker"}


# -- runs: values and events equal plain LangGraph ---------------------------------------------
def test_wait_equals_invoke(client: Any) -> None:
    thread = client.threads.create()
    out = client.runs.wait(thread["thread_id"], "echo", input={"x": 3})
    assert out == plain_json(plain("echo").invoke({"x": 3}, tid()))
    stateless = client.runs.wait(None, "nested", input={"x": 1})
    assert stateless == plain_json(plain("nested").invoke({"x": 1}, tid()))


@pytest.mark.parametrize(
    ("graph", "modes", "subgraphs"),
    [
        ("echo", ["values"], False),
        ("echo", ["updates", "values", "tasks", "checkpoints"], False),
        ("nested", ["updates", "values"], True),
        ("nested", ["updates"], False),
    ],
)
def test_stream_events_equal_langgraph(
    client: Any, graph: str, modes: list[str], subgraphs: bool
) -> None:
    thread = client.threads.create()
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            graph,
            input={"x": 2},
            stream_mode=modes,
            stream_subgraphs=subgraphs,
        )
    )
    assert parts[0].event == "metadata" and parts[0].data["run_id"]
    assert parts[-1].event == "end" and parts[-1].data["status"] == "success"
    expected = [
        (event_name(ns, mode), plain_json(data))
        for ns, mode, data in plain(graph).stream(
            {"x": 2}, tid(), stream_mode=modes, subgraphs=True
        )
        if subgraphs or not ns
    ]
    got = served_events(parts)
    if {"tasks", "checkpoints"} & set(modes):  # ids, timestamps and configs differ run to run
        assert [name for name, _ in got] == [name for name, _ in expected]
    else:
        assert got == expected


@needs_async_run_context
def test_messages_and_custom_modes(client: Any) -> None:
    thread = client.threads.create()
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            "chat",
            input={"messages": [{"role": "user", "content": "bob"}]},
            stream_mode=["messages-tuple", "custom"],
        )
    )
    events = served_events(parts)
    assert ("custom", {"typing": True}) in events
    messages = [data for name, data in events if name == "messages"]
    assert messages and messages[-1][0]["content"] == "hello bob"
    assert messages[-1][1]["langgraph_node"] == "reply"
    fresh = client.threads.create()  # LangGraph sends a message id once per thread
    parts = list(
        client.runs.stream(
            fresh["thread_id"], "chat", input={"messages": [{"role": "user", "content": "al"}]},
            stream_mode="messages",
        )
    )  # fmt: skip
    names = [p.event for p in parts]
    assert "messages/metadata" in names and "messages/complete" in names
    complete = [p.data for p in parts if p.event == "messages/complete"][-1]
    assert complete[0]["content"] == "hello al"


def test_errors_equal_langgraph(client: Any) -> None:
    thread = client.threads.create()
    parts = list(client.runs.stream(thread["thread_id"], "fail", input={"x": 1}))
    with pytest.raises(ValueError) as info:
        plain("fail").invoke({"x": 1}, tid())
    error = [p.data for p in parts if p.event == "error"]
    assert error == [{"error": "ValueError", "message": str(info.value)}]
    assert parts[-1].event == "end" and parts[-1].data["status"] == "error"
    runs = client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["error"]
    assert client.threads.get(thread["thread_id"])["status"] == "error"
    out = client.runs.wait(thread["thread_id"], "fail", input={"x": 5}, raise_error=False)
    assert out == {"__error__": {"error": "ValueError", "message": "boom at 6"}}


@needs_async_run_context
def test_interrupt_and_resume_equal_langgraph(client: Any) -> None:
    thread = client.threads.create()
    first = client.runs.wait(thread["thread_id"], "ask", input={"x": 1})
    graph, config = plain("ask"), tid()
    expected = plain_json(graph.invoke({"x": 1}, config))
    assert {k: v for k, v in first.items() if k != "__interrupt__"} == {
        k: v for k, v in expected.items() if k != "__interrupt__"
    }
    assert [i["value"] for i in first["__interrupt__"]] == [
        i["value"] for i in expected["__interrupt__"]
    ]
    row = client.threads.get(thread["thread_id"])
    assert row["status"] == "interrupted"
    assert [i["value"] for items in row["interrupts"].values() for i in items] == [
        {"question": "approve?", "x": 2}
    ]
    state = client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["ask"] and state["interrupts"][0]["value"]["question"] == "approve?"
    done = client.runs.wait(thread["thread_id"], "ask", command={"resume": "yes"})
    assert done == plain_json(graph.invoke(Command(resume="yes"), config))
    assert client.threads.get(thread["thread_id"])["status"] == "idle"


def test_background_run_join_get_list_delete(client: Any) -> None:
    thread = client.threads.create()
    run = client.runs.create(thread["thread_id"], "echo", input={"x": 4}, metadata={"who": "t"})
    assert run["status"] in ("pending", "running") and run["metadata"] == {"who": "t"}
    assert client.runs.join(thread["thread_id"], run["run_id"]) == {
        "x": 9,
        "log": ["double", "inc"],
    }
    got = client.runs.get(thread["thread_id"], run["run_id"])
    assert got["status"] == "success" and got["kwargs"]["input"] == {"x": 4}
    assert [r["run_id"] for r in client.runs.list(thread["thread_id"])] == [run["run_id"]]
    assert client.runs.list(thread["thread_id"], status="error") == []
    joined = list(client.runs.join_stream(thread["thread_id"], run["run_id"]))
    assert [p.event for p in joined] == ["end"]
    client.runs.delete(thread["thread_id"], run["run_id"])
    with pytest.raises(langgraph_sdk.errors.NotFoundError):
        client.runs.get(thread["thread_id"], run["run_id"])


# -- threads and state ---------------------------------------------------------------------------
def test_thread_crud_and_search(client: Any) -> None:
    mark = str(uuid.uuid4())
    a = client.threads.create(metadata={"mark": mark, "n": 1})
    b = client.threads.create(metadata={"mark": mark, "n": 2}, thread_id=f"named-{mark}")
    assert b["thread_id"] == f"named-{mark}" and b["status"] == "idle"
    with pytest.raises(langgraph_sdk.errors.ConflictError):
        client.threads.create(thread_id=b["thread_id"])
    assert (
        client.threads.create(thread_id=b["thread_id"], if_exists="do_nothing")["metadata"]["n"]
        == 2
    )
    found = client.threads.search(metadata={"mark": mark})
    assert {t["thread_id"] for t in found} == {a["thread_id"], b["thread_id"]}
    assert client.threads.count(metadata={"mark": mark}) == 2
    assert [t["thread_id"] for t in client.threads.search(metadata={"mark": mark, "n": 2})] == [
        b["thread_id"]
    ]
    patched = client.threads.update(a["thread_id"], metadata={"extra": True})
    assert patched["metadata"] == {"mark": mark, "n": 1, "extra": True}
    client.threads.delete(a["thread_id"])
    with pytest.raises(langgraph_sdk.errors.NotFoundError):
        client.threads.get(a["thread_id"])
    client.runs.wait(b["thread_id"], "echo", input={"x": 1})
    assert (
        client.threads.search(values={"x": 3}, metadata={"mark": mark})[0]["thread_id"]
        == b["thread_id"]
    )


def test_state_history_and_update_equal_langgraph(client: Any) -> None:
    thread = client.threads.create()
    t = thread["thread_id"]
    client.runs.wait(t, "echo", input={"x": 1})
    graph, config = plain("echo"), tid()
    graph.invoke({"x": 1}, config)
    state = client.threads.get_state(t)
    expected = graph.get_state(config)
    assert state["values"] == expected.values and state["next"] == list(expected.next)
    history = client.threads.get_history(t, limit=10)
    plain_history = list(graph.get_state_history(config))
    assert [h["values"] for h in history] == [plain_json(s.values) for s in plain_history]
    assert [h["metadata"]["step"] for h in history] == [s.metadata["step"] for s in plain_history]
    older = history[2]
    at = client.threads.get_state(t, checkpoint_id=older["checkpoint"]["checkpoint_id"])
    assert at["values"] == older["values"]
    at2 = client.threads.get_state(t, checkpoint=older["checkpoint"])
    assert at2["values"] == older["values"]
    assert len(client.threads.get_history(t, limit=2)) == 2
    before = client.threads.get_history(
        t, before=history[0]["checkpoint"]["checkpoint_id"], limit=10
    )
    assert [h["checkpoint"] for h in before] == [h["checkpoint"] for h in history[1:]]
    updated = client.threads.update_state(t, {"x": 100}, as_node="inc")
    graph.update_state(config, {"x": 100}, as_node="inc")
    assert updated["checkpoint"]["thread_id"] == t
    assert client.threads.get_state(t)["values"] == graph.get_state(config).values
    assert client.threads.get(t)["values"] == graph.get_state(config).values


def test_state_of_thread_without_graph(client: Any) -> None:
    thread = client.threads.create()
    state = client.threads.get_state(thread["thread_id"])
    assert state["values"] == {} and state["next"] == [] and state["checkpoint"] is None
    assert client.threads.get_history(thread["thread_id"]) == []


# -- RemoteGraph -------------------------------------------------------------------------------
def test_remote_graph_equals_langgraph(server: Server) -> None:
    remote = RemoteGraph("nested", url=server.url, api_key=None)
    graph = plain("nested")
    config, local = tid(), tid()
    assert remote.invoke({"x": 1}, config) == plain_json(graph.invoke({"x": 1}, local))
    got = list(remote.stream({"x": 2}, config, stream_mode=["updates", "values"], subgraphs=True))
    want = list(graph.stream({"x": 2}, local, stream_mode=["updates", "values"], subgraphs=True))

    def strip(chunks: list[Any]) -> list[Any]:
        return [(tuple(p.split(":")[0] for p in ns), m, plain_json(d)) for ns, m, d in chunks]

    assert strip(got) == strip(want)
    assert remote.get_state(config).values == graph.get_state(local).values
    assert [s.values for s in remote.get_state_history(config)] == [
        plain_json(s.values) for s in graph.get_state_history(local)
    ]
    remote.update_state(config, {"x": 7}, as_node="first")
    graph.update_state(local, {"x": 7}, as_node="first")
    assert remote.get_state(config).values == graph.get_state(local).values
    assert remote.get_graph().nodes.keys() == graph.get_graph().nodes.keys()


@needs_async_run_context
def test_remote_graph_interrupt_resume(server: Server) -> None:
    remote = RemoteGraph("ask", url=server.url, api_key=None)
    config = tid()
    paused = remote.invoke({"x": 1}, config)
    assert paused["__interrupt__"][0]["value"] == {"question": "approve?", "x": 2}
    assert remote.get_state(config).next == ("ask",)
    assert remote.invoke(Command(resume="ok"), config) == plain_json(_resumed_plain("ok"))


def _resumed_plain(answer: str) -> Any:
    graph, config = plain("ask"), tid()
    graph.invoke({"x": 1}, config)
    return graph.invoke(Command(resume=answer), config)


def test_remote_graph_raises_the_error(server: Server) -> None:
    from langgraph.pregel.remote import RemoteException

    with pytest.raises(RemoteException) as info:
        RemoteGraph("fail", url=server.url, api_key=None).invoke({"x": 1}, tid())
    assert info.value.args[0] == {"error": "ValueError", "message": "boom at 2"}


# -- store ---------------------------------------------------------------------------------------
def test_store_routes_and_graph_store_are_one(client: Any) -> None:
    ns = ["users", uuid.uuid4().hex]
    client.store.put_item(ns, "a", {"v": 1})
    client.store.put_item(ns, "b", {"v": 2})
    item = client.store.get_item(ns, "a")
    assert item["value"] == {"v": 1} and item["namespace"] == ns and item["key"] == "a"
    found = client.store.search_items(ns, filter={"v": 2})
    assert [i["key"] for i in found["items"]] == ["b"]
    assert ns in client.store.list_namespaces(prefix=["users"], limit=1000)["namespaces"]
    client.store.delete_item(ns, "a")
    with pytest.raises(langgraph_sdk.errors.NotFoundError):
        client.store.get_item(ns, "a")
    out = client.runs.wait(None, "memo", input={"x": 41})
    assert "x41" in out["answer"]
    assert client.store.get_item(["memo"], "x41")["value"] == {"x": 41}


# -- hostile bodies --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/runs/wait", b"{not json", 422, "not valid JSON"),
        ("/runs/wait", b"[1, 2]", 422, "expected a JSON object"),
        ("/runs/wait", b"{}", 422, "assistant_id"),
        ("/runs/wait", b'{"assistant_id": "echo", "stream_mode": ["valuez"]}', 422, "stream_mode"),
        ("/runs/wait", b'{"assistant_id": "echo", "stream_mode": "events"}', 422, "events"),
        (
            "/runs/wait",
            b'{"assistant_id": "echo", "config": {"recursion_limit": "x"}}',
            422,
            "recursion_limit",
        ),
        ("/runs/wait", b'{"assistant_id": "echo", "bogus": 1}', 422, "bogus"),
        ("/runs/wait", b'{"assistant_id": "echo", "webhook": "http://x"}', 422, "webhook"),
        (
            "/runs/wait",
            b'{"assistant_id": "echo", "multitask_strategy": "x"}',
            422,
            "multitask_strategy",
        ),
        ("/runs/wait", b'{"assistant_id": "os:system"}', 404, "not found"),
        ("/threads", b'{"metadata": []}', 422, "metadata"),
        ("/threads/search", b'{"limit": "ten"}', 422, "limit"),
        ("/store/items/search", b'{"namespace_prefix": "x"}', 422, "namespace_prefix"),
    ],
)
def test_hostile_bodies_get_typed_errors(
    server: Server, path: str, body: bytes, status: int, needle: str
) -> None:
    import httpx

    r = httpx.post(
        f"{server.url}{path}", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert needle in detail and "Traceback" not in detail


def test_body_size_limit_and_unknown_routes(server: Server) -> None:
    import httpx

    big = b'{"assistant_id": "echo", "input": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    r = httpx.post(
        f"{server.url}/runs/wait", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert httpx.get(f"{server.url}/nope").status_code == 404
    assert httpx.get(f"{server.url}/threads/{uuid.uuid4()}").status_code == 404
    r = httpx.post(f"{server.url}/threads/{uuid.uuid4()}/runs/wait", json={"assistant_id": "echo"})
    assert r.status_code == 404 and "if_not_exists" in r.json()["detail"]
