"""The caller's ``__main__`` and the process tier's workers: a script needs no
``if __name__ == "__main__":`` guard for runs that name nothing in it, and one that does gets
told to add the guard (instead of a worker that "exited with code 1 while starting").

Each test runs a script in a fresh interpreter: the main module is the subject.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from subiso.errors import WorkerCrashed
from subiso.executors.process import ProcessExecutor

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
START_METHODS = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]
GUARD = "if __name__ == '__main__':"

UNGUARDED = """
import sys
import subiso

print("top level", flush=True)

def wf(x):
    return x * 2

with subiso.ProcessExecutor(max_workers=1, start_method=sys.argv[1]) as ex:  # no main guard
    print(ex.run({"graph": sys.argv[2], "input": 7}), flush=True)
"""


def run_script(
    tmp_path: Path, source: str, *args: str, module: bool = False
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "script.py").write_text(source, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    command = ["-m", "script"] if module else [str(tmp_path / "script.py")]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_script_without_the_main_guard_runs_import_path_targets(
    start_method: str, tmp_path: Path
) -> None:
    """The worker never imports the script: its top level runs once (in the host), and the
    run succeeds where multiprocessing's own main-module import used to kill the worker."""
    proc = run_script(tmp_path, UNGUARDED, start_method, "tests.workloads:square")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["top level", "49", ""], proc.stdout + proc.stderr


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_script_without_the_main_guard_is_told_to_add_it_for_main_targets(
    start_method: str, tmp_path: Path
) -> None:
    """``"__main__:wf"`` needs the script in the worker, whose top level would start workers
    again: the caller's error says to put the executor under the guard."""
    proc = run_script(tmp_path, UNGUARDED, start_method, "__main__:wf")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "subiso.errors.ConfigError: GraphConfig.graph: cannot resolve '__main__:wf': worker "
    ), last
    assert (
        GUARD in last and "script.py" in last and "starts worker processes at import time" in last
    )


GUARDED = """
import sys
import subiso

def wf(x):
    return x * 2

if __name__ == "__main__":
    print("host", flush=True)
    with subiso.ProcessExecutor(max_workers=1, start_method=sys.argv[1]) as ex:
        print(ex.run({"graph": "__main__:wf", "input": 7}), flush=True)
else:
    print("imported as", __name__, flush=True)
"""


@pytest.mark.parametrize("module", [False, True], ids=["path", "module"])
@pytest.mark.parametrize("start_method", START_METHODS)
def test_main_targets_import_the_script_in_the_worker_once_needed(
    start_method: str, module: bool, tmp_path: Path
) -> None:
    """A guarded script (run by path or with ``-m``) still resolves ``"__main__:wf"`` in the
    worker: the worker imports it as multiprocessing would (``__mp_main__``) when the run
    needs it."""
    proc = run_script(tmp_path, GUARDED, start_method, module=module)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["host", "imported as __mp_main__", "14", ""], proc.stdout


def test_starting_a_worker_while_importing_the_main_module_names_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process importing its parent's main module (multiprocessing's "bootstrapping phase",
    e.g. a ``multiprocessing`` child of an unguarded script) that starts a worker is told why
    and what to do, not handed a worker that died while starting."""
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with ProcessExecutor(max_workers=1) as ex, pytest.raises(WorkerCrashed) as info:
        ex.run({"graph": "tests.workloads:square", "input": 3})
    message = str(info.value)
    assert "could not start a worker process" in message
    assert "was importing its parent's main module" in message and GUARD in message
