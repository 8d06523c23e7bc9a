"""Functions the stdlib pool peers run in their workers (pickled by reference, so they live in
an importable module that imports nothing heavy at import time)."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

_graphs: dict[str, Any] = {}


def init_worker(path: list[str], targets: list[str]) -> None:
    """ProcessPoolExecutor initializer: the host's ``sys.path``, then import the graphs (what a
    user's worker module does at import time)."""
    for entry in reversed(path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for target in targets:
        _graph(target)


def _graph(target: str) -> Any:
    graph = _graphs.get(target)
    if graph is None:
        from subiso.runtime.targets import import_attr

        graph = _graphs[target] = import_attr(target)
    return graph


def invoke(target: str, value: Any, is_async: bool) -> Any:
    """``graph.invoke(value)`` (``asyncio.run(graph.ainvoke(value))`` for async graphs)."""
    graph = _graph(target)
    if is_async:
        return asyncio.run(graph.ainvoke(value))
    return graph.invoke(value)


def pipe_worker(
    conn: Any, path: list[str], target: str, value: Any, reply: bytes, coded: bool = False
) -> None:
    """The physical floor of running a graph in another process: read a frame from a pipe,
    call ``graph.invoke(value)``, write ``reply`` back. Nothing is encoded, nothing decoded,
    nothing reported; what a process tier cannot go below on this machine.

    ``coded``: the frame is the encoded input, decoded with subiso's codec and given to
    ``graph.invoke``, whose output is encoded and sent back - what moving a state across
    costs (objects in, objects out) with none of subiso's bookkeeping."""
    init_worker(path, [target])
    graph = _graph(target)
    # The process tier's worker freezes what a graph's first import loaded (its
    # ``after_import``); the floor does too, or its GC tails would flatter the tier.
    gc.freeze()
    if coded:
        from subiso import codec

        while len(frame := conn.recv_bytes()):
            conn.send_bytes(codec.encode(graph.invoke(codec.decode(frame))))
        return
    while len(conn.recv_bytes()):
        graph.invoke(value)
        conn.send_bytes(reply)


class PipeWorker:
    """Host side of :func:`pipe_worker`: ``call()`` is one round trip with the graph run.

    By default a byte travels each way; give ``request`` and ``reply`` (a workload's encoded
    input and output) to move the bytes a process tier moves, through a plain pipe or, with
    ``shared=True``, through the process tier's own run pipe (frames of 64 KiB or more in
    shared memory, see :mod:`subiso.executors.process.transport`). ``shared`` says whether
    that pipe has shared memory here. ``coded=True``: each call encodes ``value`` with
    subiso's codec and decodes the reply, and the worker decodes, runs and encodes (see
    :func:`pipe_worker`)."""

    def __init__(
        self,
        ctx: Any,
        target: str,
        value: Any,
        *,
        request: bytes = b"x",
        reply: bytes = b"k",
        shared: bool = False,
        coded: bool = False,
    ) -> None:
        if shared:
            from subiso.executors.process.transport import FramePipe, run_pipe

            self._conn, child, started = run_pipe(ctx)
            self.shared = isinstance(self._conn, FramePipe)
        else:
            self._conn, child = ctx.Pipe()
            started, self.shared = child.close, False
        self._request = request
        self._value, self._coded = value, coded
        self._process = ctx.Process(
            target=pipe_worker,
            args=(child, list(sys.path), target, value, reply, coded),
            daemon=True,
        )
        try:
            self._process.start()
        finally:
            started()

    def call(self) -> None:
        if self._coded:
            from subiso import codec

            self._conn.send_bytes(codec.encode(self._value))
            codec.decode(self._conn.recv_bytes())
            return
        self._conn.send_bytes(self._request)
        self._conn.recv_bytes()

    def shutdown(self) -> None:
        self._conn.send_bytes(b"")
        self._process.join(10)
        self._conn.close()
