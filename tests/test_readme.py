"""Every code block in the README runs as written: Python blocks as scripts, TOML blocks through
the settings validator, the set-up block's demo command; the "Writing a tier" example is also
installed as a real plugin distribution by ``test_plugins.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from subiso.settings import validate

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
TOML = [code for lang, code in BLOCKS if lang == "toml"]


def readme_blocks(heading: str, lang: str = "python") -> list[str]:
    """The ``lang`` blocks under the README section titled ``heading``, in order."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.S | re.M)


def readme_block(heading: str, lang: str = "python") -> str:
    """The first ``lang`` block under the README section titled ``heading``."""
    return readme_blocks(heading, lang)[0]


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_block_has_a_known_language() -> None:
    assert BLOCKS and {lang for lang, _ in BLOCKS} <= {"python", "toml", "bash", "text"}


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index: int, tmp_path: Path) -> None:
    run = run_script(PYTHON[index], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip(), "a README example prints what it did"


@pytest.mark.parametrize("index", range(len(TOML)))
def test_toml_block_is_valid_settings(index: int) -> None:
    import msgspec

    table = msgspec.toml.decode(TOML[index].encode())
    settings = validate(table.get("tool", {}).get("subiso", table), "README")
    assert settings.executor


def test_setup_block_demo_command_runs(tmp_path: Path) -> None:
    setup = readme_block("Set-up on a fresh machine: two commands", "bash")
    assert "python3 -m examples.contract_review" in setup and "tox" in setup
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SUBISO_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run(
        [sys.executable, "-m", "examples.contract_review", "--executor", "thread"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


def test_past_one_machine_block_runs() -> None:
    """Redis, two detached Celery workers and 100 reviews, exactly as the README says."""
    import shutil

    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    missing = [b for b in ("redis-server", "redis-cli", "celery") if not shutil.which(b, path=path)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {missing} not installed")
        pytest.skip(f"needs {missing}")
    block = readme_block("Past one machine", "bash")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "100/100 reviews" in run.stdout, run.stdout
    assert "runs per worker pid" in run.stdout


def test_readme_figures_are_the_committed_results() -> None:
    """The tier table's and the targets' figures are generated from benchmarks/results: a figure
    typed by hand, or results committed without ``subiso bench --readme``, fails here."""
    from subiso.bench.readme import blocks, load, names_in, render

    readme = (ROOT / "README.md").read_text()
    assert set(names_in(readme)) == {"tiers", "targets"}
    generated = blocks(load(ROOT / "benchmarks" / "results"))
    assert generated, "no full results in benchmarks/results"
    assert render(readme, generated) == readme, "run `subiso bench --readme`"
