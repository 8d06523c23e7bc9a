"""Encode+decode cost of the codec before (commit 8e53af0) and now, side by side.

Two ~1 MB states: (a) LangGraph-like, a ``messages`` list of LangChain ``HumanMessage`` /
``AIMessage`` (with tool_calls) plus plain-data fields; (b) plain data only (dicts, lists, strs).
Each round times the old and the new codec once, in rotating order (benchmarks/_common.py);
printed: median ms per encode+decode, ratio new/old of the medians and the range of the
per-round ratios.

    python benchmarks/bench_codec.py [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import interleaved, python_tag, table
from subiso import codec as new_codec

BASE_COMMIT = "8e53af0"


def old_codec() -> Any:
    """subiso/codec.py as of BASE_COMMIT (before the src/ layout), loaded as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{BASE_COMMIT}:subiso/codec.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_codec.py"
    path.write_text(source, "utf-8")
    spec = importlib.util.spec_from_file_location("old_codec", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_state(target: int) -> dict[str, Any]:
    """Contract-review-like plain data; every string its own object, as after parsing JSON."""
    docs: list[dict[str, Any]] = []
    while len(docs) % 100 or len(new_codec.encode(docs)) < target:
        i = len(docs)
        docs.append(
            {
                "id": i,
                "title": f"Clause {i}: limitation of liability",
                "text": f"The supplier shall not be liable for indirect losses above {i} EUR. " * 3,
                "score": i * 0.25,
                "tags": [f"liability-{i % 5}", f"cap-{i % 3}", f"section-{i % 17}"],
                "flagged": i % 3 == 0,
            }
        )
    return {"contract": "msa-2024", "docs": docs}


def messages_state(target: int) -> dict[str, Any]:
    """A chat state: alternating human/AI messages (AI with tool_calls and usage) + plain fields."""
    from langchain_core.messages import AIMessage, HumanMessage

    messages: list[Any] = []
    state = {"thread": "t-1", "step": 0, "notes": [f"note {i}" for i in range(50)]}
    while len(messages) % 50 or len(new_codec.encode({**state, "messages": messages})) < target:
        i = len(messages)
        if i % 2 == 0:
            messages.append(
                HumanMessage(f"Please review clause {i} for liability caps. " * 4, id=f"h{i}")
            )
        else:
            messages.append(
                AIMessage(
                    content=f"Clause {i} caps liability at {i} EUR; checking precedent. " * 3,
                    id=f"a{i}",
                    tool_calls=[
                        {"name": "search", "args": {"query": f"clause {i}", "k": 5}, "id": f"c{i}"}
                    ],
                    usage_metadata={"input_tokens": i, "output_tokens": 20, "total_tokens": i + 20},
                    response_metadata={"model_name": "gpt-x", "finish_reason": "tool_calls"},
                )
            )
    return {**state, "messages": messages}


def round_trip(module: Any, state: Any, reps: int) -> Callable[[], None]:
    encode, decode = module.encode, module.decode

    def run() -> None:
        for _ in range(reps):
            decode(encode(state))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--reps", type=int, default=10, help="encode+decode per timing")
    args = parser.parse_args()
    old = old_codec()
    rows = []
    for name, state in (
        ("(a) ~1 MB messages state", messages_state(1 << 20)),
        ("(b) ~1 MB plain-data state", plain_state(1 << 20)),
    ):
        assert new_codec.decode(new_codec.encode(state)) == state
        assert old.decode(old.encode(state)) == state
        times = interleaved(
            {
                "old": round_trip(old, state, args.reps),
                "new": round_trip(new_codec, state, args.reps),
            },
            args.rounds,
        )
        per_round = [n / o for n, o in zip(times["new"], times["old"], strict=True)]
        t_old = statistics.median(times["old"]) / args.reps * 1e3
        t_new = statistics.median(times["new"]) / args.reps * 1e3
        rows.append(
            (
                name,
                f"{len(new_codec.encode(state)) / 1e6:.2f} / {len(old.encode(state)) / 1e6:.2f}",
                f"{t_old:.3f}",
                f"{t_new:.3f}",
                f"{t_new / t_old:.2f}x",
                f"{min(per_round):.2f}-{max(per_round):.2f}x",
            )
        )
    print(
        table(
            f"codec encode+decode, new vs {BASE_COMMIT} ({python_tag()}, {args.rounds} rounds "
            f"of {args.reps})",
            ["state", "MB new / old", "old ms", "new ms", "new/old", "per-round range"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
