"""Request bodies, validated before anything else happens: a wrong field is a 422 whose
``detail`` names it (``stream_mode[1]: expected one of ...``), never a 500.

Field names, types and defaults follow the Agent Server's OpenAPI document, as
``langgraph_sdk`` sends them (it leaves out every field that is None). Fields of that API this
server does not implement are declared so that a request using them gets a 422 saying so,
instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from subiso.config import convert
from subiso.errors import ConfigError
from subiso.serve.encode import loads
from subiso.serve.events import CLIENT_MODES

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET
StreamModeName = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "debug",
    "tasks",
    "checkpoints",
    "events",
]


class Invalid(Exception):
    """A request body or parameter that fails validation: HTTP 422, ``detail`` = the message."""


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class CommandBody(_Body):
    update: Any = None
    resume: Any = UNSET
    goto: Any = None


class CheckpointBody(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    command: CommandBody | None = None
    config: dict[str, Any] = {}
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    checkpoint: CheckpointBody | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "rollback", "interrupt", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "cancel"
    on_completion: Literal["delete", "keep"] = "delete"
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None
    langsmith_tracer: dict[str, Any] | None = None
    # Declared only to be refused with a clear message (see check_run).
    webhook: str | None = None
    after_seconds: float | None = None
    feedback_keys: list[str] | None = None
    strict_resume: bool | None = None

    @property
    def modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] = {}
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None
    ttl: Any = None
    supersteps: Any = None


class ThreadPatch(_Body):
    metadata: dict[str, Any] = {}
    ttl: Any = None


class ThreadSearch(_Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = 10
    offset: int = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = (
        "created_at"
    )
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None
    extract: Any = None


class ThreadStateUpdate(_Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: CheckpointBody | None = None
    checkpoint_id: str | None = None


class ThreadHistory(_Body):
    limit: int = 10
    before: str | CheckpointBody | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointBody | None = None
    select: list[str] | None = None


class ThreadStateAt(_Body):
    checkpoint: CheckpointBody
    subgraphs: bool = False
    select: list[str] | None = None


class AssistantSearch(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = 10
    offset: int = 0
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class StorePut(_Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Any = None
    ttl: float | None = None


class StoreDelete(_Body):
    key: str
    namespace: list[str] | None = None


class StoreSearch(_Body):
    namespace_prefix: list[str] = []
    filter: dict[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(_Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


class RunsCancel(_Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


_T = TypeVar("_T")

_REFUSED = {
    "webhook": "webhooks are not sent by subiso serve",
    "after_seconds": "delayed runs are not scheduled by subiso serve",
    "feedback_keys": "LangSmith feedback URLs are not created by subiso serve",
    "strict_resume": "strict_resume is not implemented by subiso serve",
}


def parse(raw: bytes, type_: type[_T], *, allow_empty: bool = False) -> _T:
    """The request body ``raw`` as ``type_``; :class:`Invalid` naming what is wrong."""
    if not raw.strip():
        if allow_empty:
            return convert({}, type_, source="request body")
        raise Invalid("request body: expected a JSON object, got nothing")
    try:
        data = loads(raw)
    except (msgspec.DecodeError, ValueError) as exc:
        raise Invalid(f"request body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Invalid(f"request body: expected a JSON object, got {type(data).__name__}")
    return coerce(data, type_)


def coerce(data: Any, type_: type[_T]) -> _T:
    try:
        return convert(data, type_, source="request body")
    except ConfigError as exc:
        raise Invalid(str(exc).replace("request body: ", "", 1)) from None


def check_run(body: RunCreate) -> None:
    """Refusals a schema cannot express: unsupported features, bad combinations."""
    for name, why in _REFUSED.items():
        if getattr(body, name) is not None:
            raise Invalid(f"{name}: {why}; leave it out")
    if "events" in body.modes:
        raise Invalid(
            "stream_mode: 'events' (astream_events) is not offered by subiso serve; use "
            f"any of {', '.join(CLIENT_MODES)}"
        )
    if body.command is not None and body.input is not None:
        raise Invalid("command: give either input or command, not both")


def command_of(body: Any) -> Any:
    """The API's ``command`` object as ``langgraph.types.Command``."""
    from langgraph.types import Command, Send

    def send(goto: Any) -> Any:
        if isinstance(goto, dict):
            if set(goto) - {"node", "input"} or "node" not in goto:
                raise Invalid("command.goto: a Send is {'node': name, 'input': value}")
            return Send(goto["node"], goto.get("input"))
        return goto

    goto = body.goto
    if isinstance(goto, list):
        goto = [send(g) for g in goto]
    elif goto is not None:
        goto = send(goto)
    kwargs: dict[str, Any] = {"update": body.update, "goto": goto if goto is not None else ()}
    if body.resume is not msgspec.UNSET:
        kwargs["resume"] = body.resume
    return Command(**kwargs)
