"""``results.json``, ``results.md`` and PNG plots (matplotlib, optional) of a bench run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Result = dict[str, Any]


def write(res: Result, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    pngs, why = plots(res, out)
    if why:
        res["notes"].append(why)
    res["plots"] = [p.name for p in pngs]
    written[0].write_text(json.dumps(res, indent=2) + "\n")
    written[1].write_text(markdown(res, out))
    return written + pngs


def _f(v: Any, fmt: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def _rng(r: Any) -> str:
    return "-" if not r else f"{r[0]:.2f}-{r[1]:.2f}"


def _status(t: Result) -> str:
    """``met``, ``missed``, ``not measured`` or ``does not apply``; a quick run's verdicts are
    marked indicative (its counts are too small to score)."""
    if not t.get("applies", True):
        return "does not apply"
    if t["met"] is None:
        return "not measured"
    verdict = "met" if t["met"] else "missed"
    return f"{verdict} (indicative)" if t.get("indicative") else verdict


def target_table(res: Result) -> str:
    lines = [
        "| target | goal | figure | per-round range | met | measured |",
        "|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        status = _status(t)
        met = f"**{status}**" if status == "missed" else status
        fig = "-" if t["figure"] is None else f"{t['figure']:.2f}x"
        note = t["measured"] + (f" ({t['note']})" if t["note"] else "")
        lines.append(
            f"| {t['target']} | {t['goal']} | {fig} | {_rng(t['range'])} | {met} | {note} |"
        )
    return "\n".join(lines)


#: Terminal lines stay within this many columns (the Markdown table goes to results.md).
WIDTH = 100


def terminal_summary(res: Result, out: Path) -> str:
    """The targets as a plain table that fits :data:`WIDTH` columns, and where the rest is."""
    py = res["python"]
    kind = "quick smoke run" if res["quick"] else "full run"
    lines = [f"subiso bench {py['tag']} ({py['version']}), {kind}: {res['wall_s']:.0f} s"]
    if res["quick"]:
        lines.append(
            "Targets are indicative only: a quick run's counts are too small to score them."
        )
    rows = [
        (
            t["target"],
            t["goal"],
            "-" if t["figure"] is None else f"{t['figure']:.2f}x",
            _status(t),
        )
        for t in res["targets"]
    ]
    head = ("target", "goal", "figure", "status")
    goal_w = max(len(head[1]), *(len(r[1]) for r in rows))
    fig_w = max(len(head[2]), *(len(r[2]) for r in rows))
    status_w = max(len(head[3]), *(len(r[3]) for r in rows))
    name_w = WIDTH - goal_w - fig_w - status_w - 6
    for name, goal, fig, status in [head, *rows]:
        if len(name) > name_w:
            name = name[: name_w - 3] + "..."
        lines.append(f"{name:<{name_w}}  {goal:<{goal_w}} {fig:>{fig_w}}  {status:<{status_w}}")
    lines += ["What each target measures, and every section:", f"  {out / 'results.md'}"]
    return "\n".join(line.rstrip() for line in lines)


def section_table(s: Result) -> str:
    head = f"### {s['section']}: {s['workload']}"
    if s["section"] not in ("scaling", "fresh"):
        head += f", {s['concurrency']} in flight, {s['runs_per_round']} runs/round"
    head += f", {s['rounds']} interleaved rounds"
    lines = [head, ""]
    if s["note"]:
        lines += [s["note"] + ".", ""]
    if s["section"] == "fresh":
        lines += [
            f"| executor | first result ms (median) | x {s['reference']} (range) | tree RSS growth MiB | x {s['reference']} | mode |",
            "|---|---|---|---|---|---|",
        ]
        for x in s["contenders"]:
            lines.append(
                f"| {x['name']} | {x['first_result_ms']:.0f} | {_f(x['ratio'])} ({_rng(x['ratio_range'])}) "
                f"| {x['rss_growth_mib']:.1f} | {_f(x.get('rss_ratio'))} | {x.get('mode') or '-'} |"
            )
    else:
        per = "us per run" if s["section"] != "scaling" else "us per run (in the burst)"
        lines += [
            f"| contender | kind | {per} | runs/s | p50 ms | p99 ms | time x {s['reference']} | per-round range |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in s["contenders"]:
            lines.append(
                f"| {x['name']} | {x['kind']} | {x['per_run_us']:.0f} | {_f(x['throughput_per_s'], '.0f')} "
                f"| {_f(x['p50_ms'])} | {_f(x['p99_ms'])} | {_f(x['ratio'])} | {_rng(x['ratio_range'])} |"
            )
    for name, why in s["skipped"].items():
        lines.append(f"\n* skipped `{name}`: {why}")
    if s["tree_rss_kib"]:
        rss = s["tree_rss_kib"] / 1024
        lines.append(f"\nTree RSS (this process and its children) at the end: {rss:.0f} MiB.")
    return "\n".join(lines)


def markdown(res: Result, out: Path) -> str:
    py, m = res["python"], res["machine"]
    parts = [
        f"# subiso bench: {py['tag']} ({py['version']})",
        "",
        f"{m['cpus']} CPUs, load {m['loadavg_before']:.2f} before / {m['loadavg_after']:.2f} after; "
        f"{'quick smoke run (counts too small to read; targets indicative only)' if res['quick'] else 'full run'}; "
        f"{res['wall_s']:.0f} s; subiso {res['subiso_version']}; {res['started_at']}.",
        "",
        "Every ratio compares contenders timed in the same interleaved rounds of this run (each "
        "round times every contender once, in rotating order); the range is the ratio's min-max "
        "taken round by round. `floor` = the graph called directly on the caller (no isolation), "
        "`peer` = what a user would pick instead, `tier` = subiso.",
        "",
        "## Targets",
        "",
        target_table(res),
        "",
    ]
    if res["notes"]:
        parts += ["Notes:", ""] + [f"* {n}" for n in res["notes"]] + [""]
    if res.get("plots"):
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in res["plots"]] + [""]
    parts += ["## Sections", ""]
    for s in res["sections"]:
        parts += [section_table(s), ""]
    others = other_pythons(res, out)
    if others:
        parts += ["## Other Pythons (separate runs: not side by side)", "", others, ""]
    return "\n".join(parts)


def other_pythons(res: Result, out: Path) -> str:
    """The target figures of sibling result directories (other Pythons), for orientation."""
    rows = []
    for path in sorted(out.parent.glob("*/results.json")):
        if path.parent == out:
            continue
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        figs = {t["target"]: t["figure"] for t in other.get("targets", [])}
        rows.append((other["python"]["tag"] + (" (quick)" if other.get("quick") else ""), figs))
    if not rows:
        return ""
    names = [t["target"] for t in res["targets"]]
    mine = {t["target"]: t["figure"] for t in res["targets"]}
    head = "| target | " + " | ".join([res["python"]["tag"]] + [r[0] for r in rows]) + " |"
    lines = [head, "|---" * (len(rows) + 2) + "|"]
    for n in names:
        cells = [mine.get(n)] + [r[1].get(n) for r in rows]
        lines.append(
            f"| {n} | " + " | ".join("-" if c is None else f"{c:.2f}x" for c in cells) + " |"
        )
    return "\n".join(lines)


#: Bar colour of each contender kind, and what the legend calls it.
KIND_COLOURS = {"floor": "grey", "peer": "tab:orange", "tier": "tab:blue"}
KIND_LABELS = {
    "floor": "floor (the graph called directly, or a bare worker)",
    "peer": "peer (stdlib pools, anyio)",
    "tier": "subiso tier",
}


def _kind_handles(kinds: set[str]) -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color=KIND_COLOURS[k], label=KIND_LABELS[k]) for k in KIND_COLOURS if k in kinds]


def _bars(ax: Any, contenders: list[Result], values: list[float]) -> None:
    """Horizontal bars, one per contender (first at the top), coloured by kind."""
    names = [x["name"] for x in contenders]
    ax.barh(names, values, color=[KIND_COLOURS[x["kind"]] for x in contenders])
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.tick_params(axis="x", labelsize=8)


def plots(res: Result, out: Path) -> tuple[list[Path], str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib not installed: no plots (pip install 'subiso[bench]')"
    made: list[Path] = []
    tag = res["python"]["tag"]

    # 1. per-run cost, one run at a time, per workload (bars, x the section's reference)
    singles = [s for s in res["sections"] if s["concurrency"] == 1 and s["section"] != "scaling"]
    singles = [s for s in singles if s["contenders"] and s["section"] != "fresh"]
    if singles:
        fig, axes = plt.subplots(
            len(singles), 1, figsize=(11, 1.2 + 2.6 * len(singles)), squeeze=False
        )
        kinds: set[str] = set()
        for ax, s in zip(axes[:, 0], singles, strict=True):
            _bars(ax, s["contenders"], [x["ratio"] or 0 for x in s["contenders"]])
            kinds |= {x["kind"] for x in s["contenders"]}
            ax.axvline(1.0, color="k", lw=0.6)
            ax.set_title(f"{s['section']} / {s['workload']}", fontsize=9, loc="left")
            ax.set_xlabel(f"time per run, x {s['reference']} (lower is faster)", fontsize=8)
        height = fig.get_figheight()
        fig.suptitle(f"subiso bench {tag}: one run at a time", y=1 - 0.12 / height)
        fig.legend(
            handles=_kind_handles(kinds),
            loc="upper center",
            bbox_to_anchor=(0.5, 1 - 0.45 / height),
            ncol=3,
            fontsize=8,
            frameon=False,
        )
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))
        made.append(_save(fig, out / "per_run.png", plt))

    # 2. I/O throughput vs concurrency
    io = [s for s in res["sections"] if s["section"] == "io"]
    if io:
        fig, ax = plt.subplots(figsize=(9, 5.5))
        names = sorted(
            {x["name"].split("(max_concurrency")[0] for s in io for x in s["contenders"]}
        )
        for name in names:
            xs, ys = [], []
            for s in io:
                for x in s["contenders"]:
                    if x["name"].split("(max_concurrency")[0] == name and x["throughput_per_s"]:
                        xs.append(s["concurrency"])
                        ys.append(x["throughput_per_s"])
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("runs in flight")
        ax.set_ylabel("runs/s (higher is better)")
        ax.set_title(f"I/O fan-out graph: throughput ({tag})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(_save(fig, out / "io_throughput.png", plt))

    # 3. CPU-bound: throughput at the largest concurrency
    cpu = [s for s in res["sections"] if s["section"] == "cpu"]
    if cpu:
        s = max(cpu, key=lambda s: s["concurrency"])
        fig, ax = plt.subplots(figsize=(10, 1.5 + 0.45 * len(s["contenders"])))
        _bars(ax, s["contenders"], [x["throughput_per_s"] or 0 for x in s["contenders"]])
        ax.legend(
            handles=_kind_handles({x["kind"] for x in s["contenders"]}),
            loc="lower left",
            bbox_to_anchor=(0.0, 1.01),
            ncol=3,
            fontsize=8,
            frameon=False,
            borderaxespad=0,
        )
        ax.set_xlabel("runs/s (higher is better)")
        ax.set_title(f"{s['concurrency']} CPU-bound runs in flight ({tag})", pad=24)
        fig.tight_layout()
        made.append(_save(fig, out / "cpu_throughput.png", plt))

    # 4. scaling: cost per run vs burst size
    sc = [s for s in res["sections"] if s["section"] == "scaling"]
    if sc and sc[0]["contenders"]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for tier in sorted({x["tier"] for x in sc[0]["contenders"]}):
            pts = [(x["burst"], x["per_run_us"]) for x in sc[0]["contenders"] if x["tier"] == tier]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{tier} tier")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("runs in the burst")
        ax.set_ylabel("us per run")
        ax.set_title(f"cost per run as the burst grows ({tag})")
        ax.legend()
        fig.tight_layout()
        made.append(_save(fig, out / "scaling.png", plt))
    return made, ""


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=90, bbox_inches="tight", pad_inches=0.2)
    plt.close(fig)
    return path
