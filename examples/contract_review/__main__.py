"""Run the contract-review demo through a subiso executor and print the result and its RunReport.

python -m examples.contract_review [--executor thread|inline|context|process|subinterpreter|auto]
                                   [--thread-id ID] [--config PATH]

Checkpoints go to ``contract_review.db`` in the per-user data directory (``$SUBISO_DATA_DIR``,
else ``$XDG_DATA_HOME/subiso``, else ``~/.local/share/subiso``), never the working directory;
each run starts a new thread unless ``--thread-id`` names one to continue.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import subiso

EXECUTORS = ("thread", "inline", "context", "process", "subinterpreter", "auto")
DEFAULT_CONFIG = Path(__file__).with_name("contract_review.toml")
DB_NAME = "contract_review.db"
REPORT_FIELDS = (
    "tier",
    "mode",
    "fallback_reason",
    "pid",
    "thread_id",
    "interpreter_id",
    "loop_id",
    "duration_s",
    "selected_by",
)


def data_dir() -> Path:
    """Where subiso's demo keeps its files: ``$SUBISO_DATA_DIR``, else
    ``$XDG_DATA_HOME/subiso``, else ``~/.local/share/subiso`` (created if missing)."""
    explicit = os.environ.get("SUBISO_DATA_DIR")
    if explicit:
        path = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
        path = base / "subiso"
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the demo."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.contract_review",
        description="Review a contract with a LangGraph workflow run in a subiso isolation tier.",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="thread",
        help="isolation tier to run the graph in; auto picks the best one here (default: thread)",
    )
    parser.add_argument(
        "--thread-id",
        default=None,
        help="LangGraph thread to continue (default: a new thread per run)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"GraphConfig file (.toml/.json/.yaml; default: {DEFAULT_CONFIG.name} next to this)",
    )
    return parser.parse_args(argv)


def prepare(cfg: subiso.GraphConfig, thread_id: str | None) -> subiso.GraphConfig:
    """``cfg`` with the demo's checkpointer (unless it names one; with "exit" durability, one
    checkpoint per run, unless it sets one) and its thread: ``thread_id``, else the file's own,
    else a new one."""
    if cfg.checkpointer is None:
        cfg = cfg.replace(
            checkpointer=f"sqlite:///{data_dir() / DB_NAME}", durability=cfg.durability or "exit"
        )
    config = dict(cfg.config)
    configurable = dict(config.get("configurable") or {})
    if thread_id is not None or "thread_id" not in configurable:
        configurable["thread_id"] = thread_id or uuid.uuid4().hex
    config["configurable"] = configurable
    return cfg.replace(config=config)


def format_output(output: dict[str, Any]) -> str:
    """A readable summary of the graph's output (``title``, ``findings``, ``report``)."""
    report = output.get("report", {})
    lines = [
        f"{report.get('title') or output.get('title', 'Contract')}"
        f" - parties: {', '.join(report.get('parties', [])) or 'n/a'}",
        f"  clauses: {report.get('clause_count', 0)}    words: {report.get('word_count', 0)}",
        f"  overall risk: {str(report.get('overall_risk', '?')).upper()}"
        f" (score {report.get('risk_score', 0)}/100)",
        "  clauses by level: "
        + ", ".join(f"{k} {v}" for k, v in report.get("counts_by_level", {}).items()),
        "  flagged clauses by category: "
        + ", ".join(f"{k} {v}" for k, v in report.get("counts_by_category", {}).items()),
        "  top risks:",
    ]
    for finding in report.get("top_risks", []):
        lines.append(
            f"    [{finding['level']:>6} {finding['score']:4.1f}] {finding['clause_id']:>5}"
            f" {finding['heading']}: {'; '.join(finding['reasons'])}"
        )
    missing = report.get("missing_protections", [])
    if missing:
        lines.append("  missing protections: " + "; ".join(missing))
    return "\n".join(lines)


def format_report(report: Any) -> str:
    """The RunReport fields that say where and how the run executed."""
    lines = ["RunReport:"]
    for name in REPORT_FIELDS:
        value = getattr(report, name, None)
        if name == "selected_by" and value is None:
            continue
        if name == "duration_s" and isinstance(value, float):
            value = f"{value * 1000:.1f} ms"
        lines.append(f"  {name:<16}{value}")
    return "\n".join(lines)


def format_checkpoints(cfg: subiso.GraphConfig) -> str:
    """Which thread the run wrote to, and where (with the database's size)."""
    spec = cfg.checkpointer or ""
    where = spec
    if spec.startswith("sqlite:///"):
        db = Path(spec.removeprefix("sqlite:///"))
        size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
        where = f"{db} ({size / 1e6:.1f} MB)"
    return (
        f"checkpoints: thread {cfg.thread_id} in {where}\n"
        f"  continue this thread with --thread-id {cfg.thread_id}"
    )


def main(argv: list[str] | None = None) -> int:
    """Load the GraphConfig, run it through the chosen executor, print output and RunReport."""
    args = parse_args(argv)
    cfg = prepare(subiso.GraphConfig.from_file(args.config), args.thread_id)
    with subiso.get_executor(args.executor) as ex:
        result = ex.execute(cfg)
    print(format_output(result.output))
    print()
    print(format_report(result.report))
    print()
    print(format_checkpoints(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
