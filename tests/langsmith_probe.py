"""Run by ``test_observe_trace`` in a fresh process whose LangSmith client posts to a local
sink (``LANGSMITH_ENDPOINT``): for each tier named on the command line, what the node sees
with no trace, and with a caller holding a LangSmith trace. Prints one JSON document."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from langsmith.run_helpers import trace, tracing_context

import subiso

CFG = {"graph": "tests.observe_workloads:trace_graph", "input": {"x": 1}}


def probe(tier: str) -> dict[str, Any]:
    options = {} if tier in ("inline", "context") else {"max_workers": 1}
    with subiso.get_executor(tier, **options) as ex:
        untraced = ex.run(CFG)["seen"]
        with tracing_context(enabled=True), trace(f"caller-{tier}", run_type="chain") as caller:
            seen = ex.run(CFG)["seen"]
    return {
        "caller_trace_id": str(caller.trace_id),
        "caller_dotted_order": caller.dotted_order,
        "caller_pid": os.getpid(),
        "seen": seen,
        "untraced": untraced,
    }


def main(tiers: list[str]) -> None:
    out = {tier: probe(tier) for tier in tiers}
    from langchain_core.tracers.langchain import wait_for_all_tracers

    wait_for_all_tracers()  # this process's posts (worker processes flush as they exit)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
