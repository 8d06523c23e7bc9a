"""An install makes only ``subiso`` importable, never the checkout's other top-level packages.

With the flat layout an editable install (pip, uv, tox's ``package = editable``) wrote the
repository root into hatchling's ``.pth`` file, so ``examples``, ``tests`` and ``benchmarks``
imported from any directory in the venv. The sources now live in ``src/subiso`` and the ``.pth``
names ``src``. Checked in a fresh interpreter outside the checkout, without the ``PYTHONPATH``
the test session sets for its workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT_PACKAGES = ("examples", "tests", "benchmarks")


def where(name: str, cwd: Path) -> str | None:
    """Where a fresh interpreter, started in ``cwd`` with the venv's own paths, finds ``name``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        f"import importlib.util; spec = importlib.util.find_spec({name!r})\n"
        "print('' if spec is None else spec.origin or ' '.join(spec.submodule_search_locations))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip() or None


def installed_editable() -> bool | None:
    """True/False for an editable/regular install of subiso, None when it is not installed."""
    try:
        dist = metadata.distribution("subiso")
    except metadata.PackageNotFoundError:
        return None
    # (an editable wheel ships no package files, only the .pth; tox installs it from a file,
    # so direct_url.json does not say "editable" there)
    return not any(f.parts[0] == "subiso" for f in dist.files or [])


def test_only_subiso_is_importable_outside_the_checkout(tmp_path: Path) -> None:
    editable = installed_editable()
    if editable is None:
        pytest.skip("subiso is not installed in this environment (run through tox or pip install)")
    found = {name: where(name, tmp_path) for name in CHECKOUT_PACKAGES}
    leaked = {name: origin for name, origin in found.items() if origin and str(ROOT) in origin}
    assert not leaked, f"the install exposes the checkout's own packages: {leaked}"
    origin = where("subiso", tmp_path)
    assert origin is not None, "the installed subiso does not import outside the checkout"
    if editable:  # edits to the sources are live: the checkout's own files are imported
        assert Path(origin).resolve() == ROOT / "src" / "subiso" / "__init__.py", origin


def test_editable_pth_names_only_the_src_directory() -> None:
    """The ``.pth`` files an editable install wrote add no directory holding the checkout's
    other packages to ``sys.path`` (the repository root did)."""
    if not installed_editable():
        pytest.skip("subiso is not installed in editable mode here")
    dist = metadata.distribution("subiso")
    pth_files = [f for f in dist.files or [] if f.name.endswith(".pth")]
    assert pth_files, "an editable install without a .pth file: how does subiso import?"
    for pth in pth_files:
        for line in Path(str(dist.locate_file(pth))).read_text().splitlines():
            if not line.strip() or line.startswith(("#", "import ", "import\t")):
                continue
            directory = Path(line.strip())
            assert not [p for p in CHECKOUT_PACKAGES if (directory / p).is_dir()], (
                f"{pth} puts {directory} on sys.path: it holds more than subiso"
            )
