"""Thin wrapper over the ``subiso bench`` engine (``src/subiso/bench/``), for ``benchmarks/`` users:

    python benchmarks/bench.py [--quick] [--out DIR] [--sections trivial,cpu,...]

Same options and output as ``subiso bench``. The older ``bench_*.py`` scripts here measure one
executor path each in more depth; ``subiso bench`` is the side-by-side overview with peers.
"""

from __future__ import annotations

from _common import ensure_repo_importable

ensure_repo_importable()

from subiso.cli import main  # noqa: E402

if __name__ == "__main__":
    import sys

    main(["bench", *sys.argv[1:]], prog_name="benchmarks/bench.py")
