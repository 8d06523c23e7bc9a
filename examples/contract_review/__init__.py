"""Contract-review demo workflow for subiso.

Imports nothing on purpose: ``examples.contract_review.clauses`` must load inside own-GIL
subinterpreters, so importing this package must not pull in langgraph (``graph.py`` does).
Run it with ``python -m examples.contract_review``.
"""
