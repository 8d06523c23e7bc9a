"""A third-party tier, installed as a real distribution (a ``*.dist-info`` with an
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

ROOT = Path(__file__).resolve().parents[1]
CLI_ARGS = ("--executor", "echo", "--input", "5", "--json")

PLUGIN_SOURCE = '''
"""A tiny plugin tier: runs inline and stamps its greeting on every report."""

import msgspec

from subiso.executors.inline import InlineExecutor


class EchoExecutor(InlineExecutor):
    tier = "echo"

    def __init__(self, *, greeting="hello", timeout=None, checkpointer=None):
        super().__init__(timeout=timeout, checkpointer=checkpointer)
        self.greeting = greeting

    def execute(self, cfg):
        result = super().execute(cfg)
        report = msgspec.structs.replace(result.report, tier=f"echo:{self.greeting}")
        return type(result)(result.output, report)
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the ``subiso-echo`` distribution into a directory on ``sys.path``."""
    site = tmp_path / "site"
    package = site / "subiso_echo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    dist = site / "subiso_echo-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: subiso-echo\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\necho = subiso_echo:EchoExecutor\n", encoding="utf-8"
    )
    (dist / "RECORD").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_EXECUTOR, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield site
    sys.modules.pop("subiso_echo", None)


def test_plugin_is_discovered(plugin_dir: Path) -> None:
    assert "echo" in plugin_tiers()
    assert "echo" in known_tiers()
    assert tier_class("echo").__name__ == "EchoExecutor"


def test_plugin_selected_from_settings_file(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text(
        'executor = "echo"\ntimeout = 20\nmax_workers = 8\n\n[echo]\ngreeting = "hi"\n',
        encoding="utf-8",
    )
    with subiso.load_executor() as executor:
        assert type(executor).__name__ == "EchoExecutor"
        # shared keys it takes apply (timeout), ones it does not take are dropped (max_workers)
        assert (executor.greeting, executor.timeout) == ("hi", 20.0)
        result = executor.execute(GraphConfig(graph="tests.workloads:square", input=4))
    assert result.output == 16
    assert result.report.tier == "echo:hi"


def test_plugin_table_with_a_wrong_key(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text('executor = "echo"\n[echo]\ngreting = "hi"\n')
    with pytest.raises(ConfigError) as info:
        subiso.load_executor()
    message = str(info.value)
    assert "subiso.toml" in message and "greting" in message and "greeting" in message


def test_plugin_table_must_be_a_table(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text('executor = "echo"\necho = "loud"\n')
    with pytest.raises(ConfigError, match="'echo' must be a table"):
        subiso.load_executor()


def test_plugin_from_the_cli(plugin_dir: Path) -> None:
    Path("subiso.toml").write_text('[echo]\ngreeting = "cli"\n')
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
    assert doc["output"] == 25 and doc["report"]["tier"] == "echo:cli"
    info = subprocess.run(
        [sys.executable, "-m", "subiso", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    line = next(ln for ln in info.stdout.splitlines() if ln.strip().startswith("echo"))
    assert "yes" in line and "[plugin]" in line


def test_plugin_absent_without_the_distribution() -> None:
    """Sanity: the plugin comes from the installed distribution, not from subiso itself."""
    assert "echo" not in plugin_tiers()
    with pytest.raises(ConfigError, match="unknown executor 'echo'"):
        tier_class("echo")
