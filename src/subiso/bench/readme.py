"""The README's measured figures, generated from the committed ``benchmarks/results/*/results.json``.

The README's tier table and its benchmark targets are not typed by hand: ``subiso bench
--readme`` rewrites the blocks between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` from
the results files of every Python measured (newest Python first), and ``tests/test_readme.py``
fails when the README and the results disagree. One source of truth: the results files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from subiso.bench.report import Result, target_table

TIERS = ("inline", "context", "thread", "subinterpreter", "process")


def load(results_root: Path) -> list[Result]:
    """Full (not ``--quick``) results, one per Python, newest Python first."""
    found = []
    for path in results_root.glob("*/results.json"):
        res = json.loads(path.read_text())
        if not res.get("quick"):
            found.append(res)
    return sorted(found, key=lambda r: _version(r["python"]["version"]), reverse=True)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _contender(res: Result, pred: Callable[[Result], bool], name: str) -> Result | None:
    for sec in res["sections"]:
        if pred(sec):
            for c in sec["contenders"]:
                if c["name"] == name:
                    return c  # type: ignore[no-any-return]
    return None


def _sec(section: str, workload: str, concurrency: int) -> Callable[[Result], bool]:
    return lambda s: (
        (s["section"], s["workload"], s["concurrency"])
        == (
            section,
            workload,
            concurrency,
        )
    )


def _payload(workload: str) -> Callable[[Result], bool]:
    """A payload workload, one run at a time (results before the ``payload`` section held the
    1 MB of messages in a section of that name)."""
    return lambda s: s["section"] in ("payload", workload) and s["workload"] == workload


#: (column heading, section predicate, contender name for a tier)
COLUMNS: list[tuple[str, Callable[[Result], bool], Callable[[str], str]]] = [
    (
        "trivial sync graph, 1 run at a time: time x `graph.invoke`",
        _sec("trivial", "trivial-sync", 1),
        str,
    ),
    ("trivial async graph: time x `graph.ainvoke`", _sec("trivial", "trivial-async", 1), str),
    (
        "8 CPU-bound runs, 2 workers: time x `graph.batch`",
        _sec("cpu", "cpu", 8),
        lambda t: {
            "thread": "thread (2 workers)",
            "subinterpreter": "subinterpreter (2 workers, hybrid)",
            "process": "process (2 workers)",
        }.get(t, t),
    ),
    ("256 `asyncio.sleep` runs in flight: time x `graph.abatch`", _sec("io", "io", 256), str),
    ("1 MB of messages: time x `graph.invoke`", _payload("messages"), str),
    ("10 MB state: time x `graph.invoke`", _payload("state-10mb"), str),
    ("2,000 short messages: time x `graph.invoke`", _payload("many-small"), str),
    (
        "fresh executor, first CPU-bound result: time x process tier",
        lambda s: s["section"] == "fresh",
        str,
    ),
]


def _cell(results: list[Result], pred: Callable[[Result], bool], name: str) -> str:
    figures = []
    for res in results:
        c = _contender(res, pred, name)
        figures.append("-" if c is None or c.get("ratio") is None else f"{c['ratio']:.2f}x")
    return " / ".join(figures) if any(f != "-" for f in figures) else "-"


def tier_table(results: list[Result]) -> str:
    head = ["tier"] + [title for title, _, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for tier in TIERS:
        cells = [f"`{tier}`"] + [_cell(results, pred, name(tier)) for _, pred, name in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _when(res: Result) -> str:
    m = res["machine"]
    return (
        f"Python {res['python']['version']}, {res['started_at'][:10]}, {m['cpus']} CPUs, load "
        f"{m['loadavg_before']:.2f} before / {m['loadavg_after']:.2f} after, {res['wall_s']:.0f} s"
    )


def blocks(results: list[Result]) -> dict[str, str]:
    """The generated text of each README block, by name."""
    if not results:
        return {}
    sources = "; ".join(
        f"`benchmarks/results/{r['python']['tag']}/results.json` ({_when(r)})" for r in results
    )
    targets = [f"**Python {r['python']['version']}**\n\n{target_table(r)}" for r in results]
    pythons = " / ".join(f"Python {r['python']['version']}" for r in results)
    return {
        "tiers": f"Each cell: {pythons}.\n\n{tier_table(results)}\n\nFrom {sources}. Each ratio "
        "compares contenders timed in the same interleaved rounds of one run; lower is faster.",
        "targets": "\n\n".join(targets),
    }


_BLOCK = re.compile(r"(<!-- bench:(\w+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.S)


def render(readme: str, generated: dict[str, str]) -> str:
    """``readme`` with each generated block replaced (blocks it lacks are left out)."""

    def fill(m: re.Match[str]) -> str:
        text = generated.get(m.group(2))
        return m.group(0) if text is None else m.group(1) + text + "\n" + m.group(4)

    return _BLOCK.sub(fill, readme)


def update(readme_path: Path, results_root: Path) -> bool:
    """Rewrite the README's generated blocks; True if anything changed."""
    before = readme_path.read_text()
    after = render(before, blocks(load(results_root)))
    if after != before:
        readme_path.write_text(after)
    return after != before


def names_in(readme: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(readme)]


__all__ = ["blocks", "load", "names_in", "render", "tier_table", "update"]
