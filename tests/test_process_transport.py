"""The process tier's run pipe with large frames out of band (``executors.process.transport``).

* A FramePipe pair (two ends of a socket pair, two small rings) delivers every frame, in
  order and intact: large frames through the ring, small ones and those the ring has no room
  for through the socket, the ring wrapping around and given back as frames are read;
* through real workers, large states cross both ways through the rings, exactly; runs whose
  large frames wait unread in a worker's ring when it crashes go to a new worker and come back
  intact (nothing is lost mid-transfer).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from subiso.errors import WorkerCrashed
from subiso.executors.process import ProcessExecutor, transport
from subiso.executors.process.transport import BULK, FramePipe, SharedRing

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="no memfd: plain pipes here"),
]

P = "tests.process_workloads"


def _pair(capacity: int) -> tuple[FramePipe, FramePipe]:
    a, b = socket.socketpair()
    ab, ba = SharedRing.create(capacity), SharedRing.create(capacity)
    assert ab is not None and ba is not None
    return FramePipe(a.detach(), ab, ba), FramePipe(b.detach(), ba, ab)


def _frame(i: int, size: int) -> bytes:
    return (i.to_bytes(4, "big") * (size // 4 + 1))[:size]


def test_frames_arrive_in_order_and_intact_through_ring_and_socket() -> None:
    capacity = 4 * BULK
    left, right = _pair(capacity)
    sizes = [10, BULK, 2 * BULK, 100, BULK + 1, 3 * BULK, BULK, 5 * BULK, 7, 2 * BULK] * 6
    got: list[bytes] = []
    reader_started = threading.Event()
    release_reader = threading.Event()

    def read() -> None:
        reader_started.set()
        release_reader.wait()  # let the writer fill the ring first: it must fall back
        for _ in sizes:
            got.append(bytes(right.recv_bytes()))  # copied: a ring frame lasts until the next

    reader = threading.Thread(target=read)
    reader.start()
    reader_started.wait()
    try:
        for i, size in enumerate(sizes[:5]):
            left.send_bytes(_frame(i, size))  # fills the ring with nobody reading: the 5th
        release_reader.set()  # (BULK + 1) has no room there, so it goes in the socket
        for i, size in enumerate(sizes[5:], start=5):
            left.send_bytes(_frame(i, size))
        reader.join(60)
    finally:
        release_reader.set()
        left.close()
        right.close()
    assert [len(f) for f in got] == sizes
    assert got == [_frame(i, size) for i, size in enumerate(sizes)]
    placed = left._writer.placed  # the frames that went through the ring, in order
    bulky = sum(1 for s in sizes if BULK <= s <= capacity)
    assert 0 < placed < bulky  # the ring carried most of them, the socket the rest


def test_a_frame_from_the_ring_is_valid_until_the_next_read() -> None:
    left, right = _pair(4 * BULK)
    try:
        left.send_bytes(_frame(1, BULK))
        first = right.recv_bytes()
        assert isinstance(first, memoryview) and first.readonly
        assert bytes(first) == _frame(1, BULK)
        left.send_bytes(_frame(2, BULK))  # the first is still held: placed after it
        assert bytes(first) == _frame(1, BULK)
        assert bytes(right.recv_bytes()) == _frame(2, BULK)
    finally:
        left.close()
        right.close()


def test_one_frame_at_a_time_keeps_to_the_start_of_the_ring() -> None:
    """A reader holds its last frame until it reads the next: frames then alternate between
    two places at the start of the ring, instead of marching through (and taking the pages
    of) all of it."""
    size = 2 * BULK
    left, right = _pair(64 * size)
    try:
        for i in range(200):
            left.send_bytes(_frame(i, size))
            assert max(end for _, _, end in left._writer.spans) <= 2 * size
            assert bytes(right.recv_bytes()) == _frame(i, size)
    finally:
        left.close()
        right.close()


def test_frames_keep_connections_format_and_survive_short_reads_and_eof() -> None:
    """FramePipe writes and reads its socket frames itself: they stay ``Connection``'s (a plain
    Connection reads them, and they read its), a frame that arrives a few bytes at a time is
    put together whole, and an end that closes says EOFError between frames, OSError inside
    one - what ``Connection`` says, and what the host's triage tells apart."""
    from multiprocessing.connection import Connection

    a, b = socket.socketpair()
    ring, other = SharedRing.create(4 * BULK), SharedRing.create(4 * BULK)
    assert ring is not None and other is not None
    pipe, plain = FramePipe(a.detach(), ring, other), Connection(b.detach())
    try:
        sizes = [0, 1, 1000, transport._SMALL_MAX, transport._SMALL_MAX + 1, BULK - 1]
        for i, size in enumerate(sizes):
            pipe.send_bytes(_frame(i, size))
            assert plain.recv_bytes() == _frame(i, size)
            plain.send_bytes(_frame(i, size))
            assert pipe.recv_bytes() == _frame(i, size)
        # a frame that trickles in: its header, then its bytes, a few at a time
        frame = _frame(7, 5000)
        wire = len(frame).to_bytes(4, "big") + frame
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(pipe.recv_bytes()))
        reader.start()
        fd = plain.fileno()
        for start in range(0, len(wire), 3):
            os.write(fd, wire[start : start + 3])
        reader.join(60)
        assert got == [frame]
        os.write(fd, (100).to_bytes(4, "big") + b"only part")  # then the writer is gone
    finally:
        plain.close()
    with pytest.raises(OSError, match="end of file during message"):
        pipe.recv_bytes()
    with pytest.raises(EOFError):
        pipe.recv_bytes()  # nothing more: the end, between frames
    pipe.close()
    with pytest.raises(OSError):
        pipe.send_bytes(b"after close")


def test_run_pipe_falls_back_to_a_plain_connection_without_memfd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiprocessing

    monkeypatch.delattr(os, "memfd_create")
    host_end, worker_end, started = transport.run_pipe(multiprocessing.get_context("spawn"))
    try:
        assert not isinstance(host_end, FramePipe)
        worker_end.send_bytes(b"x" * (2 * BULK))
        assert host_end.recv_bytes() == b"x" * (2 * BULK)
    finally:
        started()
        host_end.close()


def _states(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "text": f"{i:04d}" * (BULK // 2), "pair": (i, str(i))} for i in range(n)]


def test_large_states_cross_both_ways_through_the_rings() -> None:
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        for state in _states(3):
            out = ex.run({"graph": f"{P}:echo", "input": state})
            assert out == state and type(out["pair"]) is tuple
        (worker,) = ex._workers
        assert isinstance(worker.conn, FramePipe)
        assert worker.conn._writer.placed == 3  # each request went through the ring
        assert worker.conn._reader.given_back >= 2  # the replies came through the other


def test_large_frames_unread_in_a_crashed_workers_ring_are_sent_again(tmp_path: Path) -> None:
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    os.mkfifo(started)
    os.mkfifo(release)
    states = _states(5)
    with ProcessExecutor(max_workers=1, prestart=True) as ex:
        crash = ex.submit({"graph": f"{P}:hold_then_exit", "input": [started, release]})
        with open(started) as f:
            assert f.read() == "started"  # the worker's main thread is inside it
        waiting = [ex.submit({"graph": f"{P}:echo", "input": s}) for s in states]
        (worker,) = ex._workers
        assert worker.conn._writer.placed == len(states)  # all in its ring, unread
        with open(release, "w") as f:
            f.write("released")
        with pytest.raises(WorkerCrashed, match="exited with code 3"):
            crash.result()
        assert [f.result() for f in waiting] == states
