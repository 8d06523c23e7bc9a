"""A process-tier run's output is freed as soon as its caller lets go of it: no reference
cycle (a future and its done-callbacks, a relayed future, a timer armed for the run's timeout)
keeps it for the cyclic collector. Otherwise a 10 MB state stays in memory once per run until
a full collection, which then has all of them to walk (the payload runs' p99)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def no_cyclic_collector() -> Iterator[None]:
    """Only reference counting frees objects during the test."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("how", ["run", "submit"])
@pytest.mark.parametrize("timeout", [None, 300])
def test_a_runs_output_is_freed_when_the_caller_drops_it(
    make_executor: Any, no_cyclic_collector: None, how: str, timeout: float | None
) -> None:
    tier = "process"
    ex = make_executor(tier, max_workers=1)
    cfg = {"graph": "tests.codec_workloads:exact_output", "timeout": timeout}
    for _ in range(2):  # the first run warms the worker up
        out = ex.run(cfg) if how == "run" else ex.submit(cfg).result()
        doc = weakref.ref(out["doc"])
        del out
        assert doc() is None, f"{tier} {how}: the output outlives the caller's last reference"
