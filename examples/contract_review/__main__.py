"""Run the contract-review demo through a subiso executor and print the result and its RunReport.

python -m examples.contract_review [--executor thread|inline|context|process|subinterpreter]
                                   [--config PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import subiso

EXECUTORS = ("thread", "inline", "context", "process", "subinterpreter")
DEFAULT_CONFIG = Path(__file__).with_name("contract_review.toml")
REPORT_FIELDS = (
    "tier",
    "mode",
    "fallback_reason",
    "pid",
    "thread_id",
    "interpreter_id",
    "loop_id",
    "duration_s",
)


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
        help="isolation tier to run the graph in (default: thread)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"GraphConfig file (.toml/.json/.yaml; default: {DEFAULT_CONFIG.name} next to this)",
    )
    return parser.parse_args(argv)


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
        if name == "duration_s" and isinstance(value, float):
            value = f"{value * 1000:.1f} ms"
        lines.append(f"  {name:<16}{value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Load the GraphConfig, run it through the chosen executor, print output and RunReport."""
    args = parse_args(argv)
    cfg = subiso.GraphConfig.from_file(args.config)
    with subiso.get_executor(args.executor) as ex:
        result = ex.execute(cfg)
    print(format_output(result.output))
    print()
    print(format_report(result.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
