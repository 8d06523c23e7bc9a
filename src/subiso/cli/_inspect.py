"""``subiso info`` (what this Python can do, which tiers run here, the settings in effect) and
``subiso doctor`` (what keeps a target out of subinterpreters)."""

from __future__ import annotations

import sys
from typing import Any

import click

from subiso import __version__
from subiso._capabilities import gil_note
from subiso.cli._app import (
    USAGE_ERRORS,
    fail,
    main,
    settings_option,
    to_json,
    verbose_option,
    verbosity,
)
from subiso.cli._targets import load_graph_config
from subiso.errors import ConfigError


# -- info ----------------------------------------------------------------------------------------
def tier_status(caps: Any) -> dict[str, dict[str, Any]]:
    """Every selectable tier with ``available`` and a reason (why not, or what it gives here)."""
    from subiso.auto import choose_tier
    from subiso.executors import BUILTIN_TIERS, tier_class
    from subiso.plugins import plugin_tiers

    status: dict[str, dict[str, Any]] = {}
    for name in [*BUILTIN_TIERS, *sorted(plugin_tiers())]:
        entry: dict[str, Any] = {"builtin": name in BUILTIN_TIERS}
        try:
            cls = tier_class(name)
        except Exception as exc:
            entry.update(available=False, reason=f"cannot be loaded: {exc!r}")
            status[name] = entry
            continue
        available, note = tier_availability(cls, caps)
        entry.update(available=available, reason=note)
        status[name] = entry
    tier, reason = choose_tier(caps)
    status["auto"] = {"builtin": True, "available": True, "reason": f"-> {tier}: {reason}"}
    return status


def tier_availability(cls: Any, caps: Any) -> tuple[bool, str]:
    """What a tier class says of itself here; a plugin that is no Executor gets its doc line."""
    from subiso.executors.base import Executor

    if isinstance(cls, type) and issubclass(cls, Executor):
        return cls.availability(caps)
    doc = (getattr(cls, "__doc__", None) or "plugin tier").strip().splitlines()[0]
    return True, doc


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@settings_option
@verbose_option
@click.pass_context
def info(ctx: click.Context, as_json: bool, settings_path: str | None, verbose: int) -> None:
    """Show this Python's capabilities, usable tiers and settings."""
    verbose = verbosity(ctx, verbose)
    from subiso.auto import choose_tier, current_capabilities
    from subiso.settings import resolve_settings

    caps = current_capabilities()
    auto_tier, auto_reason = choose_tier(caps)
    settings_error: ConfigError | None = None
    settings_doc: dict[str, Any]
    try:
        resolved = resolve_settings(settings_path)
    except ConfigError as exc:
        settings_error = exc
        settings_doc = {"file": None, "error": str(exc)}
    else:
        chosen = resolved.tier
        settings_doc = {
            "file": str(resolved.source) if resolved.source else None,
            "origin": resolved.origin,
            "executor": chosen,
            "executor_from": resolved.tier_from,
        }
        if chosen == "auto":
            settings_doc["auto_picks"] = auto_tier
    doc = {
        "subiso": __version__,
        "python": caps.python,
        "implementation": caps.implementation,
        "executable": sys.executable,
        "free_threaded": caps.free_threaded,
        "gil_enabled": caps.gil_enabled,
        "subinterpreters": caps.subinterpreters,
        "subinterpreters_reason": caps.subinterpreters_reason,
        "auto": {"tier": auto_tier, "reason": auto_reason},
        "tiers": tier_status(caps),
        "settings": settings_doc,
    }
    if caps.free_threaded:
        doc["gil_after_langgraph_import"] = _gil_after("langgraph.graph")
    if as_json:
        click.echo(to_json(doc))
    else:
        click.echo(_info_text(doc))
    if settings_error is not None:
        fail(settings_error, verbose)


def _info_text(doc: dict[str, Any]) -> str:
    sub = doc["subinterpreters"] or f"none ({doc['subinterpreters_reason']})"
    settings = doc["settings"]
    if "error" in settings:
        settings_line = f"error: {settings['error']}"
    else:
        settings_line = settings["file"] or "none (defaults)"
        if settings["file"]:
            settings_line += f" (found as {settings['origin']})"
    lines = [
        f"subiso {doc['subiso']}",
        f"python:          {doc['python']} ({doc['implementation']}) {doc['executable']}",
        f"free-threaded:   {'yes' if doc['free_threaded'] else 'no'}",
        f"GIL:             {'enabled' if doc['gil_enabled'] else 'disabled'}",
        f"subinterpreters: {sub}",
        f"settings:        {settings_line}",
    ]
    if "executor" in settings:
        lines.append(f"executor:        {settings['executor']} (from {settings['executor_from']})")
    if "gil_after_langgraph_import" in doc:
        lines.append(f"GIL after import langgraph: {doc['gil_after_langgraph_import']}")
    lines.append(f"auto picks:      {doc['auto']['tier']} - {doc['auto']['reason']}")
    lines.append("tiers:")
    width = max(len(n) for n in doc["tiers"])
    for name, entry in doc["tiers"].items():
        state = "yes" if entry["available"] else "no "
        kind = "" if entry["builtin"] else " [plugin]"
        lines.append(f"  {name:<{width}}  {state}  {entry['reason']}{kind}")
    return "\n".join(lines)


# -- doctor --------------------------------------------------------------------------------------
def _target_modules(module: Any, obj: Any) -> tuple[list[str], list[Any]]:
    """The non-stdlib modules a target depends on directly, and its ``@offload`` functions.

    Its own module first, then modules of its graph's node functions, then what its module
    imports (module globals and the modules of imported functions and classes).
    """
    from subiso.executors.subinterpreter.offload import node_functions, offloaded_functions

    # subiso's own modules are not the user's: never listed as what blocks isolation
    skipped = set(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__main__", "subiso"}
    names: list[str] = [module.__name__]

    def add(name: str | None) -> None:
        if name and name.split(".")[0] not in skipped and name not in names:
            names.append(name)

    nodes = node_functions(obj)
    # A graph: the @offload functions its nodes use (not every one its module defines); a
    # workflow function: its module's, which it may call.
    offloaded = offloaded_functions(obj, None if nodes else module)
    for fn in nodes + offloaded:
        add(getattr(fn, "__module__", None))
    for value in vars(module).values():
        if isinstance(value, type(sys)):
            add(value.__name__)
        elif callable(value):
            add(getattr(value, "__module__", None))
    return names, offloaded


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds allowed for each module's probe import.",
)
@verbose_option
@click.pass_context
def doctor(ctx: click.Context, target: str, as_json: bool, timeout: float, verbose: int) -> None:
    """Find what keeps TARGET out of subinterpreters.

    TARGET is a GraphConfig file or 'pkg.module:attr'. Its modules are imported in scratch
    subinterpreters; each one that blocks isolation is listed with the reason.
    """
    verbose = verbosity(ctx, verbose)
    import importlib

    from subiso.auto import choose_tier, current_capabilities
    from subiso.runtime.targets import import_attr

    try:
        cfg = load_graph_config(target)
        obj = import_attr(cfg.graph)
    except USAGE_ERRORS as exc:
        fail(exc, verbose)
    module = importlib.import_module(cfg.module)
    caps = current_capabilities()  # after the import: the GIL's state now
    auto_tier, auto_reason = choose_tier(caps)
    names, offloaded = _target_modules(module, obj)
    doc: dict[str, Any] = {
        "target": cfg.graph,
        "subinterpreters": caps.subinterpreters,
        "auto": {"tier": auto_tier, "reason": auto_reason},
    }
    if caps.free_threaded:
        doc["gil"] = gil_note() or (
            "enabled (PYTHON_GIL=1 or at start-up)" if caps.gil_enabled else "still disabled"
        )
    if caps.subinterpreters is None:
        doc.update(
            modules=[],
            blocking=[],
            offloaded=[],
            mode="fallback",
            mode_reason=f"no subinterpreters here ({caps.subinterpreters_reason}); "
            "SubinterpreterExecutor would run its fallback tiers (process, thread)",
        )
    else:
        from subiso.executors import subinterpreter as _subinterp

        verdicts = [_subinterp.probe_module(name, timeout) for name in names]
        doc["modules"] = [
            {"module": v.module, "ok": v.ok, "blocked_by": v.blocked_by, "reason": v.reason}
            for v in verdicts
        ]
        doc["blocking"] = [m for m in doc["modules"] if not m["ok"]]
        doc["offloaded"] = [_offload_plan(fn) for fn in offloaded]
        from subiso.executors.subinterpreter import target_mode

        doc["mode"], doc["mode_reason"] = target_mode(cfg.graph, obj, verdicts[0])
        if doc["mode"] == "hybrid":
            doc["mode_reason"] += (
                f"; the graph runs on host worker threads and its {len(offloaded)} @offload "
                "function(s) in subinterpreters"
            )
    if auto_tier == "subinterpreter":  # "auto" decides per target there
        from subiso.executors.auto import route_target
        from subiso.executors.subinterpreter import probe_module

        tier, why = route_target(cfg.graph, lambda m: bool(probe_module(m, timeout).ok))
        doc["auto"] = {"tier": tier, "reason": f"{auto_reason}; {why}"}
    if as_json:
        click.echo(to_json(doc))
    else:
        click.echo(_doctor_text(doc, caps))


def _offload_plan(fn: Any) -> dict[str, Any]:
    from subiso.errors import NotIsolatable
    from subiso.executors import subinterpreter as _subinterp

    name = f"{fn.__module__}.{fn.__qualname__}"
    try:
        plan = _subinterp.resolve_offload(fn)
    except NotIsolatable as exc:
        return {"function": name, "ok": False, "how": None, "reason": str(exc)}
    how = "imported by module" if plan.kind == "import" else "code shipped"
    return {"function": name, "ok": True, "how": how, "reason": plan.reason or None}


def _doctor_text(doc: dict[str, Any], caps: Any) -> str:
    lines = [f"target:          {doc['target']}"]
    if doc["subinterpreters"] is None:
        lines.append(
            f"subinterpreters: none ({caps.subinterpreters_reason}); modules cannot be probed here"
        )
    else:
        lines.append(f"subinterpreters: {doc['subinterpreters']}")
        lines.append("modules:")
        for m in doc["modules"]:
            if m["ok"]:
                lines.append(f"  ok       {m['module']}")
            else:
                by = f" (blocked by {m['blocked_by']})" if m["blocked_by"] else ""
                lines.append(f"  BLOCKED  {m['module']}{by}: {m['reason'].strip()}")
        if not doc["blocking"]:
            lines.append("  nothing blocks isolation")
        if doc["offloaded"]:
            lines.append("@offload functions:")
            for f in doc["offloaded"]:
                verdict = f["how"] if f["ok"] else "NOT ISOLATABLE"
                extra = f": {f['reason']}" if f["reason"] else ""
                lines.append(f"  {verdict:<18} {f['function']}{extra}")
    lines.append(f"subinterpreter executor mode: {doc['mode']} - {doc['mode_reason']}")
    if "gil" in doc:
        lines.append(f"GIL after importing the target: {doc['gil']}")
    lines.append(f"auto picks:      {doc['auto']['tier']} - {doc['auto']['reason']}")
    return "\n".join(lines)


def _gil_after(module: str) -> str:
    """What importing ``module`` does to the GIL of a fresh interpreter (free-threaded)."""
    from subiso._capabilities import gil_after_import

    enabled = gil_after_import(module)
    if enabled is None:
        return f"unknown (could not import {module} in a fresh interpreter)"
    if enabled:
        return (
            f"re-enabled (an extension module {module} imports has no free-threading support): "
            "the thread tier does not run graphs in parallel here"
        )
    return "still disabled"
