"""``subiso serve``: the Agent Server API for the graphs of a langgraph.json, every run on a
subiso tier."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

import click

from subiso.cli._app import UsageFail, main, settings_option, verbose_option

DEFAULT_PORT = 2024


def default_data_dir() -> Path:
    """``$SUBISO_DATA_DIR``, else ``$XDG_DATA_HOME/subiso``, else ``~/.local/share/subiso``."""
    explicit = os.environ.get("SUBISO_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "subiso"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--config",
    "config_option",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to the langgraph.json declaring the graphs (default: ./langgraph.json).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Network interface to bind. Anything but loopback needs --auth-token or --no-auth.",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind.",
)
@click.option(
    "-e",
    "--executor",
    "tier",
    metavar="TIER",
    help="Tier every run executes on: thread, process, subinterpreter, ... "
    "(default: the settings file's, else thread).",
)
@click.option(
    "--max-workers",
    type=click.IntRange(1),
    default=None,
    help="Workers of the tier (default: the settings file's).",
)
@click.option(
    "--database",
    metavar="URL",
    default=None,
    help="postgresql://... for rows, checkpoints and the store "
    "(default: SQLite files in the data directory).",
)
@click.option(
    "--queue",
    metavar="URL",
    default=None,
    help="redis://...: publish runs as Celery tasks (subiso.serve_run, on Celery's default "
    "queue) for any number of `celery worker` processes with this broker whose app calls "
    "subiso.celery.install(app); their events come back over Redis pub/sub. The workers' "
    "settings pick the runs' tier (--executor is then the server's, for state reads). "
    "Needs --database postgresql://...",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where SQLite files go (default: $SUBISO_DATA_DIR, else "
    "$XDG_DATA_HOME/subiso, else ~/.local/share/subiso).",
)
@click.option(
    "--auth-token",
    envvar="SUBISO_SERVE_TOKEN",
    default=None,
    help="Require this token (x-api-key or Authorization: Bearer) on every route "
    "but /ok; also $SUBISO_SERVE_TOKEN.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve a non-loopback address without a token (trusted networks only).",
)
@click.option(
    "--run-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a run may take before it is stopped and ends 'timeout'.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGTERM: seconds running runs get to finish before they are requeued.",
)
@click.option(
    "--max-body-size",
    type=click.IntRange(1),
    default=10 * 1024 * 1024,
    show_default=True,
    help="Largest request body accepted, in bytes.",
)
@click.option(
    "--server-log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="Log level of the server.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per record on stderr: text, or JSON objects carrying run_id, tier, "
    "thread_id (runs) and method, path, status, duration_ms (requests).",
)
@settings_option
@verbose_option
def serve(
    config: str | None,
    config_option: str | None,
    host: str,
    port: int,
    tier: str | None,
    max_workers: int | None,
    database: str | None,
    queue: str | None,
    data_dir: Path | None,
    auth_token: str | None,
    no_auth: bool,
    run_timeout: float | None,
    grace_period: float,
    max_body_size: int,
    server_log_level: str,
    log_format: str,
    settings_path: str | None,
    verbose: int,
) -> None:
    """Serve the graphs of a langgraph.json over LangGraph's Agent Server API.

    The official client (langgraph_sdk.get_client) and RemoteGraph work against it unchanged;
    each graph is an assistant named after it. Every run executes on the chosen subiso tier,
    never on the server's event loop; rows, checkpoints and the store persist in SQLite under
    the data directory, or in PostgreSQL with --database. With --queue, Celery workers on any
    machine execute the runs, and several servers can share one Redis and one PostgreSQL.
    """
    from subiso.cli._run import check_tier
    from subiso.errors import ConfigError
    from subiso.serve.app import ServeOptions
    from subiso.serve.graphs import load_graphs

    check_tier(tier)
    if queue is not None:
        if not queue.startswith(("redis://", "rediss://", "unix://")):
            raise UsageFail(f"--queue {queue!r}: expected a Redis URL, redis://host:6379/0")
        if not (database or "").startswith(("postgresql://", "postgres://")):
            raise UsageFail(
                "--queue needs --database postgresql://...: the workers read and write the "
                "runs, threads, checkpoints and store there"
            )
    if config and config_option:
        raise UsageFail("give the langgraph.json once: as CONFIG or as --config")
    path = Path(config or config_option or "langgraph.json")
    if not path.is_file():
        raise UsageFail(f"{path}: no such file; name the langgraph.json declaring your graphs")
    if not is_loopback(host) and not auth_token and not no_auth:
        raise UsageFail(
            f"--host {host} is reachable from other machines: set --auth-token TOKEN (or "
            "$SUBISO_SERVE_TOKEN), or pass --no-auth if the network is trusted"
        )
    try:
        graphs = load_graphs(path)
    except ConfigError as exc:
        raise UsageFail(f"ConfigError: {exc}") from None
    options = ServeOptions(
        graphs=graphs,
        data_dir=(data_dir or default_data_dir()).resolve(),
        tier=tier,
        settings_path=settings_path,
        database=database,
        queue=queue,
        auth_token=auth_token,
        max_body_bytes=max_body_size,
        run_timeout=run_timeout,
        grace_s=grace_period,
        max_workers=max_workers,
    )
    run_server(options, host, port, server_log_level, log_format)


def run_server(
    options: Any, host: str, port: int, log_level: str = "info", log_format: str = "text"
) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM; then stop taking runs, give running
    ones the grace period, requeue the rest and exit 0."""
    import uvicorn

    from subiso.observe.log import configure
    from subiso.serve.app import create_app

    # one stream for the server's, uvicorn's and the runs' records (from every tier)
    configure(log_format, getattr(logging, log_level.upper()))
    app = create_app(options)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            manager = getattr(app.state, "manager", None)
            if manager is not None:
                manager.accepting = False
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal once it has shut down; a graceful stop exits 0
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(options.grace_s)),
        log_config=None,  # its records go to the root's handler, configured above
        access_log=False,  # subiso.serve.http logs each request
    )
    Server(config).run()
