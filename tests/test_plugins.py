"""The README's "Writing a tier" example as a third-party tier, installed as a real distribution (a ``*.dist-info`` with an
``entry_points.txt`` on the import path, as an installer leaves it), selected by name from a
settings file and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import subiso
from subiso import ConfigError, GraphConfig
from subiso.executors import tier_class
from subiso.plugins import GROUP, plugin_tiers
from subiso.settings import ENV_CONFIG, ENV_EXECUTOR, known_tiers
from tests.test_readme import readme_block

ROOT = Path(__file__).resolve().parents[1]
CLI_ARGS = ("--executor", "roundrobin", "--input", "5", "--json")

#: The README's "Writing a tier" example, installed as it stands.
PLUGIN_SOURCE = readme_block("Writing a tier")


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the ``subiso-roundrobin`` distribution into a directory on ``sys.path``."""
    site = tmp_path / "site"
    package = site / "subiso_roundrobin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    dist = site / "subiso_roundrobin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: subiso-roundrobin\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\nroundrobin = subiso_roundrobin:RoundRobinExecutor\n", encoding="utf-8"
    )
    (dist / "RECORD").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_EXECUTOR, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield site
    sys.modules.pop("subiso_roundrobin", None)


def test_plugin_is_discovered(plugin_dir: Path) -> None:
    assert "roundrobin" in plugin_tiers()
    assert "roundrobin" in known_tiers()
    assert tier_class("roundrobin").__name__ == "RoundRobinExecutor"


def test_plugin_selected_from_settings_file(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text(
        'executor = "roundrobin"\ntimeout = 20\nfallback = ["thread"]\n\n[roundrobin]\nmax_workers = 3\n',
        encoding="utf-8",
    )
    with subiso.load_executor() as executor:
        assert type(executor).__name__ == "RoundRobinExecutor"
        # shared keys it takes apply (timeout), ones it does not take are dropped (fallback)
        assert (len(executor._workers), executor.timeout) == (3, 20.0)
        result = executor.execute(GraphConfig(graph="tests.workloads:square", input=4))
    assert result.output == 16
    assert result.report.tier == "roundrobin"


def test_plugin_table_with_a_wrong_key(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text('executor = "roundrobin"\n[roundrobin]\nmax_worker = 3\n')
    with pytest.raises(ConfigError) as info:
        subiso.load_executor()
    message = str(info.value)
    assert "subiso.toml" in message and "max_worker" in message and "max_workers" in message


def test_plugin_table_must_be_a_table(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text('executor = "roundrobin"\nroundrobin = "loud"\n')
    with pytest.raises(ConfigError, match="'roundrobin' must be a table"):
        subiso.load_executor()


def test_plugin_from_the_cli(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text("[roundrobin]\nmax_workers = 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_dir)])}
    run = subprocess.run(
        [sys.executable, "-m", "subiso", "run", "tests.workloads:square", *CLI_ARGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["output"] == 25 and doc["report"]["tier"] == "roundrobin"
    info = subprocess.run(
        [sys.executable, "-m", "subiso", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    line = next(ln for ln in info.stdout.splitlines() if ln.strip().startswith("roundrobin"))
    assert "yes" in line and "[plugin]" in line


def test_plugin_absent_without_the_distribution() -> None:
    """Sanity: the plugin comes from the installed distribution, not from subiso itself."""
    assert "roundrobin" not in plugin_tiers()
    with pytest.raises(ConfigError, match="unknown executor 'roundrobin'"):
        tier_class("roundrobin")
