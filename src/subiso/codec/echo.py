"""Input models a run hands back unchanged travel back as a reference, not as their bytes.

A LangGraph state is mostly the messages it came in with: a chat turn returns the whole
history plus one reply, so a process run moves that history twice and the host decodes
objects it already holds (for 2,000 short messages, decoding them again costs more than the
run itself). Here, the host numbers the pydantic models (LangChain messages) it writes into a
run's frame, in the order it writes them; the worker numbers them in the same order as it
reads them, keeping each one's bytes (and the order of its fields set: a set's order differs
between processes). When the worker writes the run's output, a model it read whose bytes are
still exactly the same is written as ``EXT_ECHO`` with its number (4 bytes, big-endian), and
the host puts its own object in its place - what the inline and thread tiers return too (LangGraph
hands back the very message objects it was given), and what a process run would have decoded
to, byte for byte. A model a node changed, one built in the worker, or one whose writing
depended on anything else is written whole as before.

The numbering is the order of the wire format itself (msgpack is written and read front to
back), so the two sides agree without sending any table; a packer that falls back to the
Python pre-pass forgets the models it numbered in the failed attempt before writing them
again. Only the run frame and the run's final output use it: a table lives for one run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


class SentModels:
    """Host side of one run: the models its frame carried, in the order they were written.
    Encoding the frame numbers them; decoding the run's output resolves its references."""

    __slots__ = ("models",)

    def __init__(self) -> None:
        self.models: list[Any] = []


class ReceivedModels:
    """Worker side of one run: each model its Call held, by ``id``: (model, its bytes, its
    number, its fields set in the order the host wrote them - a set's order follows the
    string hashes of the process, so the worker writes it back in the host's order).
    Decoding the Call numbers them; encoding the output writes the unchanged ones as
    references, ``whole`` while one of them is written out in full to be compared (models
    inside it are then written whole too)."""

    __slots__ = ("models", "whole")

    def __init__(self) -> None:
        self.models: dict[int, tuple[Any, bytes, int, list[Any]]] = {}
        self.whole = False

    def add(self, model: Any, payload: memoryview, fields_set: list[Any]) -> None:
        self.models[id(model)] = (model, bytes(payload), len(self.models), fields_set)


#: What the current encode or decode numbers or resolves (None: neither, the common case).
ROLE: ContextVar[SentModels | ReceivedModels | None] = ContextVar("subiso_codec_echo", default=None)


def in_role(role: SentModels | ReceivedModels | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with ``role`` current (None: as it is, at no cost)."""
    if role is None:
        return fn(*args)
    token = ROLE.set(role)
    try:
        return fn(*args)
    finally:
        ROLE.reset(token)
