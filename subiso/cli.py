"""The ``subiso`` command (also ``python -m subiso``): run, inspect, diagnose.

* ``subiso run CONFIG_OR_TARGET`` runs a GraphConfig file or an import path through the
  executor the settings choose (``--executor`` overrides) and prints the output and RunReport;
  ``--repeat``/``--concurrency`` run it many times with a progress bar and a duration table.
* ``subiso info`` says what this Python can do, which tiers run here, what "auto" picks and
  which settings file is in effect.
* ``subiso doctor TARGET`` imports the target's modules in scratch subinterpreters and names
  what blocks isolation.

Exit codes: 0 ok; 1 the run failed (error printed without a traceback unless ``-v``); 2 bad
usage or bad config (click's own usage errors are 2 as well).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
import msgspec

from subiso import __version__
from subiso.errors import ConfigError, TierUnavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")
#: Errors that mean "fix your command or settings", not "the workflow failed".
USAGE_ERRORS: tuple[type[BaseException], ...] = (ConfigError, TierUnavailable)


# -- helpers -------------------------------------------------------------------------------------
class _Fail(click.ClickException):
    """A message and an exit code, printed by click as ``Error: ...``."""

    # click declares exit_code a ClassVar: one subclass per code instead of per-instance codes
    exit_code = EXIT_FAILED


class _UsageFail(_Fail):
    exit_code = EXIT_USAGE


def _verbosity(ctx: click.Context, local: int) -> int:
    root = ctx.find_root().params.get("verbose", 0) or 0
    return int(root) + int(local or 0)


def _fail(exc: BaseException, verbose: int) -> NoReturn:
    """Print ``exc`` (with its traceback when verbose) and exit with the matching code."""
    fail = _UsageFail if isinstance(exc, USAGE_ERRORS) else _Fail
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    raise fail(f"{type(exc).__name__}: {exc}")


def _ensure_cwd_importable() -> None:
    """Make ``pkg.module:attr`` resolve against the working directory, as ``python -m`` does.

    The console script's ``sys.path[0]`` is its own bin directory, so without this
    ``subiso run myapp.graph:graph`` would fail where ``python -m subiso`` works.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _to_jsonable(obj: Any) -> Any:
    """msgspec enc_hook: pydantic models and LangGraph messages by their dump, else ``str``."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    return str(obj)


def _json(obj: Any, *, indent: int = 2) -> str:
    raw = msgspec.json.encode(obj, enc_hook=_to_jsonable)
    return msgspec.json.format(raw, indent=indent).decode()


def _parse_input(value: str) -> Any:
    """``--input``: inline JSON, or ``@path`` to a JSON file."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint="--input"
            ) from None
        where = str(path)
    else:
        raw, where = value.encode(), "the value"
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise click.BadParameter(
            f"{where} is not valid JSON: {exc}", param_hint="--input"
        ) from None


def _load_graph_config(config_or_target: str) -> Any:
    """A GraphConfig from a file (``.toml``/``.json``/``.yaml``) or an import path."""
    from subiso.config import GraphConfig

    path = Path(config_or_target)
    if path.suffix.lower() in CONFIG_SUFFIXES or path.is_file():
        return GraphConfig.from_file(path)
    if ":" not in config_or_target:
        raise ConfigError(
            f"{config_or_target!r} is neither a GraphConfig file (.toml, .json, .yaml) nor an "
            "import path 'package.module:attribute'"
        )
    return GraphConfig(graph=config_or_target)


def _verbose_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-v", "--verbose", count=True, help="Show tracebacks (repeat for more detail)."
    )(fn)


def _settings_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--settings",
        "settings_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Settings file (default: $SUBISO_CONFIG, ./subiso.toml, ./pyproject.toml).",
    )(fn)


# -- the command group ---------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="subiso")
def main(verbose: int) -> None:
    """Run LangGraph and plain Python workflows in a chosen isolation tier."""
    _ensure_cwd_importable()


# -- run -----------------------------------------------------------------------------------------
@main.command()
@click.argument("config_or_target")
@click.option(
    "-e", "--executor", "tier", metavar="TIER", help="Tier to run on (overrides settings)."
)
@click.option("--input", "input_", metavar="JSON|@FILE", help="The run's input as JSON.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@_settings_option
@_verbose_option
@click.pass_context
def run(
    ctx: click.Context,
    config_or_target: str,
    tier: str | None,
    input_: str | None,
    repeat: int,
    concurrency: int,
    as_json: bool,
    settings_path: str | None,
    verbose: int,
) -> None:
    """Run a workflow and print its output and RunReport.

    CONFIG_OR_TARGET is a GraphConfig file (.toml/.json/.yaml) or 'pkg.module:attr'.
    """
    verbose = _verbosity(ctx, verbose)
    from subiso.settings import load_executor

    try:
        cfg = _load_graph_config(config_or_target)
        if input_ is not None:
            cfg = cfg.replace(input=_parse_input(input_))
        executor = load_executor(settings_path, executor=tier)
    except USAGE_ERRORS as exc:
        _fail(exc, verbose)

    started = time.perf_counter()
    try:
        with executor:
            results = _run_many(executor, cfg, repeat, concurrency)
    except click.ClickException:
        raise
    except Exception as exc:
        _fail(exc, verbose)
    wall = time.perf_counter() - started

    last = results[-1]
    if as_json:
        doc: dict[str, Any] = {"output": last.output, "report": last.report}
        if repeat > 1:
            doc["reports"] = [r.report for r in results]
            doc["summary"] = _summary(results, wall, concurrency)
        click.echo(_json(doc))
        return
    click.echo("output:")
    click.echo(_json(last.output))
    click.echo("report:" if repeat == 1 else f"report (run {repeat} of {repeat}):")
    for name, value in msgspec.structs.asdict(last.report).items():
        click.echo(f"  {name:<16} {value}")
    if repeat > 1:
        click.echo(_summary_table(_summary(results, wall, concurrency)))


def _run_many(executor: Any, cfg: Any, repeat: int, concurrency: int) -> list[Any]:
    """Run ``cfg`` ``repeat`` times, at most ``concurrency`` in flight; fail on the first error.

    Results come back in submission order. A failure cancels the runs not yet started.
    """
    if repeat == 1:
        return [executor.execute(cfg)]
    results: list[Any] = [None] * repeat
    pending: dict[cf.Future[Any], int] = {}
    submitted = 0
    with click.progressbar(
        length=repeat, label=f"{repeat} runs", file=sys.stderr, show_pos=True
    ) as bar:
        try:
            while submitted < repeat or pending:
                while submitted < repeat and len(pending) < concurrency:
                    pending[executor.submit_execute(cfg)] = submitted
                    submitted += 1
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
                    bar.update(1)
        finally:
            for fut in pending:
                fut.cancel()
    return results


def _summary(results: list[Any], wall: float, concurrency: int) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[float]] = {}
    for r in results:
        groups.setdefault((r.report.tier, r.report.mode), []).append(r.report.duration_s)
    rows = []
    for (tier, mode), durations in groups.items():
        ordered = sorted(durations)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        rows.append(
            {
                "tier": tier,
                "mode": mode,
                "runs": len(ordered),
                "min_s": ordered[0],
                "median_s": statistics.median(ordered),
                "mean_s": statistics.fmean(ordered),
                "p95_s": p95,
                "max_s": ordered[-1],
            }
        )
    return {
        "runs": len(results),
        "concurrency": concurrency,
        "wall_s": wall,
        "runs_per_s": len(results) / wall if wall > 0 else None,
        "durations": rows,
    }


def _summary_table(summary: dict[str, Any]) -> str:
    head = ("tier", "mode", "runs", "min ms", "median ms", "mean ms", "p95 ms", "max ms")
    lines = [head]
    for row in summary["durations"]:
        lines.append(
            (
                row["tier"],
                row["mode"],
                str(row["runs"]),
                *(
                    f"{row[k] * 1000:.3f}"
                    for k in ("min_s", "median_s", "mean_s", "p95_s", "max_s")
                ),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["durations:"]
    for line in lines:
        out.append("  " + "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
    rate = summary["runs_per_s"]
    out.append(
        f"  {summary['runs']} runs in {summary['wall_s']:.3f} s wall at concurrency "
        f"{summary['concurrency']}" + (f" ({rate:.1f} runs/s)" if rate else "")
    )
    return "\n".join(out)


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
@_settings_option
@_verbose_option
@click.pass_context
def info(ctx: click.Context, as_json: bool, settings_path: str | None, verbose: int) -> None:
    """Show this Python's capabilities, usable tiers and settings."""
    verbose = _verbosity(ctx, verbose)
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
    if as_json:
        click.echo(_json(doc))
    else:
        click.echo(_info_text(doc))
    if settings_error is not None:
        _fail(settings_error, verbose)


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

    stdlib = set(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__main__"}
    names: list[str] = [module.__name__]

    def add(name: str | None) -> None:
        if name and name.split(".")[0] not in stdlib and name not in names:
            names.append(name)

    offloaded = offloaded_functions(obj, module)  # the executor's own lookup
    for fn in node_functions(obj) + offloaded:
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
@_verbose_option
@click.pass_context
def doctor(ctx: click.Context, target: str, as_json: bool, timeout: float, verbose: int) -> None:
    """Find what keeps TARGET out of subinterpreters.

    TARGET is a GraphConfig file or 'pkg.module:attr'. Its modules are imported in scratch
    subinterpreters; each one that blocks isolation is listed with the reason.
    """
    verbose = _verbosity(ctx, verbose)
    import importlib

    from subiso.auto import choose_tier, current_capabilities
    from subiso.runtime.targets import import_attr

    try:
        cfg = _load_graph_config(target)
        obj = import_attr(cfg.graph)
    except USAGE_ERRORS as exc:
        _fail(exc, verbose)
    module = importlib.import_module(cfg.module)
    caps = current_capabilities()
    auto_tier, auto_reason = choose_tier(caps)
    names, offloaded = _target_modules(module, obj)
    doc: dict[str, Any] = {
        "target": cfg.graph,
        "subinterpreters": caps.subinterpreters,
        "auto": {"tier": auto_tier, "reason": auto_reason},
    }
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
    if as_json:
        click.echo(_json(doc))
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
    lines.append(f"auto picks:      {doc['auto']['tier']} - {doc['auto']['reason']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    main()
