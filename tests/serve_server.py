"""A real ``subiso serve`` for the tests: a subprocess on a free loopback port, driven with
the official client; stopped with SIGTERM, whose exit code the tests check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.services import ROOT, free_port, wait_for

APP = ROOT / "tests" / "serve_app"
CONFIG = APP / "langgraph.json"


class Server:
    """``subiso serve CONFIG --port P ...`` with its own data directory and log file."""

    def __init__(
        self, data_dir: Path, *args: str, config: Path = CONFIG, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.argv = [
            sys.executable, "-m", "subiso", "serve", str(config), "--port", str(self.port),
            "--data-dir", str(data_dir), *args,
        ]  # fmt: skip
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        full_env.pop("SUBISO_EXECUTOR", None)
        full_env.pop("SUBISO_CONFIG", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.argv,
            cwd=data_dir,
            env=full_env,
            stdout=open(self.log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self.ready, f"subiso serve on port {self.port}", bound_s=60, proc=self.proc)
        except BaseException:
            print(self.tail())
            self.kill()
            raise

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/ok", timeout=2).status_code == 200

    def client(self, **kwargs: Any) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=kwargs.pop("api_key", None), **kwargs)

    def aclient(self, **kwargs: Any) -> Any:
        from langgraph_sdk import get_client

        return get_client(url=self.url, api_key=kwargs.pop("api_key", None), **kwargs)

    def terminate(self, bound_s: float = 60) -> int:
        """SIGTERM and wait: the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(bound_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
