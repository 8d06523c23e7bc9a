"""``subiso serve`` is defined in :mod:`subiso.serve.cli`; it is registered only when the
``serve`` extra (Starlette, uvicorn) is installed, so ``subiso`` without it keeps working and
``subiso serve`` says what to install."""

from __future__ import annotations

import importlib.util

import click

from subiso.cli._app import UsageFail, main


def register() -> None:
    if importlib.util.find_spec("starlette") and importlib.util.find_spec("uvicorn"):
        import subiso.serve.cli  # noqa: F401 - registers the command

        return

    @main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.pass_context
    def serve(ctx: click.Context) -> None:
        """Serve langgraph.json graphs over LangGraph's Agent Server API (needs subiso[serve])."""
        raise UsageFail("subiso serve needs the serve extra: pip install 'subiso[serve]'")
