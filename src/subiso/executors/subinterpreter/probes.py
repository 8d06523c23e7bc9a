"""Isolation probes: does a module import in an own-GIL subinterpreter?

:func:`probe_module` imports a module in a throw-away interpreter, in a daemon thread joined
with a timeout, because importing a non-isolatable extension has hung interpreter pools
(cpython#125864) and, with the 3.13 backport, spun worker threads forever. The verdict (and
the first module that blocked it) is cached per process; nothing reaches a pool interpreter
before its module passed.
"""

from __future__ import annotations

import marshal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from subiso._capabilities import require_backend

DEFAULT_PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProbeVerdict:
    """Whether ``module`` imports in an isolated subinterpreter, and if not, what blocked it."""

    module: str
    ok: bool
    blocked_by: str | None = None  # first non-isolatable module, e.g. pydantic_core._pydantic_core
    reason: str = ""
    seconds: float = 0.0

    def why_not(self) -> str:
        """``" (blocked by X): reason"`` for messages saying the module does not load."""
        by = f" (blocked by {self.blocked_by})" if self.blocked_by else ""
        return f"{by}: {self.reason}"


_probe_cache: dict[str, ProbeVerdict] = {}
_probe_lock = threading.Lock()  # guards _probe_name_locks only
# One lock per module name: a module is probed once, while probes of different modules (the
# target, the codec, offloaded functions' modules) run at the same time in their own scratch
# interpreters instead of queueing behind each other (each probe starts an interpreter and
# imports the module in it).
_probe_name_locks: dict[str, threading.Lock] = {}

# Runs inside the scratch interpreter. A finder that records every module import looked for
# turns the short name in CPython's ImportError ("module _core does not support ...") into the
# full one (msgspec._core).
_PROBE_SNIPPET = """\
import importlib, marshal, sys
sys.path[:] = marshal.loads(_subiso_path)
_seen = []
class _Recorder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        _seen.append(name)
sys.meta_path.insert(0, _Recorder)
try:
    importlib.import_module(_subiso_module)
except ImportError as exc:
    msg = str(exc)
    blocked = None
    marker = " does not support loading in subinterpreters"
    if marker in msg and msg.startswith("module "):
        short = msg[len("module "):msg.index(marker)]
        blocked = short
        for name in reversed(_seen):
            if name == short or name.endswith("." + short):
                blocked = name
                break
    raise ImportError(repr((blocked, msg))) from None
finally:
    sys.meta_path.remove(_Recorder)
"""


def probe_module(name: str, timeout: float = DEFAULT_PROBE_TIMEOUT) -> ProbeVerdict:
    """Import ``name`` in a scratch interpreter (bounded by ``timeout``), cached per process.

    The scratch interpreter is destroyed afterwards. On timeout the verdict is "not ok" and
    the daemon thread is abandoned (it closes its interpreter if the import ever returns).
    """
    verdict = _probe_cache.get(name)
    if verdict is not None:
        return verdict
    with _probe_lock:
        name_lock = _probe_name_locks.setdefault(name, threading.Lock())
    with name_lock:
        verdict = _probe_cache.get(name)
        if verdict is None:
            verdict = _probe_cache[name] = _run_probe(name, timeout)
    return verdict


def _run_probe(name: str, timeout: float) -> ProbeVerdict:
    interpreters = require_backend()
    outcome: list[ProbeVerdict] = []
    started = time.perf_counter()

    def target() -> None:
        outcome.append(_probe_in_scratch(interpreters, name, started))

    thread = threading.Thread(target=target, name=f"subiso-probe-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome:
        return outcome[0]
    reason = f"importing {name} in a subinterpreter did not finish within {timeout}s"
    return ProbeVerdict(name, False, None, reason, time.perf_counter() - started)


def _probe_in_scratch(interpreters: Any, name: str, started: float) -> ProbeVerdict:
    interp = interpreters.create()
    try:
        interp.prepare_main(_subiso_path=marshal.dumps(list(sys.path)), _subiso_module=name)
        interp.exec(_PROBE_SNIPPET)
    except interpreters.ExecutionFailed as failed:
        blocked, reason = _parse_probe_failure(failed.excinfo)
        return ProbeVerdict(name, False, blocked, reason, time.perf_counter() - started)
    finally:
        interp.close()
    elapsed = time.perf_counter() - started
    return ProbeVerdict(name, True, None, "imports in an isolated subinterpreter", elapsed)


def _parse_probe_failure(excinfo: Any) -> tuple[str | None, str]:
    if excinfo.type.__name__ == "ImportError":
        try:
            import ast

            blocked, msg = ast.literal_eval(excinfo.msg)
            return blocked, f"ImportError: {msg}"
        except (ValueError, SyntaxError):
            pass
    return None, excinfo.formatted


def probe_msgspec(timeout: float = DEFAULT_PROBE_TIMEOUT) -> ProbeVerdict:
    """Whether msgspec loads in a subinterpreter (msgspec 0.22: no, blocked by msgspec._core).

    Drives the payload codec on both sides: msgpack when it loads, stdlib marshal otherwise.
    """
    return probe_module("msgspec", timeout)
