"""Third-party executor tiers, registered through the ``subiso.executors`` entry-point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

GROUP = "subiso.executors"


def plugin_tiers() -> dict[str, EntryPoint]:
    """Installed plugin tiers by name (read fresh each call: installs may change at runtime)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}
