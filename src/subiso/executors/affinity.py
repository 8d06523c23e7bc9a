"""thread_id affinity: a pooled tier sends a LangGraph thread's runs to the worker that served it
last, while that worker lives and is not backed up.

Why: that worker's loop holds the thread's checkpointer connection and compiled graph warm, and
in the process tier its ``"memory"`` checkpointer is the only place the thread's checkpoints
live. A worker that is gone (replaced, recycled) or has ``BACKLOG`` runs in flight is passed
over for the least-busy one, which then becomes the thread's worker.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

W = TypeVar("W")

#: A thread's runs stay with their worker while it has fewer runs in flight than this.
BACKLOG = 4
#: thread_ids remembered; the least recently used is forgotten first.
ENTRIES = 4096


class Affinity(Generic[W]):
    """thread_id -> the worker that last served it (callers hold their dispatch lock)."""

    def __init__(self) -> None:
        self._last: OrderedDict[str, W] = OrderedDict()

    def preferred(
        self, thread_id: str | None, load: Callable[[W], int | None], *, pinned: bool = False
    ) -> W | None:
        """The thread's worker if ``load(worker)`` (None: gone or not serving) is below
        ``BACKLOG`` - at any load when the run is ``pinned`` (its checkpoints live only in that
        worker) - else None."""
        if thread_id is None:
            return None
        worker = self._last.get(thread_id)
        if worker is None:
            return None
        in_flight = load(worker)
        if in_flight is None or (in_flight >= BACKLOG and not pinned):
            return None
        self._last.move_to_end(thread_id)
        return worker

    def remember(self, thread_id: str | None, worker: W) -> None:
        if thread_id is None:
            return
        self._last[thread_id] = worker
        self._last.move_to_end(thread_id)
        if len(self._last) > ENTRIES:
            self._last.popitem(last=False)
