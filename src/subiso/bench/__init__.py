"""``subiso bench``: tiers x workloads x concurrency, next to the peers a user would pick instead.

One engine for the ``subiso bench`` command and ``benchmarks/``. Every comparison is measured
side by side: each round times every contender once, in rotating order, and ratios are taken
per round and between medians of rounds (core speed drifts within seconds on shared machines).

* :mod:`subiso.bench.cpu` - the pure CPU-bound node (stdlib + ``subiso.offload``: it loads in
  subinterpreters, so hybrid runs offload it);
* :mod:`subiso.bench.workloads` - the LangGraph graphs (I/O fan-out, 1 MB message state, the
  CPU graph) importable by worker processes;
* :mod:`subiso.bench.engine` - sections, contenders, targets; :mod:`subiso.bench.report` - JSON,
  Markdown and PNG plots; :mod:`subiso.bench.cli` - the click command.

This package's ``__init__`` imports nothing: interpreters import :mod:`subiso.bench.cpu`.
"""
