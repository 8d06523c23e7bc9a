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


def target_table(res: Result) -> str:
    lines = [
        "| target | goal | figure | per-round range | met | measured |",
        "|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        met = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
        fig = "-" if t["figure"] is None else f"{t['figure']:.2f}x"
        note = t["measured"] + (f" ({t['note']})" if t["note"] else "")
        lines.append(
            f"| {t['target']} | {t['goal']} | {fig} | {_rng(t['range'])} | {met} | {note} |"
        )
    return "\n".join(lines)


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
        f"{'quick smoke run (counts too small to read)' if res['quick'] else 'full run'}; "
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


def plots(res: Result, out: Path) -> tuple[list[Path], str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib not installed: no plots (pip install 'subiso[bench]')"
    made: list[Path] = []
    tag = res["python"]["tag"]

    # 1. per-run cost, one run at a time, per workload (bars, x floor)
    singles = [s for s in res["sections"] if s["concurrency"] == 1 and s["section"] != "scaling"]
    if singles:
        fig, axes = plt.subplots(
            len(singles), 1, figsize=(9, 2.2 + 1.9 * len(singles)), squeeze=False
        )
        for ax, s in zip(axes[:, 0], singles, strict=True):
            names = [x["name"] for x in s["contenders"]]
            vals = [x["ratio"] or 0 for x in s["contenders"]]
            colors = [
                {"floor": "grey", "peer": "tab:orange", "tier": "tab:blue"}[x["kind"]]
                for x in s["contenders"]
            ]
            ax.barh(names, vals, color=colors)
            ax.axvline(1.0, color="k", lw=0.6)
            ax.set_title(
                f"{s['section']} / {s['workload']}: time per run, x {s['reference']}", fontsize=9
            )
            ax.tick_params(labelsize=7)
        fig.suptitle(f"subiso bench {tag}: one run at a time")
        fig.tight_layout()
        made.append(_save(fig, out / "per_run.png", plt))

    # 2. I/O throughput vs concurrency
    io = [s for s in res["sections"] if s["section"] == "io"]
    if io:
        fig, ax = plt.subplots(figsize=(8, 5))
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
        ax.set_ylabel("runs/s")
        ax.set_title(f"I/O fan-out graph: throughput ({tag})")
        ax.legend(fontsize=7)
        made.append(_save(fig, out / "io_throughput.png", plt))

    # 3. CPU-bound: throughput at the largest concurrency
    cpu = [s for s in res["sections"] if s["section"] == "cpu"]
    if cpu:
        s = max(cpu, key=lambda s: s["concurrency"])
        fig, ax = plt.subplots(figsize=(9, 4.5))
        names = [x["name"] for x in s["contenders"]]
        ax.barh(
            names,
            [x["throughput_per_s"] or 0 for x in s["contenders"]],
            color=[
                {"floor": "grey", "peer": "tab:orange", "tier": "tab:blue"}[x["kind"]]
                for x in s["contenders"]
            ],
        )
        ax.set_xlabel("runs/s")
        ax.set_title(f"{s['concurrency']} CPU-bound runs in flight ({tag})")
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        made.append(_save(fig, out / "cpu_throughput.png", plt))

    # 4. scaling: cost per run vs burst size
    sc = [s for s in res["sections"] if s["section"] == "scaling"]
    if sc and sc[0]["contenders"]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for tier in sorted({x["tier"] for x in sc[0]["contenders"]}):
            pts = [(x["burst"], x["per_run_us"]) for x in sc[0]["contenders"] if x["tier"] == tier]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=tier)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("runs in the burst")
        ax.set_ylabel("us per run")
        ax.set_title(f"cost per run as the burst grows ({tag})")
        ax.legend()
        made.append(_save(fig, out / "scaling.png", plt))
    return made, ""


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
