"""The ``subiso`` command group and what every command shares: failures and exit codes, JSON
output, common options."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import click
import msgspec

from subiso import __version__
from subiso.errors import ConfigError, TierUnavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Errors that mean "fix your command or settings", not "the workflow failed".
USAGE_ERRORS: tuple[type[BaseException], ...] = (ConfigError, TierUnavailable)


class Fail(click.ClickException):
    """A message and an exit code, printed by click as ``Error: ...``."""

    # click declares exit_code a ClassVar: one subclass per code instead of per-instance codes
    exit_code = EXIT_FAILED


class UsageFail(Fail):
    exit_code = EXIT_USAGE


def verbosity(ctx: click.Context, local: int) -> int:
    root = ctx.find_root().params.get("verbose", 0) or 0
    return int(root) + int(local or 0)


def fail(exc: BaseException, verbose: int, *, hint: str | None = None) -> NoReturn:
    """Print ``exc`` (with its traceback when verbose) and exit with the matching code."""
    kind = UsageFail if isinstance(exc, USAGE_ERRORS) else Fail
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = f"{type(exc).__name__}: {exc}"
    if hint:
        message += f"\nHint: {hint}"
    raise kind(message)


def ensure_cwd_importable() -> None:
    """Make ``pkg.module:attr`` resolve against the working directory, as ``python -m`` does.

    The console script's ``sys.path[0]`` is its own bin directory, so without this
    ``subiso run myapp.graph:graph`` would fail where ``python -m subiso`` works.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def to_jsonable(obj: Any) -> Any:
    """msgspec enc_hook: pydantic models and LangGraph messages by their dump, else ``str``."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    return str(obj)


def to_json(obj: Any, *, indent: int = 2) -> str:
    """``obj`` as JSON text: indented, or on one line with ``indent=0``."""
    raw = msgspec.json.encode(obj, enc_hook=to_jsonable)
    if indent <= 0:
        return raw.decode()
    return msgspec.json.format(raw, indent=indent).decode()


def verbose_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-v", "--verbose", count=True, help="Show tracebacks (repeat for more detail)."
    )(fn)


class SafePath(click.Path):
    """``click.Path`` whose check of an unusable path (a NUL byte: ``os.stat`` raises
    ValueError inside click) is a usage error naming the option, like any other bad path."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except ValueError as exc:
            self.fail(f"{value!r} is not a usable path ({exc})", param, ctx)


def settings_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--settings",
        "settings_path",
        type=SafePath(dir_okay=False),
        default=None,
        help="Settings file (default: $SUBISO_CONFIG, ./subiso.toml, ./pyproject.toml).",
    )(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="subiso")
def main(verbose: int) -> None:
    """Run LangGraph and plain Python workflows in a chosen isolation tier."""
    ensure_cwd_importable()
