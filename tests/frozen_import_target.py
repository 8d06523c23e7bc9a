"""A workflow module whose import builds many long-lived objects, imported by a process
worker at its first run (by path: "tests.frozen_import_target:frozen_since_import").

The worker freezes what the import loaded (``gc.freeze``), so the full collections a large
run triggers need not walk it: the run reports how many objects were frozen after this
module started importing."""

from __future__ import annotations

import gc
from typing import Any

FROZEN_BEFORE_IMPORT = gc.get_freeze_count()

#: 20,000 lists (always tracked by the collector) that live as long as the worker.
TABLE = [[i] for i in range(20_000)]


def frozen_since_import(_: Any) -> int:
    return gc.get_freeze_count() - FROZEN_BEFORE_IMPORT
