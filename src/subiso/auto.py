"""The ``"auto"`` tier: pick the strongest parallel tier this Python runs well, and say why.

The rule, first match wins:

1. a free-threaded build with the GIL disabled -> ``"thread"`` (threads already run Python in
   parallel; nothing cheaper isolates loops);
2. CPython 3.13+ where a subinterpreter backend imports -> ``"subinterpreter"`` (own-GIL
   parallelism without process start-up or pickling);
3. otherwise -> ``"process"``.

The decision is :func:`choose_tier`, a pure function of a :class:`~subiso._capabilities.Capabilities`
value, so every row of the table is unit-tested by constructing one. The choice is stated three
ways: a log record on the ``subiso.auto`` logger, ``RunReport.selected_by`` on every run (the
executor carries it as ``executor.selected_by`` and its workers copy it into their reports), and
``subiso info``.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from subiso._capabilities import Capabilities, gil_enabled, is_free_threaded_build
from subiso.errors import ConfigError

if TYPE_CHECKING:
    from subiso.executors.base import Executor

log = logging.getLogger("subiso.auto")

#: Tried in order when the chosen tier's class cannot be imported (a broken install, say).
IMPORT_FALLBACK = ("process", "thread")


def _version(caps: Capabilities) -> tuple[int, int]:
    parts = caps.python.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def choose_tier(caps: Capabilities) -> tuple[str, str]:
    """``(tier, reason)`` for ``caps``; ``reason`` is a sentence meant for people."""
    major, minor = _version(caps)
    py = f"Python {major}.{minor}"
    if caps.implementation != "cpython":
        return (
            "process",
            f"{caps.implementation} {caps.python} offers neither free-threading nor own-GIL "
            "subinterpreters here; processes run workflows in parallel",
        )
    if caps.free_threaded and not caps.gil_enabled:
        return (
            "thread",
            f"{py} free-threaded build with the GIL disabled: worker threads run Python in "
            "parallel at thread cost",
        )
    gil_note = (
        "free-threaded build but the GIL is enabled (PYTHON_GIL=1 or an extension re-enabled it)"
        if caps.free_threaded
        else "GIL build"
    )
    if (major, minor) >= (3, 13) and caps.subinterpreters is not None:
        return (
            "subinterpreter",
            f"{py} {gil_note} with own-GIL subinterpreters ({caps.subinterpreters}): parallel "
            "without process start-up or pickling",
        )
    if (major, minor) < (3, 13):
        missing = "has no own-GIL subinterpreter API (needs 3.13+)"
    else:
        missing = (
            f"has no usable subinterpreter backend ({caps.subinterpreters_reason or 'unknown'})"
        )
    return (
        "process",
        f"{py} {gil_note}: threads do not run Python in parallel and it {missing}; processes do",
    )


def current_capabilities() -> Capabilities:
    """``subiso.capabilities()``, degrading to "no subinterpreters" if detection itself fails.

    ``subiso info`` and "auto" must keep working on a Python whose interpreters module is
    broken; the failure is carried in ``subinterpreters_reason`` rather than hidden.
    """
    from subiso._capabilities import capabilities

    try:
        return capabilities()
    except Exception as exc:  # a detection bug must not take the whole tier choice down
        return Capabilities(
            python=platform.python_version(),
            implementation=sys.implementation.name,
            free_threaded=is_free_threaded_build(),
            gil_enabled=gil_enabled(),
            subinterpreters=None,
            subinterpreters_reason=f"backend detection failed: {exc!r}",
        )


def decide(caps: Capabilities | None = None) -> tuple[str, str]:
    """:func:`choose_tier` for ``caps`` (default: this interpreter)."""
    return choose_tier(current_capabilities() if caps is None else caps)


def build_auto(settings: Any, *, caps: Capabilities | None = None) -> Executor:
    """The executor "auto" picks, configured from ``settings`` (a ``subiso.settings.Settings``).

    The chosen tier gets the shared keys it accepts plus its own table, exactly as if it had
    been named. If its class cannot be imported, the next tier of ``IMPORT_FALLBACK`` is built
    and the reason says so.
    """
    from subiso.executors import tier_class
    from subiso.settings import construct, tier_options

    tier, reason = decide(caps)
    candidates = [tier, *(t for t in IMPORT_FALLBACK if t != tier)]
    problems: list[str] = []
    for candidate in candidates:
        try:
            cls = tier_class(candidate)
        except (ImportError, ConfigError) as exc:
            problems.append(f"{candidate} tier failed to import ({exc})")
            log.warning("auto: %s tier unavailable: %s", candidate, exc)
            continue
        why = reason if not problems else f"{reason}; but {'; '.join(problems)}"
        selected_by = f"auto: {why}"
        log.info("auto executor chose the %r tier: %s", candidate, why)
        if candidate == "subinterpreter":
            return _per_target(settings, selected_by)
        options = tier_options(settings, candidate, cls)
        return construct(candidate, cls, options, "executor 'auto'", selected_by=selected_by)
    raise ConfigError(f"executor 'auto': no tier could be imported: {'; '.join(problems)}")


def _per_target(settings: Any, selected_by: str) -> Executor:
    """Where subinterpreters run, "auto" still sends a target without ``@offload`` work to
    the thread tier (:class:`~subiso.executors.auto.AutoExecutor`)."""
    from subiso.executors import tier_class
    from subiso.executors.auto import AutoExecutor
    from subiso.settings import check_options, construct, tier_options

    def make(tier: str) -> Callable[[], Executor]:
        cls = tier_class(tier)
        where = "executor 'auto'"
        options = check_options(tier, cls, tier_options(settings, tier, cls), where)  # now
        return lambda: construct(tier, cls, options, where, selected_by=selected_by)

    return AutoExecutor(
        make_thread=make("thread"),
        make_subinterpreter=make("subinterpreter"),
        selected_by=selected_by,
    )


def auto_executor(
    *, capabilities: Capabilities | None = None, settings: Any = None, **options: Any
) -> Executor:
    """The executor "auto" picks for this interpreter, built with ``options``.

    A factory, not a tier: registered as the built-in tier ``"auto"`` so
    ``get_executor("auto", max_workers=4)`` and the settings file's ``executor = "auto"`` both
    work (``subiso.settings`` passes its validated ``settings``). Options are settings keys:
    the shared ones (``max_workers``, ``timeout``, ``checkpointer``, ``fallback``) go to the
    chosen tier if it takes them, and per-tier tables as dicts
    (``process={"start_method": "spawn"}``) apply only when that tier is chosen.
    ``capabilities=`` decides for a simulated interpreter.
    """
    if settings is None:
        from subiso.settings import validate

        settings = validate(_as_table(options), "executor 'auto' options")
    return build_auto(settings, caps=capabilities)


def _as_table(options: Mapping[str, Any]) -> dict[str, Any]:
    table = {k: v for k, v in options.items() if v is not None}
    table["executor"] = "auto"
    return table
