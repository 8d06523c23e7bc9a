"""Importable classes and workflow functions for tests/test_codec.py (also run in workers)."""

from __future__ import annotations

import dataclasses
import enum
import os
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec
from langgraph.types import Command, Send
from pydantic import BaseModel


class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(str, enum.Enum):  # a StrEnum before 3.11 spelled it
    FAST = "fast"


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Doc:
    title: str
    pages: tuple[int, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    key: str
    derived: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", len(self.key))


class Item(msgspec.Struct):
    name: str
    tags: frozenset[str] = frozenset()


class Model(BaseModel):
    name: str
    when: Any = None
    children: list[Any] = []


class Opaque:
    """A plain class with no typed form: crosses only with allow_pickle=True."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Opaque and other.value == self.value


class APIError(Exception):
    """Like httpx/openai errors: keyword-only constructor arguments."""

    def __init__(self, message: str, *, request: Any, body: Any) -> None:
        super().__init__(message)
        self.request = request
        self.body = body
        self.status_code = 429


class Exit41:
    """Unpickling this ends the process with status 41."""

    def __reduce__(self) -> Any:
        return (os._exit, (41,))


def exact_output(_: Any) -> dict[str, Any]:
    """A workflow function whose output needs every kind of typed value."""
    return {
        "doc": Doc("contract", (1, 2), {"cap": Decimal("1000.50")}),
        "pair": ("a", 1),
        "amount": Decimal("12.345"),
        "command": Command(resume={"ok": True}, goto=[Send("review", {"id": (7,)})]),
    }


def raise_api_error(_: Any) -> None:
    raise APIError("rate limited", request=object(), body={"retry": (1, 2)})
