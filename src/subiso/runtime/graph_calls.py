"""How one GraphConfig becomes LangGraph calls: the input (a resume is a ``Command``), the
keyword arguments it sets, a recovered run's resume point, and the status a run ended in.

Shared by the async dispatch (:mod:`subiso.runtime.execute`, on the worker's loop) and the
sync one of a graph with its own sync-only saver (:mod:`subiso.runtime.own_savers`), so both
call LangGraph alike.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from subiso.config import GraphConfig

if TYPE_CHECKING:
    from subiso.report import Status
    from subiso.runtime.call import Call

#: Where a run's events go: awaited once per event, on the worker's loop.
Emit = Callable[[Any], Coroutine[Any, Any, None]]

INTERRUPT = "__interrupt__"


async def ainvoke_call(graph: Any, cfg: GraphConfig, emit: Emit | None) -> tuple[Any, Status]:
    """``graph.ainvoke``; with ``emit``, the same run streamed (updates emitted as they happen)
    and its output assembled exactly as ``ainvoke`` assembles it."""
    run_input = run_input_of(cfg)
    if cfg.recover and resumable(await graph.aget_state(cfg.config), cfg):
        run_input = None
    options = invoke_options(cfg)
    if emit is None:
        output = await graph.ainvoke(run_input, cfg.config or None, **options)
    else:
        latest: Any = None
        interrupts: list[Any] = []
        chunks = graph.astream(
            run_input, cfg.config or None, stream_mode=["updates", "values"], **options
        )
        async for mode, payload in chunks:
            if mode == "values":
                latest = payload
                continue
            if isinstance(payload, dict) and (found := payload.get(INTERRUPT)) is not None:
                interrupts.extend(found)
            await emit(payload)
        output = latest
        if interrupts:
            output = (
                {**latest, INTERRUPT: interrupts}
                if isinstance(latest, dict)
                else {INTERRUPT: interrupts}
            )
    if interrupted(output):
        return output, "interrupted"
    if may_pause(graph, cfg) and (await graph.aget_state(cfg.config)).next:
        return output, "interrupted"
    return output, "done"


async def astream_call(graph: Any, call: Call, emit: Emit | None) -> tuple[Any, Status]:
    """``graph.astream``: every chunk emitted as produced; the output is None."""
    cfg = call.cfg
    run_input = run_input_of(cfg)
    if cfg.recover and resumable(await graph.aget_state(cfg.config), cfg):
        run_input = None
    chunks = graph.astream(
        run_input,
        cfg.config or None,
        stream_mode=call.stream_mode,
        subgraphs=call.subgraphs,
        **invoke_options(cfg),
    )
    async for chunk in chunks:
        if emit is not None:
            await emit(chunk)
    paused = has_checkpoints(graph, cfg) and bool((await graph.aget_state(cfg.config)).next)
    return None, "interrupted" if paused else "done"


def run_input_of(cfg: GraphConfig) -> Any:
    if cfg.is_resume:
        from langgraph.types import Command

        return Command(resume=cfg.resume)
    return cfg.input


def interrupted(output: Any) -> bool:
    return isinstance(output, dict) and bool(output.get(INTERRUPT))


def has_checkpoints(graph: Any, cfg: GraphConfig) -> bool:
    return graph.checkpointer not in (None, False) and cfg.thread_id is not None


def may_pause(graph: Any, cfg: GraphConfig) -> bool:
    """A static breakpoint may have paused the run (no ``__interrupt__`` tells of those)."""
    static = (
        cfg.interrupt_before
        or cfg.interrupt_after
        or getattr(graph, "interrupt_before_nodes", None)
        or getattr(graph, "interrupt_after_nodes", None)
    )
    return bool(static) and has_checkpoints(graph, cfg)


def invoke_options(cfg: GraphConfig) -> dict[str, Any]:
    """The keyword arguments of ``invoke``/``stream`` that the GraphConfig sets."""
    options: dict[str, Any] = {}
    for name in ("context", "durability", "interrupt_before", "interrupt_after"):
        value = getattr(cfg, name)
        if value is not None:
            options[name] = value
    return options


def resumable(state: Any, cfg: GraphConfig) -> bool:
    """A thread whose last checkpoint still has nodes to run (a run stopped part-way) - and,
    when the run names its id in ``config["metadata"]["run_id"]`` (``subiso serve`` does) and
    the checkpoint names one, a checkpoint this run wrote: a run stopped before its first
    checkpoint starts over with its own input (a resume ``Command``, say), instead of
    continuing the previous run's pause."""
    if not getattr(state, "next", ()):
        return False
    mine = ((cfg.config or {}).get("metadata") or {}).get("run_id")
    written_by = (getattr(state, "metadata", None) or {}).get("run_id")
    return mine is None or written_by is None or str(written_by) == str(mine)
