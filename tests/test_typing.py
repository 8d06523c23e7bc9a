"""Static typing of the public API, checked with mypy (skipped when mypy is not installed).

``@offload`` must keep the decorated function's signature (bare and with arguments), and the
factories must return ``Executor``, not ``Any``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = textwrap.dedent(
    """
    import subiso
    from subiso import offload


    @offload
    def double(x: int) -> int:
        return 2 * x


    @offload(strict=False)
    async def triple(x: int) -> int:
        return 3 * x


    ok: int = double(2)
    bad: str = double(2)  # line 17: the only error expected
    reveal_type(double)  # line 18
    reveal_type(triple)  # line 19
    reveal_type(subiso.get_executor("thread"))  # line 20
    reveal_type(subiso.load_executor())  # line 21
    reveal_type(subiso.executor_from_options({}))  # line 22
    """
)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_public_api_types(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            str(snippet),
        ],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stdout.splitlines()
    errors = [line for line in lines if ": error:" in line]
    notes = {  # older mypy spells builtins with their module
        int(line.split(":")[1]): line.split("Revealed type is ", 1)[1].replace("builtins.", "")
        for line in lines
        if "Revealed type is" in line
    }
    assert len(errors) == 1, proc.stdout + proc.stderr
    # (mypy's cache may replay a result under an earlier run's tmp path: match line and text)
    assert ".py:17: error: Incompatible types in assignment" in errors[0], errors
    assert notes[18] == '"def (x: int) -> int"', notes
    assert notes[19] == '"def (x: int) -> typing.Coroutine[Any, Any, int]"', notes
    for line in (20, 21, 22):
        assert notes[line] == '"subiso.executors.base.Executor"', notes
