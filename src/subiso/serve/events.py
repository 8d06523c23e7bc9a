"""One run's chunks turned into the Agent Server's events, and what the run leaves behind.

A run streams from its worker with the modes the client asked for plus ``values`` and
``updates`` (the server needs the last values for ``runs.wait`` and the thread row, and the
interrupts). :class:`RunEvents` takes each chunk as ``graph.astream(..., stream_mode=[...],
subgraphs=...)`` yields it and returns the events to send - ``(name, data)`` pairs named by
mode and, for subgraphs, ``mode|namespace`` - keeping only the modes requested:

* ``messages-tuple`` is LangGraph's ``messages`` mode, sent as ``messages`` with
  ``[message, metadata]``;
* ``messages`` is the same mode sent the Agent Server's way: ``messages/metadata`` the first
  time a message id is seen, then ``messages/partial`` (chunks, accumulated per id) or
  ``messages/complete``.

The same class runs on the server (local tiers) and in a Celery worker (queue mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: What clients may ask for; ``events`` (``astream_events``) is not offered (see the README).
CLIENT_MODES = (
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "debug",
    "tasks",
    "checkpoints",
)
INTERRUPT = "__interrupt__"


def graph_modes(requested: Sequence[str]) -> list[str]:
    """LangGraph stream modes for the client's ``requested`` modes, plus values and updates."""
    modes = {"values", "updates"}
    for mode in requested:
        modes.add("messages" if mode in ("messages", "messages-tuple") else mode)
    return sorted(modes)


class RunEvents:
    """See the module docstring. ``values``: the last root-level values chunk (what
    ``invoke`` returns, ``__interrupt__`` included when the run paused)."""

    def __init__(self, requested: Sequence[str], subgraphs: bool) -> None:
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self.values: Any = None
        self.interrupts: list[Any] = []
        self._messages: dict[Any, Any] = {}

    def take(self, chunk: Any) -> list[tuple[str, Any]]:
        """The events for one chunk (``(mode, data)`` or ``(namespace, mode, data)``)."""
        if self.subgraphs:
            namespace, mode, data = chunk
        else:
            (mode, data), namespace = chunk, ()
        root = not namespace
        suffix = "".join(f"|{part}" for part in namespace)
        if root and mode == "values":
            self.values = data
        if root and mode == "updates" and isinstance(data, dict) and data.get(INTERRUPT):
            self.interrupts.extend(data[INTERRUPT])
        if mode == "messages":
            if "messages-tuple" in self.requested:
                return [("messages" + suffix, list(data))]
            if "messages" in self.requested:
                return self._message_events(data)
            return []
        if mode in self.requested:
            return [(mode + suffix, data)]
        return []

    def _message_events(self, data: Any) -> list[tuple[str, Any]]:
        message, metadata = data
        events: list[tuple[str, Any]] = []
        key = getattr(message, "id", None)
        seen = self._messages.get(key)
        if seen is None:
            self._messages[key] = message
            events.append(("messages/metadata", {key: {"metadata": metadata}}))
        else:
            try:
                self._messages[key] = seen + message
            except TypeError:  # not a chunk: the newest wins
                self._messages[key] = message
        is_chunk = "Chunk" in type(message).__name__
        name = "messages/partial" if is_chunk else "messages/complete"
        events.append((name, [self._messages[key]]))
        return events

    def output(self) -> Any:
        """What ``runs.wait`` returns: the last values (with ``__interrupt__`` if paused)."""
        values = self.values
        if self.interrupts and isinstance(values, dict) and INTERRUPT not in values:
            return {**values, INTERRUPT: self.interrupts}
        return {} if values is None else values
