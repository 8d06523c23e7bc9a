"""The ``subiso bench`` command (registered on the ``subiso`` group by ``subiso.cli``).

Imports nothing heavy: the engine loads when the command runs.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

import click

from subiso.cli._app import SafePath, main

SECTIONS = ("trivial", "cpu", "io", "payload", "demo", "scaling", "fresh")
#: Run only when named in --sections (they start servers: see subiso.bench.serve).
EXTRA_SECTIONS = ("serve",)


@main.command("bench")
@click.option(
    "--quick", is_flag=True, help="Smoke run: tiny counts, every section, under a minute."
)
@click.option(
    "--out",
    "out_dir",
    type=SafePath(file_okay=False),
    default=None,
    help="Directory for results.json/results.md/*.png (default: benchmarks/results/<python-tag>/ "
    "for a full run of every section; a new scratch directory for --quick or --sections, which "
    "never overwrite the committed results).",
)
@click.option(
    "--sections",
    default=",".join(SECTIONS),
    show_default=True,
    help="Comma-separated subset of the sections to run; 'serve' (subiso serve next to "
    "langgraph dev) runs only when named.",
)
@click.option(
    "--rounds",
    type=int,
    default=None,
    help="Interleaved rounds per comparison (default 7, quick 2).",
)
@click.option(
    "--node-ms",
    type=float,
    default=None,
    help="CPU-bound node duration (default 40 ms, quick 5 ms).",
)
@click.option("--no-progress", is_flag=True, help="No progress display on stderr.")
@click.option(
    "--readme",
    "readme_only",
    is_flag=True,
    help="Run nothing: rewrite the README's measured figures from benchmarks/results/*/results.json "
    "(a full run into the default directory does this itself).",
)
def bench(
    quick: bool,
    out_dir: str | None,
    sections: str,
    rounds: int | None,
    node_ms: float | None,
    no_progress: bool,
    readme_only: bool,
) -> None:
    """Benchmark the tiers next to the peers a user would pick instead.

    Tiers x workloads (trivial graph, CPU-bound @offload node, asyncio.sleep fan-out, payload
    states of 1 MB of messages, 10 MB of documents and 2,000 short messages, the
    contract-review demo) x concurrency, each compared in interleaved rounds with
    graph.invoke/batch/abatch on the caller, bare worker processes, stdlib
    Thread/Process/InterpreterPoolExecutor and anyio.to_process/to_interpreter; plus cost per
    run as bursts grow and a fresh executor's first result and memory. Run it from the
    repository root (tests/ and examples/ hold two of the workloads). Prints the targets;
    writes results.json, results.md (every table) and PNG plots (with matplotlib).
    """
    from subiso.bench.engine import Bench, Options, find_root, python_tag
    from subiso.bench.readme import update
    from subiso.bench.report import WIDTH, terminal_summary, write

    if readme_only:
        root = find_root()
        if root is None:
            raise click.UsageError("--readme: run it in the repository (README.md not found)")
        changed = update(root / "README.md", root / "benchmarks" / "results")
        click.echo(f"README.md {'updated' if changed else 'already up to date'}")
        return

    chosen = tuple(s.strip() for s in sections.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS + EXTRA_SECTIONS]
    if unknown:
        raise click.BadParameter(
            f"unknown section(s) {unknown}; choose from {SECTIONS + EXTRA_SECTIONS}",
            param_hint="--sections",
        )
    engine = Bench(
        Options(
            quick=quick, sections=chosen, rounds=rounds, node_ms=node_ms, progress=not no_progress
        )
    )
    full = not quick and set(SECTIONS) <= set(chosen)
    if out_dir is not None:
        out = Path(out_dir)
    elif full:
        out = (engine.root or Path.cwd()) / "benchmarks" / "results" / python_tag()
    else:  # a smoke run or a few sections: never over the committed full results
        out = Path(tempfile.mkdtemp(prefix=f"subiso-bench-{python_tag()}-"))
    result = engine.run()
    written = write(result, out)
    click.echo(terminal_summary(result, out))
    for note in result["notes"]:
        click.echo(textwrap.fill(f"note: {note}", WIDTH, subsequent_indent="  "))
    for path in written:
        click.echo(f"wrote {path}", err=True)
    if (
        full
        and out_dir is None
        and engine.root
        and update(engine.root / "README.md", engine.root / "benchmarks" / "results")
    ):
        click.echo(f"updated {engine.root / 'README.md'}", err=True)
    sys.stdout.flush()
