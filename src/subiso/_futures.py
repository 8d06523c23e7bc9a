"""Future plumbing every tier shares: settle once, relay, and one timer thread for deadlines.

Written once because each tier resolves ``concurrent.futures.Future`` objects from threads that
race with the caller's ``cancel()``: the rules (a cancelled future stays cancelled, a settled one
is never set twice, waiters of ``wait``/``as_completed`` are always notified) live here only.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class Settleable(Protocol):
    """What :func:`settle` and :func:`cancel_and_notify` resolve: a ``concurrent.futures.Future``
    or a :class:`Waiter`."""

    def done(self) -> bool: ...

    def running(self) -> bool: ...

    def cancel(self) -> bool: ...

    def set_running_or_notify_cancel(self) -> bool: ...

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


def settle(future: Settleable, value: Any = None, *, exc: BaseException | None = None) -> None:
    """Resolve ``future`` (pending or running) unless a cancel or another outcome came first."""
    if type(future) is Waiter:
        future.settle(value, exc)
        return
    if future.done():
        return
    try:
        if not future.running() and not future.set_running_or_notify_cancel():
            return  # the caller cancelled it
    except RuntimeError:  # already settled
        return
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
    except cf.InvalidStateError:  # settled meanwhile by another thread
        pass


def cancel_and_notify(future: Settleable) -> None:
    """Cancel a future we own and wake its waiters (``wait``/``as_completed``)."""
    if future.cancel():
        try:
            future.set_running_or_notify_cancel()
        except RuntimeError:  # already notified
            pass


def running_future() -> cf.Future[Any]:
    """A future only its producer resolves: RUNNING, so no consumer's ``cancel()`` reaches it."""
    future: cf.Future[Any] = cf.Future()
    future.set_running_or_notify_cancel()
    return future


def done_future(value: Any) -> cf.Future[Any]:
    future: cf.Future[Any] = cf.Future()
    future.set_result(value)
    return future


class Waiter:
    """The outcome of one run whose caller blocks on its own thread until the run ends: what a
    worker settles instead of a ``concurrent.futures.Future`` when nobody else looks at it.

    A future's ``result()`` waits on a ``threading.Condition`` - Python code allocating a lock
    per wait and notifying through a waiters list - where one caller needs one lock released
    once: on the thread tier's trivial graph the future cost 0.5-2% of a run (paired runs on
    3.13 and 3.14). It keeps the future's rules that the tiers rely on: a run that has not
    started can be cancelled (``close(cancel_pending=True)``) and then never runs, a running
    one cannot, and it is settled once; ``result()`` raises ``CancelledError`` or the run's
    exception, as ``Future.result()`` does.

    Used by the thread tier's and the process tier's sync ``run()``/``execute()`` without a
    timeout (a run with one keeps its future: its deadline is watched on it). On the process
    tier the run stays cancellable until settled, as its futures are: nothing there calls
    ``set_running_or_notify_cancel`` before the reply (see :func:`settle`).
    """

    __slots__ = ("_done", "_error", "_lock", "_state", "_value")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()  # released once, when settled or cancelled
        self._lock = threading.Lock()
        self._state = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._state >= _CANCELLED  # cancelled or finished (the states' order below)

    def running(self) -> bool:
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def set_running_or_notify_cancel(self) -> bool:
        with self._lock:
            if self._state == _CANCELLED:
                return False
            if self._state != _PENDING:
                raise RuntimeError("Waiter in unexpected state")
            self._state = _RUNNING
            return True

    def cancel(self) -> bool:
        """Cancel the run if it has not started; True when it is (or was) cancelled."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
                self._done.release()
            return self._state == _CANCELLED

    def set_result(self, result: Any) -> None:
        if not self.settle(result, None):
            raise cf.InvalidStateError("Waiter already settled")

    def set_exception(self, exception: BaseException) -> None:
        if not self.settle(None, exception):
            raise cf.InvalidStateError("Waiter already settled")

    def settle(self, value: Any, error: BaseException | None) -> bool:
        """Settle it unless it is settled or cancelled already (then False): what
        :func:`settle` does to a future in four calls."""
        with self._lock:
            if self._state >= _CANCELLED:
                return False
            self._value, self._error, self._state = value, error, _FINISHED
        self._done.release()
        return True

    def result(self) -> Any:
        """Block until settled (a signal such as Ctrl-C interrupts the wait, not the run)."""
        self._done.acquire()
        self._done.release()  # settled for good: a second result() returns at once
        if self._state == _CANCELLED:
            raise cf.CancelledError()
        if self._error is not None:
            try:
                raise self._error
            finally:
                self = None  # type: ignore[assignment]  # no cycle through the traceback
        return self._value


_PENDING, _RUNNING, _CANCELLED, _FINISHED = range(4)


class DerivedFuture(cf.Future[T]):
    """A future whose outcome is copied from another one, its *source*, once it follows one.

    It reports the source's state rather than its own: ``running()`` while the source runs,
    and ``cancel()`` succeeds only if the source can still be cancelled - so a caller's
    ``cancel()`` returns True only when the run will not happen, as the stdlib promises.
    """

    _source: cf.Future[Any] | None = None

    def follow(self, source: cf.Future[Any] | None) -> None:
        self._source = source

    def cancel(self) -> bool:
        source = self._source
        if source is not None and not self.done() and not source.cancel():
            return False  # the source runs (or ran): this run will complete
        return super().cancel()

    def running(self) -> bool:
        source = self._source
        if source is not None and not self.done():
            return source.running()
        return super().running()


def relay(
    inner: cf.Future[T],
    outer: cf.Future[U],
    transform: Callable[[T], U] | None = None,
    *,
    on_cancel: Callable[[cf.Future[T]], None] | None = None,
) -> cf.Future[U]:
    """Copy ``inner``'s outcome into ``outer`` (through ``transform``); cancelling ``outer``
    cancels ``inner``, and when ``inner`` already runs, calls ``on_cancel(inner)`` to stop it on
    its worker. A :class:`DerivedFuture` ``outer`` follows ``inner``'s state as well."""
    if isinstance(outer, DerivedFuture):
        outer.follow(inner)
    # Neither future may keep the other alive once inner is done (a future keeps its done
    # callbacks): cancel_inner holds inner weakly and copy stops outer following it, or each
    # run's result would wait for the cyclic collector, which then has all of them to walk.
    inner_ref = weakref.ref(inner)

    def copy(done: cf.Future[T]) -> None:
        if isinstance(outer, DerivedFuture):
            outer.follow(None)
        if done.cancelled():
            cancel_and_notify(outer)
        elif (exc := done.exception()) is not None:
            settle(outer, exc=exc)
        else:
            try:
                value: Any = done.result() if transform is None else transform(done.result())
            except BaseException as error:
                settle(outer, exc=error)
            else:
                settle(outer, value)

    def cancel_inner(done: cf.Future[U]) -> None:
        source = inner_ref()
        if done.cancelled() and source is not None and not source.cancel() and on_cancel:
            on_cancel(source)

    outer.add_done_callback(cancel_inner)
    inner.add_done_callback(copy)
    return outer


def join_all(threads: Iterable[threading.Thread]) -> None:
    """Join every thread but the calling one: ``close()`` may be called from a done-callback,
    which runs on one of the threads it closes; that one ends once its callback returns."""
    me = threading.current_thread()
    for thread in threads:
        if thread is not me:
            thread.join()


def _nothing() -> None:
    pass


class Deadline:
    """A scheduled call; ``cancel()`` makes it a no-op."""

    __slots__ = ("cancelled", "fn", "owner", "when")

    def __init__(self, when: float, fn: Callable[[], None], owner: Deadlines) -> None:
        self.when = when
        self.fn = fn
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        self.owner._cancel(self)


class Deadlines:
    """Calls functions at monotonic deadlines on one daemon thread, alive only while a call is
    pending: it starts with the first and ends when none is left (so an idle executor holds no
    timer thread, and a test's thread count returns to where it was).

    Callbacks run on that thread, outside its lock, one after another, so they must be short
    (settle a future, send a signal, kill a process).
    """

    _PRUNE_AT = 4096  # drop cancelled entries when the heap grows past this

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._live = 0  # entries neither cancelled nor run
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_later(self, delay: float, fn: Callable[[], None]) -> Deadline:
        entry = Deadline(time.monotonic() + delay, fn, self)
        with self._cond:
            if self._stopped:
                entry.cancelled = True
                return entry
            if len(self._heap) > self._PRUNE_AT:
                self._heap = [item for item in self._heap if not item[2].cancelled]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (entry.when, next(self._seq), entry))
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is entry:
                self._cond.notify()
        return entry

    def _cancel(self, entry: Deadline) -> None:
        with self._cond:
            entry.fn = _nothing  # a cancelled entry waits in the heap: not what it would call
            if entry.cancelled:
                return
            entry.cancelled = True
            self._live -= 1
            if not self._live:
                self._cond.notify()  # nothing left: the thread ends

    def _main(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped or not self._live:
                        self._heap.clear()
                        self._thread = None
                        return
                    now = time.monotonic()
                    when, _, entry = self._heap[0]
                    if entry.cancelled:
                        heapq.heappop(self._heap)
                        continue
                    if when <= now:
                        heapq.heappop(self._heap)
                        entry.cancelled = True  # run: no longer pending
                        self._live -= 1
                        break
                    self._cond.wait(when - now)
            entry.fn()

    def stop(self, wait: bool = True) -> None:
        """Drop every pending call and end the thread (joined unless called from it)."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._live = 0
            self._cond.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()
