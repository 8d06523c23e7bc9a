"""The caller's ``__main__`` in worker processes: imported when a run needs it, never at start.

multiprocessing's ``spawn`` and ``forkserver`` start methods run the parent's main script again
(as ``__mp_main__``) in every child before the child's target starts, and in the forkserver
itself, so that functions pickled by reference to ``__main__`` can be found. That is why a
script that starts processes at import time needs ``if __name__ == "__main__":``: without it,
each child runs the script's top level again, which starts a child of its own, and
multiprocessing ends that with a RuntimeError about the "bootstrapping phase" deep in the
child's output (the host saw only a worker that died while starting).

A subiso worker pickles nothing from ``__main__``: its target is ``worker_main``, and runs
arrive as msgpack naming graphs by import path. So workers start without the caller's main
module (:func:`main_not_inherited` drops it from the preparation data multiprocessing hands the
child, and from the forkserver's, when subiso starts it), and a worker's ``__main__`` is a
stand-in (:class:`LazyMain`) that imports the caller's script the first time something looks
up a name in it: a ``"__main__:wf"`` target, a ``preload``/``worker_init`` naming
``__main__``, a value of a class defined there. Only then does the script's top level run in
the worker, as multiprocessing would have run it, with the same "bootstrapping" protection: a
script that starts a worker process while being imported so gets an error saying to put the
executor under the guard (:func:`refuse_start_while_importing_main`), in the worker that loads
it and in the message the caller sees.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

#: How a worker finds the caller's main module: ("path", file) or ("name", module), as
#: multiprocessing's ``init_main_from_path`` / ``init_main_from_name``; None: it has none.
MainRef = tuple[str, str]

GUARD_HINT = (
    "put the code that creates and runs the executor under `if __name__ == '__main__':` "
    "(worker processes import the main module when a run needs something defined in it)"
)

_omit = threading.local()
_wrap_lock = threading.Lock()


class MainModuleUnavailable(AttributeError):
    """A name looked up in a worker's ``__main__`` whose caller's script cannot be imported.

    An AttributeError, so ``hasattr(__main__, ...)`` probes stay False; ``why`` says what
    happened (read by the target resolver's message)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"module '__main__' has no attribute {name!r}: {why}")
        self.name = name
        self.why = why


class StartedWhileImportingMain(RuntimeError):
    """A worker process was about to start while this process imports its parent's main
    module: the script starts an executor at import time, without the main guard."""


# -- host side ---------------------------------------------------------------------------------
def main_reference() -> MainRef | None:
    """Where a worker would import this process's ``__main__`` from (multiprocessing's rule);
    inside a worker, the reference its own stand-in holds."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    forwarded = vars(main).get("__subiso_main_ref__")
    if forwarded is not None:
        return forwarded  # type: ignore[no-any-return]
    spec_name = getattr(vars(main).get("__spec__"), "name", None)
    if spec_name is not None:
        return ("name", spec_name)
    path = vars(main).get("__file__")
    if path is None:
        return None
    from multiprocessing import process, spawn

    if sys.platform == "win32" and (spawn.WINEXE or spawn.WINSERVICE):
        return None
    if not os.path.isabs(path) and process.ORIGINAL_DIR is not None:  # type: ignore[attr-defined]
        path = os.path.join(process.ORIGINAL_DIR, path)  # type: ignore[attr-defined]
    return ("path", os.path.normpath(path))


def _wrap_preparation_data() -> None:
    """Wrap ``multiprocessing.spawn.get_preparation_data`` once: unchanged, except on a thread
    inside :func:`main_not_inherited`, where it leaves the main module out."""
    from multiprocessing import spawn

    with _wrap_lock:
        original = spawn.get_preparation_data
        if getattr(original, "__subiso_wrapped__", False):
            return

        @functools.wraps(original)
        def get_preparation_data(name: str) -> dict[str, Any]:
            data: dict[str, Any] = original(name)
            if getattr(_omit, "active", False):
                data.pop("init_main_from_path", None)
                data.pop("init_main_from_name", None)
            return data

        get_preparation_data.__subiso_wrapped__ = True  # type: ignore[attr-defined]
        spawn.get_preparation_data = get_preparation_data


@contextlib.contextmanager
def main_not_inherited() -> Iterator[None]:
    """Processes started on this thread meanwhile do not import the caller's ``__main__``
    before their target runs (nor does a forkserver started meanwhile, for its preload)."""
    _wrap_preparation_data()
    _omit.active = True
    try:
        yield
    finally:
        _omit.active = False


def importing_main() -> str | None:
    """If this process is a child importing its parent's main module right now (the
    multiprocessing "bootstrapping phase"), that module's file or name, else None."""
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return None
    module = sys.modules.get("__mp_main__")
    return str(getattr(module, "__file__", None) or getattr(module, "__name__", "__main__"))


def refuse_start_while_importing_main(what: str) -> None:
    """Raise :class:`StartedWhileImportingMain` if this process is importing its parent's
    main module: starting ``what`` now would recurse (each child importing the script again),
    so multiprocessing would refuse it with a less helpful message."""
    main = importing_main()
    if main is not None:
        _LOAD["guard_tripped"] = True
        raise StartedWhileImportingMain(
            f"process {os.getpid()} was importing its parent's main module {main}, which "
            f"starts {what} at import time: {GUARD_HINT}"
        )


# -- worker side -------------------------------------------------------------------------------
_LOAD: dict[str, Any] = {}  # "module" once imported, "error" once failed, "loading" meanwhile
_LOAD_LOCK = threading.RLock()


class LazyMain(types.ModuleType):
    """A worker's ``__main__`` until a name is looked up in it; then the caller's script,
    imported as multiprocessing imports it (``__mp_main__``), answers for it."""

    def __init__(self, ref: MainRef | None) -> None:
        super().__init__("__main__", "The caller's main module, imported on first use.")
        vars(self)["__subiso_main_ref__"] = ref

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # __file__, __path__... probes
            raise AttributeError(f"module '__main__' has no attribute {name!r}")
        return getattr(_load_main(vars(self)["__subiso_main_ref__"], name), name)


def _load_main(ref: MainRef | None, name: str) -> types.ModuleType:
    """The caller's main module, imported once (any thread; others wait for it)."""
    with _LOAD_LOCK:
        if "module" in _LOAD:
            return _LOAD["module"]  # type: ignore[no-any-return]
        if "error" in _LOAD:
            raise MainModuleUnavailable(name, _LOAD["error"])
        if _LOAD.get("loading"):
            raise MainModuleUnavailable(name, "the caller's main module is still being imported")
        if ref is None:
            raise MainModuleUnavailable(
                name, "the caller has no main module a worker can import (an interactive session?)"
            )
        kind, where = ref
        if kind == "name" and (where == "__main__" or where.endswith(".__main__")):
            # as multiprocessing: a package's __main__ runs its main-only code unconditionally
            raise MainModuleUnavailable(
                name, f"the caller's main module is {where}, which workers do not import"
            )
        from multiprocessing import spawn

        stand_in = sys.modules.get("__main__")
        current: Any = multiprocessing.current_process()
        _LOAD["loading"] = True
        current._inheriting = True  # what multiprocessing sets while importing the main module
        try:
            spawn.prepare({f"init_main_from_{kind}": where})
        except BaseException as exc:  # SystemExit too: the script's top level must not end us
            if _LOAD.get("guard_tripped"):
                why = (
                    f"worker process {current.pid} imported the caller's main module {where}, "
                    f"which starts worker processes at import time: {GUARD_HINT}"
                )
            else:
                why = (
                    f"worker process {current.pid} could not import the caller's main module "
                    f"{where}: {type(exc).__name__}: {exc}"
                )
            _LOAD["error"] = why
            raise MainModuleUnavailable(name, why) from exc
        finally:
            del current._inheriting
            _LOAD["loading"] = False
        module = sys.modules.get("__main__")
        if module is None or module is stand_in:
            why = f"multiprocessing does not import the caller's main module {where} in workers"
            _LOAD["error"] = why
            raise MainModuleUnavailable(name, why)
        _LOAD["module"] = module
        return module


def install_lazy_main(ref: MainRef | None) -> None:
    """Make this worker's ``__main__`` the stand-in for the caller's (before anything runs),
    unless it is the caller's already (forked from a forkserver that preloaded it for another
    user of multiprocessing)."""
    current = sys.modules.get("__main__")
    if ref is not None and current is not None:
        kind, where = ref
        if kind == "path" and vars(current).get("__file__") == where:
            return
        if kind == "name" and getattr(vars(current).get("__spec__"), "name", None) == where:
            return
    sys.modules["__main__"] = LazyMain(ref)


def worker_entry(ref: MainRef | None, *args: Any) -> None:
    """A worker process's target: the lazy ``__main__``, then ``worker_main``."""
    install_lazy_main(ref)
    from subiso.executors.process.worker import worker_main

    worker_main(*args)
