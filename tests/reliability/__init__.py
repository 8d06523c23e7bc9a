"""Reliability under load, faults and hostile input (issue 12): soak, faults mid-batch,
durability, the inline/context stall, close and exit, and a hypothesis fuzz of every input.

Every test here is marked ``slow``. ``harness`` holds the mix of runs, the driver that keeps 32
of them in flight from sync and async callers, and the measurements of what an executor leaves
behind; ``benchmarks/soak.py`` drives the same harness for the long version. ``targets`` is
stdlib-only (its functions run whole inside subinterpreters); ``graphs`` wires its nodes into
LangGraph graphs.
"""
