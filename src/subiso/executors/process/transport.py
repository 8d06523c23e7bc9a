"""A worker's run pipe with its large frames out of band: :class:`FramePipe`.

The run pipe carries one msgpack frame per message (see :mod:`.wire`). Through the socket a
frame is copied into the kernel and out again in 8 KiB reads (``multiprocessing``'s), with the
two processes taking turns as the socket buffer fills: a 1 MB frame each way costs 0.9-1.5 ms
on a 2-core machine, more than encoding it. So a frame of :data:`BULK` bytes or more is
copied into a ring of memory both processes map (:class:`SharedRing`) and only a 17-byte
*pointer frame* (its offset and length) goes through the socket: 0.13-0.15 ms for the same
round trip. The reader decodes the frame where it lies and gives the space back when it asks
for the next frame. Where the ring has no room (frames outpacing their reader, or a frame
larger than the ring) a frame goes through the socket as before; the two kinds keep their
order, as both travel the socket.

Nothing is lost if either side dies mid-transfer: a frame is whole in the ring before its
pointer is sent, and the pointer is what the reader waits for. A worker that dies before it
has sent its pointer has sent nothing (the host sees its end close, as before, and triages
its runs); the host's count of the frames a worker has read (``frames_read``) still tells
which runs never started. The memory is a Linux ``memfd``: it has no name to leak, is not
bounded by the size of ``/dev/shm``, and goes with the last process that maps it. Pages are
taken as frames are written there, from the start of the ring whenever it is empty, so a
worker holds about twice its largest frame per direction, until it exits.

Where ``os.memfd_create`` is missing (macOS, Windows) the run pipe is the plain
``Connection``.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

#: Frames this long or longer go through shared memory (shorter ones cost no more in the
#: socket, and leave the ring's pages untouched).
BULK = 64 * 1024
#: Bytes of frames a ring holds at once, per direction (memory is taken only as it is used).
CAPACITY = 256 * 1024 * 1024

_MARK = 0xC1  # "never used" in msgpack: no encoded message starts with it
_POINTER = struct.Struct("<BQQ")  # mark, offset, length
_COUNT = struct.Struct("<Q")
_HEADER = 64  # the reader's count of frames given back, on a cache line of its own


class SharedRing:
    """One direction's shared memory: a header, then ``capacity`` bytes of frames.

    Pickled into a worker's arguments, it is mapped there too (its fd is passed as
    ``multiprocessing`` passes a pipe's)."""

    def __init__(self, fd: int, capacity: int) -> None:
        self.fd: int | None = fd
        self.capacity = capacity
        self._map = mmap.mmap(fd, _HEADER + capacity)
        self.view: memoryview | None = memoryview(self._map)

    @classmethod
    def create(cls, capacity: int = CAPACITY) -> SharedRing | None:
        """A new ring, or None where there is no ``memfd`` (or it cannot be made)."""
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is None:
            return None
        try:
            fd = memfd_create("subiso-frames", os.MFD_CLOEXEC)
        except OSError:
            return None
        try:
            os.ftruncate(fd, _HEADER + capacity)  # sparse: no memory is taken yet
            return cls(fd, capacity)
        except (OSError, ValueError):
            os.close(fd)
            return None

    def __reduce__(self) -> tuple[Callable[..., SharedRing], tuple[Any, ...]]:
        from multiprocessing.reduction import DupFd

        assert self.fd is not None, "a ring is passed to a worker before it starts"
        return _attach, (DupFd(self.fd), self.capacity)

    def close_fd(self) -> None:
        """Close the descriptor (the mapping stays): once the worker has its own copy."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self.close_fd()
        view, self.view = self.view, None
        if view is not None:
            view.release()
            try:
                self._map.close()
            except BufferError:  # a frame is still referenced: the map goes with it
                pass


def _attach(dup: Any, capacity: int) -> SharedRing:
    ring = SharedRing(dup.detach(), capacity)
    ring.close_fd()  # the mapping keeps the memory; no descriptor for a subprocess to inherit
    return ring


class _Writer:
    """Places frames in a ring (under the pipe's send lock) and learns which ones the reader
    gave back from the count it keeps in the ring's header."""

    def __init__(self, ring: SharedRing) -> None:
        self.ring = ring
        self.placed = 0
        self.spans: deque[tuple[int, int, int]] = deque()  # (number, start, end) not given back

    def place(self, frame: Any) -> bytes | None:
        """The pointer frame for ``frame``, now in the ring; None when it goes in the socket."""
        ring = self.ring
        size = len(frame)
        if size < BULK or size > ring.capacity or ring.view is None:
            return None
        given_back = _COUNT.unpack_from(ring.view, 0)[0]
        spans = self.spans
        while spans and spans[0][0] <= given_back:
            spans.popleft()
        start = self._room(size)
        if start is None:
            return None
        ring.view[_HEADER + start : _HEADER + start + size] = frame
        self.placed += 1
        spans.append((self.placed, start, start + size))
        return _POINTER.pack(_MARK, start, size)

    def _room(self, size: int) -> int | None:
        """Where a frame of ``size`` bytes goes: the lowest free offset it fits at, so the
        pages in use stay as few as the frames in flight need (a reader holds its last frame
        until it reads the next: one at a time alternates between two places)."""
        spans = self.spans
        if not spans:
            return 0
        oldest, newest = spans[0][1], spans[-1][2]
        if oldest < newest:  # in use: [oldest, newest)
            if oldest >= size:
                return 0
            return newest if self.ring.capacity - newest >= size else None
        return newest if oldest - newest >= size else None  # in use: [oldest, end) + [0, newest)


class _Reader:
    """Hands out the frames a ring holds, each until the next one is asked for."""

    def __init__(self, ring: SharedRing) -> None:
        self.ring = ring
        self.given_back = 0
        self.holding = False
        assert ring.view is not None
        self.frames = ring.view.toreadonly()
        self._fence = threading.Lock()

    def take(self, frame: bytes) -> Any:
        if len(frame) != _POINTER.size or frame[0] != _MARK:
            return frame
        _, start, size = _POINTER.unpack(frame)
        self.holding = True
        return self.frames[_HEADER + start : _HEADER + start + size]

    def give_back(self) -> None:
        if self.holding and self.ring.view is not None:
            self.holding = False
            self.given_back += 1
            # The reads of the frame must be done before the writer can see it given back:
            # a lock's atomic operations are full barriers (on weakly ordered CPUs too).
            with self._fence:
                _COUNT.pack_into(self.ring.view, 0, self.given_back)


class FramePipe(Connection):
    """A run pipe end (a ``Connection``) whose frames of :data:`BULK` bytes or more travel
    through shared memory. ``recv_bytes`` returns such a frame as a read-only ``memoryview``
    of the ring, valid until the next ``recv_bytes`` (every reader decodes a frame before it
    reads the next).

    Frames keep ``Connection``'s format (a 4-byte big-endian length, then the bytes), written
    and read here with one ``os.write`` (two past 16 KiB, as ``Connection`` does) and two
    ``os.read`` calls and no more Python around them: ``Connection``'s layers (checks, a
    ``BytesIO`` per read) cost 0.7-1.5% of a trivial run, host and worker together (paired
    runs against them on 3.13 and 3.14)."""

    def __init__(self, handle: int, out: SharedRing, into: SharedRing) -> None:
        super().__init__(handle)
        self._fd: int | None = handle  # Connection's handle, None once closed
        self._writer = _Writer(out)
        self._reader = _Reader(into)
        self._send_lock = threading.Lock()  # a frame's place and its pointer: one at a time

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        if offset or size is not None:
            super().send_bytes(buf, offset, size)
            return
        with self._send_lock:
            pointer = self._writer.place(buf)
            frame = buf if pointer is None else pointer
            n = len(frame)
            fd = self._fd
            if fd is None or n > _SMALL_MAX:  # closed (Connection says so) or large
                super().send_bytes(frame)
                return
            _write_all(fd, _LENGTH.pack(n) + frame)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._reader.give_back()
        fd = self._fd
        if fd is None or maxlength is not None:
            return self._reader.take(super().recv_bytes(maxlength))  # type: ignore[no-any-return]
        (size,) = _LENGTH.unpack(_read_exact(fd, 4))
        if size == -1:  # a frame of 2 GiB or more: an 8-byte length follows
            (size,) = _LONG_LENGTH.unpack(_read_exact(fd, 8))
        return self._reader.take(_read_exact(fd, size))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._fd = None
        try:
            super().close()
        finally:
            self._reader.frames.release()
            self._writer.ring.close()
            self._reader.ring.close()


#: ``multiprocessing.connection``'s frame header, and the largest frame it sends in one write.
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
_SMALL_MAX = 16384


def _write_all(fd: int, data: bytes) -> None:
    sent = os.write(fd, data)
    while sent < len(data):  # a socket may take part of it
        data = data[sent:]
        sent = os.write(fd, data)


def _read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``; EOFError if it ends before the first, OSError part-way (as
    ``Connection`` raises)."""
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts, got = [data], len(data)
    while got < size:
        if not data:
            if got == 0:
                raise EOFError
            raise OSError("got end of file during message")
        data = os.read(fd, size - got)
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class _WorkerEnd:
    """The worker's end of a run pipe as it travels in the worker's arguments: the socket end
    and the two rings, rebuilt into a :class:`FramePipe` in the worker."""

    def __init__(self, conn: Connection, out: SharedRing, into: SharedRing) -> None:
        self.conn, self.out, self.into = conn, out, into

    def __reduce__(self) -> tuple[Callable[..., FramePipe], tuple[Any, ...]]:
        return _worker_pipe, (self.conn, self.out, self.into)


def _worker_pipe(conn: Connection, out: SharedRing, into: SharedRing) -> FramePipe:
    return FramePipe(_take_handle(conn), out, into)


def _take_handle(conn: Connection) -> int:
    """The socket of ``conn``, for a FramePipe (``conn`` is closed)."""
    fd = os.dup(conn.fileno())
    conn.close()
    return fd


def run_pipe(ctx: Any) -> tuple[Connection, Any, Callable[[], None]]:
    """A worker's run pipe: ``(host end, worker end, started)``. Pass the worker end in the
    worker's arguments and call ``started()`` once the process has started (or failed to):
    it closes what only the worker keeps."""
    parent, child = ctx.Pipe(duplex=True)
    to_worker = SharedRing.create()
    to_host = SharedRing.create() if to_worker is not None else None
    if to_worker is None or to_host is None:
        if to_worker is not None:
            to_worker.close()
        return parent, child, child.close
    host_end = FramePipe(_take_handle(parent), to_worker, to_host)

    def started() -> None:
        child.close()
        to_worker.close_fd()
        to_host.close_fd()

    return host_end, _WorkerEnd(child, to_host, to_worker), started
