"""Failure types, one per thing that can go wrong, so callers can catch exactly what they mean.

Deliberately free of third-party imports: the errors are raised on the host and, for the
subinterpreter tier, named inside interpreters that cannot import msgspec.
"""

from __future__ import annotations

from typing import Any


class SubisoError(Exception):
    """Base class of every error subiso raises itself (workflow errors keep their own type).

    ``run_id`` names the run it was raised for (``RunReport.run_id``, the ``run_id`` of the
    run's log records); None for errors raised before there was a run (a bad option).
    """

    run_id: str | None = None


class ConfigError(SubisoError, ValueError):
    """A GraphConfig, settings file or executor option is wrong; the message names the field."""


class RunTimeout(SubisoError, TimeoutError):
    """A run went past its timeout; it was cancelled (or its worker replaced) and the pool lives on."""


class RunAborted(SubisoError):
    """A run raised ``SystemExit`` or ``KeyboardInterrupt`` (its ``__cause__``): reported to its
    caller as this, so a node (or a target such as ``"sys:exit"``) can neither end the host nor
    kill the worker it ran on."""


class WorkerCrashed(SubisoError, RuntimeError):
    """This run's worker died (exit code or signal in the message); the pool lives on.

    ``culprit`` is the GraphConfig of the run that brought the worker down when subiso knows it
    (this run's own config if it was the one; another run's if this one was only in flight
    beside it and could not be retried safely), else None.

    Not a ``concurrent.futures.BrokenExecutor``: that means "the pool is dead", and code written
    for the stdlib would rebuild a pool that has already replaced the worker.
    """

    def __init__(self, *args: object, culprit: Any = None) -> None:
        super().__init__(*args)
        self.culprit = culprit


class SerializationError(SubisoError, TypeError):
    """A value could not cross a process or interpreter boundary; the message names its key path."""


class NotIsolatable(SubisoError):
    """An offloaded function cannot reach a subinterpreter; the message names what blocks it."""


class ServiceUnreachable(SubisoError, ConnectionError):
    """A checkpointer's or store's server did not answer (refused, or silent past the connect
    timeout); the message names host and port, never the password. Nothing retries behind
    the caller's back: run again once the server is back."""


class TierUnavailable(SubisoError, RuntimeError):
    """The requested tier cannot run on this Python and no fallback was allowed."""


class ExecutorClosed(SubisoError, RuntimeError):
    """Work was submitted to an executor after close()."""


class RemoteError(SubisoError):
    """Stands in for a worker-side exception whose type cannot be rebuilt in the caller.

    Raised when the type cannot be imported under its ``module:qualname`` or is not an exception
    class; the message is ``"module.qualname: message"`` and ``__cause__`` the remote traceback.
    """


class RemoteTraceback(Exception):
    """Carries a worker-side traceback as text; set as ``__cause__`` of a re-raised exception.

    The same convention as ``concurrent.futures.process``: the original exception type is
    raised in the caller and ``raise ... from RemoteTraceback(text)`` prints where it happened.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb
