"""The README's "Serving over HTTP" block runs as written: the demo graph served on the process
tier and reviewed through the official client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port
from tests.test_readme import ROOT, readme_block

pytest.importorskip("starlette")
pytest.importorskip("langgraph_sdk")


def test_serving_over_http_block_runs(tmp_path: Path) -> None:
    block = readme_block("Serving over HTTP", "bash")
    assert "subiso serve" in block and "examples.contract_review.remote" in block
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(ROOT),
        "PORT": str(free_port()),
        "SUBISO_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("SUBISO_EXECUTOR", None)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "finished node: aggregate_report" in run.stdout
    assert "overall risk" in run.stdout
