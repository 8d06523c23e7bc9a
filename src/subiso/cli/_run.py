"""``subiso run``: run a workflow once, many times (``--repeat``) or as a stream of events
(``--stream``), resume an interrupted one (``--resume``), and print what happened."""

from __future__ import annotations

import concurrent.futures as cf
import shlex
import sys
import time
import uuid
from typing import Any, get_args

import click
import msgspec

from subiso.cli import _format as fmt
from subiso.cli._app import (
    USAGE_ERRORS,
    fail,
    main,
    settings_option,
    to_json,
    verbose_option,
    verbosity,
)
from subiso.cli._targets import load_graph_config, suggest
from subiso.errors import ConfigError

OUTPUT_CHOICES = ("summary", "full", "none")
#: Checkpointers that outlive the command, so a paused thread can be resumed by the next one.
_LASTING = ("sqlite:", "postgres")


def parse_json(value: str, option: str) -> Any:
    """``--input``/``--resume``: inline JSON, or ``@path`` to a JSON file."""
    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint=option
            ) from None
        except ValueError as exc:  # a NUL byte in the path
            raise click.BadParameter(
                f"cannot read {path!r}: not a usable path ({exc})", param_hint=option
            ) from None
        where = path
    else:
        raw, where = value.encode(), "the value"
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        hint = ""
        if not value.startswith("@") and value.strip()[:1].isalpha():  # a bare word
            hint = f"; a string is JSON in quotes: {option} {shlex.quote(json_string(value))}"
        raise click.BadParameter(
            f"{where} is not valid JSON: {exc}{hint}", param_hint=option
        ) from None


def json_string(value: str) -> str:
    return msgspec.json.encode(value).decode()


def check_tier(tier: str | None) -> None:
    """``--executor``: a known tier, else a usage error naming the option and the closest."""
    if tier is None:
        return
    from subiso.settings import known_tiers

    tiers = known_tiers()
    if tier not in tiers:
        raise click.BadParameter(
            f"unknown executor {tier!r}{suggest(tier, tiers)}; choose one of: {', '.join(tiers)}",
            param_hint="'-e' / '--executor'",
        )


def parse_stream_modes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    from subiso.runtime.call import StreamMode

    valid = list(get_args(StreamMode))
    modes = [m.strip() for m in value.split(",") if m.strip()]
    for mode in modes or [value]:
        if mode not in valid:
            raise click.BadParameter(
                f"unknown stream mode {mode!r}{suggest(mode, valid)}; a comma list of: "
                f"{', '.join(valid)} (write --stream=MODES when CONFIG_OR_TARGET follows it)",
                param_hint="--stream",
            )
    return modes


def with_thread_id(cfg: Any, thread_id: str) -> Any:
    config = dict(cfg.config)
    configurable = dict(config.get("configurable") or {})
    configurable["thread_id"] = thread_id
    config["configurable"] = configurable
    return cfg.replace(config=config)


def _is_empty_input(exc: BaseException) -> bool:
    return any(cls.__name__ == "EmptyInputError" for cls in type(exc).__mro__)


@main.command()
@click.argument("config_or_target")
@click.option(
    "-e",
    "--executor",
    "tier",
    metavar="TIER",
    help="Tier to run on: inline, context, thread, subinterpreter, process or auto "
    "(overrides settings and $SUBISO_EXECUTOR).",
)
@click.option("--input", "input_", metavar="JSON|@FILE", help="The run's input as JSON.")
@click.option(
    "--resume",
    metavar="JSON|@FILE",
    help="Resume an interrupted thread: this value is what its interrupt() returns "
    "(needs --thread-id and the run's checkpointer).",
)
@click.option(
    "--thread-id",
    metavar="ID",
    help="LangGraph thread (config.configurable.thread_id); default: a new one per run when "
    "a checkpointer is set.",
)
@click.option(
    "--checkpointer",
    metavar="SPEC",
    help="'memory' or 'sqlite:///path.db': where the thread's checkpoints live.",
)
@click.option(
    "--graph",
    "graph_name",
    metavar="NAME",
    help="Which graph of a langgraph.json to run (needed when it declares several).",
)
@click.option(
    "--stream",
    "stream",
    metavar="MODES",
    is_flag=False,
    flag_value="updates",
    default=None,
    help="Print events as they happen, one line each: a comma list of LangGraph stream modes "
    "(values, updates, messages, custom, debug, checkpoints, tasks; default updates).",
)
@click.option("--subgraphs", is_flag=True, help="With --stream: include subgraphs' events.")
@click.option(
    "--output",
    "output_mode",
    type=click.Choice(OUTPUT_CHOICES),
    default="summary",
    show_default=True,
    help="How much of the run's output to print: a line per top-level key, all of it as "
    "JSON, or none.",
)
@click.option(
    "--repeat",
    metavar="N",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run it N times; prints a duration table (min/median/p95) with a progress line.",
)
@click.option(
    "--concurrency",
    metavar="N",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --repeat: how many runs are in flight at once.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (status, output, interrupts, report; with --repeat the "
    "summary); with --stream one JSON line per event.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log to stderr, one line per record: text, or JSON objects carrying run_id, tier, "
    "thread_id, outcome and timings (records from worker processes and interpreters too).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="With --log-format: the least severe records shown (DEBUG adds each run's start).",
)
@settings_option
@verbose_option
@click.pass_context
def run(
    ctx: click.Context,
    config_or_target: str,
    tier: str | None,
    input_: str | None,
    resume: str | None,
    thread_id: str | None,
    checkpointer: str | None,
    graph_name: str | None,
    stream: str | None,
    subgraphs: bool,
    output_mode: str,
    repeat: int,
    concurrency: int,
    as_json: bool,
    log_format: str | None,
    log_level: str,
    settings_path: str | None,
    verbose: int,
) -> None:
    """Run a workflow and print a summary of its output and its RunReport.

    CONFIG_OR_TARGET is a GraphConfig file (.toml/.json/.yaml), a langgraph.json (with
    --graph NAME), an import path 'pkg.module:attr' or a file 'path/to/file.py:attr'.
    A run that pauses at an interrupt() exits 0 with status "interrupted" and its payloads;
    continue it with --thread-id ID --resume JSON.
    """
    verbose = verbosity(ctx, verbose)
    from subiso.settings import load_executor

    if log_format is not None:
        import logging

        from subiso.observe.log import configure

        configure(log_format, getattr(logging, log_level.upper()))
    check_tier(tier)
    modes = parse_stream_modes(stream)
    if input_ is not None and resume is not None:
        raise click.UsageError("give --input or --resume, not both")
    if modes is not None and repeat > 1:
        raise click.UsageError("--stream runs once: drop --repeat")
    try:
        cfg = load_graph_config(config_or_target, graph_name)
        if input_ is not None:
            cfg = cfg.replace(input=parse_json(input_, "--input"))
        if resume is not None:
            cfg = cfg.replace(input=None, resume=parse_json(resume, "--resume"))
        if checkpointer is not None:
            cfg = cfg.replace(checkpointer=checkpointer)
        if thread_id is not None:
            cfg = with_thread_id(cfg, thread_id)
        executor = load_executor(settings_path, executor=tier)
        cfg = executor.prepare(cfg)  # the settings' timeout and checkpointer applied
        if cfg.is_resume and cfg.thread_id is None:
            raise ConfigError(
                "--resume continues a paused thread: give --thread-id ID (the run that paused "
                "printed it) and the checkpointer it used"
            )
    except USAGE_ERRORS as exc:
        fail(exc, verbose)
    if cfg.is_resume:
        try:
            check_resumable(executor, cfg)
        except Exception as exc:
            executor.close()
            fail(exc, verbose)
    new_thread = cfg.checkpointer is not None and cfg.thread_id is None
    hint = None
    if cfg.input is None and not cfg.is_resume:
        hint = "pass --input JSON (or --resume to resume an interrupt)"
    try:
        try:
            if modes is not None:
                cfg = with_thread_id(cfg, uuid.uuid4().hex) if new_thread else cfg
                _stream(executor, cfg, modes, subgraphs, output_mode, as_json, config_or_target)
                return
            started = time.perf_counter()
            results = _run_many(executor, cfg, repeat, concurrency, new_thread)
            wall = time.perf_counter() - started
        except KeyboardInterrupt:
            # Ctrl-C: give up at once - cancel what has not started, wait for nothing (a node
            # still running is abandoned with its daemon worker) - and exit as shells expect.
            executor.close(wait=False, cancel_pending=True)
            click.echo("interrupted (Ctrl-C): runs cancelled", err=True)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            executor.close()
    except click.ClickException:
        raise
    except Exception as exc:
        fail(exc, verbose, hint=hint if _is_empty_input(exc) else None)
    last, last_cfg = results[-1]
    heading = "report:" if repeat == 1 else f"report (run {repeat} of {repeat}):"
    extra: dict[str, Any] = {}
    if repeat > 1:
        extra["reports"] = [r.report for r, _ in results]
        extra["summary"] = fmt.summary([r for r, _ in results], wall, concurrency)
    _print_run(last, last_cfg, output_mode, as_json, config_or_target, heading, extra)
    if repeat > 1 and not as_json:
        click.echo(fmt.summary_table(extra["summary"]))


def check_resumable(executor: Any, cfg: Any) -> None:
    """``--resume`` answers an ``interrupt()`` that a run of ``cfg``'s thread paused at: a
    checkpointer with no such thread, or a thread that is not paused, is refused up front
    (exit 2, saying what to do) - LangGraph would fail deep in the run, or run the graph
    again from wherever the thread is."""
    spec = cfg.checkpointer
    thread = cfg.thread_id
    try:
        state = executor.get_state(cfg)
    except ValueError as exc:
        if "checkpointer" not in str(exc).lower() or isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            "--resume needs the checkpointer the paused run used (the graph has none): add "
            "--checkpointer SPEC, e.g. --checkpointer sqlite:///runs.db"
        ) from None
    if state.created_at is None:  # no checkpoint at all
        memory = (
            " ('memory' checkpoints end with the command that made them: run with "
            "--checkpointer sqlite:///runs.db to resume later)"
            if spec == "memory"
            else ""
        )
        where = f"checkpointer {spec!r}" if spec else "the graph's checkpointer"
        raise ConfigError(
            f"--resume: thread {thread!r} has no checkpoint in {where}{memory}; nothing to "
            "resume: give the --thread-id and --checkpointer the paused run printed, or start "
            "the thread with --input"
        )
    if not state.next:
        raise ConfigError(
            f"--resume: thread {thread!r} is not paused (its last run finished); nothing to "
            "resume: start a new run with --input"
        )


#: The exit status of a command ended by Ctrl-C (SIGINT), as shells report it: 128 + 2.
EXIT_INTERRUPTED = 130


def _run_many(
    executor: Any, cfg: Any, repeat: int, concurrency: int, new_thread: bool
) -> list[tuple[Any, Any]]:
    """``(RunResult, cfg)`` of ``repeat`` runs, at most ``concurrency`` in flight; fail on the
    first error. Each run gets its own thread when ``new_thread``. Results come back in
    submission order; a failure cancels the runs not yet started."""

    def config() -> Any:
        return with_thread_id(cfg, uuid.uuid4().hex) if new_thread else cfg

    if repeat == 1:
        one = config()
        return [(executor.execute(one), one)]
    results: list[Any] = [None] * repeat
    pending: dict[cf.Future[Any], tuple[int, Any]] = {}
    submitted = 0
    progress = fmt.Progress(repeat, concurrency, sys.stderr, live=sys.stderr.isatty())
    try:
        while submitted < repeat or pending:
            while submitted < repeat and len(pending) < concurrency:
                each = config()
                progress.start(submitted)
                pending[executor.submit_execute(each)] = (submitted, each)
                submitted += 1
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                index, each = pending.pop(fut)
                results[index] = (fut.result(), each)
                progress.finish(index)
    finally:
        for fut in pending:
            fut.cancel()
        progress.close()
    return results


def _resume_hint(target: str, cfg: Any) -> str:
    spec = cfg.checkpointer
    if spec is None or not str(spec).startswith(_LASTING):
        return (
            "to resume a paused run, run it with a checkpointer that outlives the command "
            "(--checkpointer sqlite:///runs.db), then add --thread-id ID --resume JSON"
        )
    parts = ["subiso run", shlex.quote(target), "--thread-id", shlex.quote(str(cfg.thread_id))]
    parts += ["--checkpointer", shlex.quote(spec), "--resume", "JSON"]
    return "resume with: " + " ".join(parts)


def _print_run(
    result: Any,
    cfg: Any,
    output_mode: str,
    as_json: bool,
    target: str,
    heading: str,
    extra: dict[str, Any],
) -> None:
    report = result.report
    interrupts = fmt.interrupts_of(result.output)
    if as_json:
        doc: dict[str, Any] = {"status": report.status}
        if output_mode != "none":
            doc["output"] = result.output
        doc["interrupts"] = interrupts
        if cfg.thread_id is not None:
            doc["thread_id"] = cfg.thread_id
        doc["report"] = report
        click.echo(to_json({**doc, **extra}))
        return
    if output_mode == "full":
        lines = fmt.output_full(result.output)
    elif output_mode == "summary":
        lines = fmt.output_summary(result.output)
    else:
        lines = []
    if report.status == "interrupted":
        lines += fmt.interrupt_lines(interrupts)
    if cfg.thread_id is not None:
        lines.append(f"thread_id: {cfg.thread_id}")
    lines.append(heading)
    lines += fmt.report_lines(report, everything=output_mode == "full")
    if report.status == "interrupted":
        lines.append(_resume_hint(target, cfg))
    click.echo("\n".join(lines))


def _stream(
    executor: Any,
    cfg: Any,
    modes: list[str],
    subgraphs: bool,
    output_mode: str,
    as_json: bool,
    target: str,
) -> None:
    """Print each event as it comes. "updates" is always streamed (and shown only if asked
    for) so that interrupts are seen whatever the modes."""
    asked = set(modes)
    wanted = modes if {"updates", "values"} & asked else [*modes, "updates"]
    interrupts: list[dict[str, Any]] | None = None
    count = 0
    for event in executor.stream(cfg, stream_mode=wanted, subgraphs=subgraphs):
        if subgraphs:
            ns, mode, data = event
        else:
            (mode, data), ns = event, ()
        root_state = not ns and mode in ("updates", "values") and isinstance(data, dict)
        if root_state and "__interrupt__" in data:
            interrupts = [fmt.interrupt_doc(i) for i in data["__interrupt__"] or ()]
        if mode not in asked:
            continue
        count += 1
        if as_json:
            line: dict[str, Any] = {"mode": mode, "data": data}
            if subgraphs:
                line["ns"] = list(ns)
            click.echo(to_json(line, indent=0))
        elif output_mode != "none":
            where = f"{'/'.join(ns)} " if ns else ""
            text = to_json(data, indent=0)
            click.echo(f"{where}{mode}: {text if output_mode == 'full' else fmt.shorten(text)}")
    status = "done" if interrupts is None else "interrupted"
    if as_json:
        end: dict[str, Any] = {"status": status, "interrupts": interrupts or [], "events": count}
        if cfg.thread_id is not None:
            end["thread_id"] = cfg.thread_id
        click.echo(to_json(end, indent=0))
        return
    lines = [f"status: {status} ({count} events)"]
    if interrupts is not None:
        lines += fmt.interrupt_lines(interrupts)
    if cfg.thread_id is not None:
        lines.append(f"thread_id: {cfg.thread_id}")
    if interrupts is not None:
        lines.append(_resume_hint(target, cfg))
    click.echo("\n".join(lines))
