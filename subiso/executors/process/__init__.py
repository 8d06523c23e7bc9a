"""The process tier: warm worker processes, msgspec frames over pipes.

* :mod:`.host` - :class:`ProcessExecutor`: pool, dispatch, supervision (host side).
* :mod:`.worker` - **runs inside each worker process**: its loop, its channel to the host.
* :mod:`.wire` - the messages both sides exchange.
"""

from __future__ import annotations

from subiso.executors.process.host import ProcessExecutor

__all__ = ["ProcessExecutor"]
