"""The graphs a server serves: read from ``langgraph.json``, one assistant each.

``{"graphs": {"agent": "./agent.py:graph"}}`` becomes ``{"agent": "agent:graph"}``: each
path resolved to an import path the way ``subiso run`` resolves it (its directory goes onto
``sys.path``, which worker processes inherit), and those import paths - nothing else - are
the server's ``allowed_graphs``.

A graph's drawing and schemas are computed in a child process (:mod:`subiso.serve.describe`)
and cached.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from subiso.cli._targets import langgraph_json_target
from subiso.config import read_mapping
from subiso.errors import ConfigError
from subiso.serve.encode import loads

DESCRIBE_TIMEOUT_S = 120.0


def load_graphs(path: Path) -> dict[str, str]:
    """``{graph_id: "pkg.mod:attr"}`` declared by the langgraph.json at ``path``."""
    data = read_mapping(path)
    graphs = data.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f"{path}: 'graphs' must map graph names to './file.py:attr' paths")
    return {name: langgraph_json_target(path, data, name) for name in graphs}


class Graphs:
    """The served graphs by id, and their cached descriptions."""

    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = dict(targets)
        self._described: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    def target(self, graph_id: str) -> str | None:
        return self.targets.get(graph_id)

    async def describe(self, graph_id: str, xray: str = "false") -> dict[str, Any]:
        """``{"graph": drawing, "schemas": {...}}`` from a child process (cached)."""
        key = (graph_id, xray)
        async with self._lock:
            if key not in self._described:
                self._described[key] = await _describe(self.targets[graph_id], xray)
            return self._described[key]


async def _describe(target: str, xray: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "subiso.serve.describe",
        target,
        xray,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DESCRIBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"describing {target} took over {DESCRIBE_TIMEOUT_S:g}s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"describing {target} failed: {tail[0]}")
    result: dict[str, Any] = loads(out)
    return result
