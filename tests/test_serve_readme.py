"""The README's "Serving over HTTP" blocks run as written: the demo graph served on the process
tier and reviewed through the official client; then the Celery deployment - two workers, two
servers on one Redis and one PostgreSQL (real ones, tests/services.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import create_database, free_port
from tests.test_readme import ROOT, readme_block, readme_blocks

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


def test_celery_deployment_block_runs(tmp_path: Path, redis_url: str, postgres_url: str) -> None:
    pytest.importorskip("celery")
    pytest.importorskip("psycopg")
    block = readme_blocks("Serving over HTTP", "bash")[1]
    assert "--queue" in block and "celery -A examples.celery_app worker" in block
    bin_dir = str(Path(sys.executable).parent)
    port2 = free_port()
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PORT": str(free_port()),
        "PORT2": str(port2),
        "REDIS": f"{redis_url}/3",  # a database of its own: the workers take its default queue
        "DATABASE": create_database(postgres_url, "readme_queue"),
        "SUBISO_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("SUBISO_EXECUTOR", None)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "finished node: aggregate_report" in run.stdout
    assert f"the same thread via http://127.0.0.1:{port2}:" in run.stdout, run.stdout
