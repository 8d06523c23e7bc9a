"""``subiso bench``: tiers x workloads x concurrency, next to the peers a user would pick instead.

One engine for the ``subiso bench`` command and ``benchmarks/``. Every comparison is measured
side by side: each round times every contender once, in rotating order, and ratios are taken
per round and between medians of rounds (core speed drifts within seconds on shared machines).

* :mod:`subiso.bench.cpu` - the pure CPU-bound node (stdlib + ``subiso.offload``: it loads in
  subinterpreters, so hybrid runs offload it);
* :mod:`subiso.bench.workloads` - the LangGraph graphs and their inputs (I/O fan-out, payload
  states, the CPU graph), importable by worker processes, and the catalog of workloads;
* :mod:`subiso.bench.contenders` - who runs them: tiers, peers, floors (:mod:`.peers` holds
  what the peers' worker processes run); :mod:`subiso.bench.measure` - timing primitives;
  :mod:`subiso.bench.rounds` - one comparison in interleaved rounds;
  :mod:`subiso.bench.engine` - the sections of a run;
* :mod:`subiso.bench.targets` - the targets; :mod:`subiso.bench.report` - JSON, Markdown, the
  terminal summary and PNG plots; :mod:`subiso.bench.readme` - the README's generated blocks;
  :mod:`subiso.bench.cli` - the click command.

This package's ``__init__`` imports nothing: interpreters import :mod:`subiso.bench.cpu`.
"""

#: The payload workloads (section ``payload``): states whose bytes dominate a run.
PAYLOADS = ("messages", "state-10mb", "many-small")
