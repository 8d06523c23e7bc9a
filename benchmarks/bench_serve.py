"""Thin wrapper over ``subiso bench --sections serve`` (``src/subiso/bench/serve.py``):
``subiso serve`` (thread and process tiers) next to ``langgraph dev`` - runs.wait runs/s and
p50/p99, and ``/ok`` latency while 4 CPU-bound runs execute, in interleaved rounds.

    python benchmarks/bench_serve.py [--rounds N] [--quick] [--out DIR]

``langgraph dev`` is ``langgraph`` beside this Python, on PATH, or ``$SUBISO_BENCH_LANGGRAPH``
(``langgraph-cli[inmem]`` installs on Python 3.13).
"""

from __future__ import annotations

from _common import ensure_repo_importable

ensure_repo_importable()

from subiso.cli import main  # noqa: E402

if __name__ == "__main__":
    import sys

    main(["bench", "--sections", "serve", *sys.argv[1:]], prog_name="benchmarks/bench_serve.py")
