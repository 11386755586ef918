"""A real Sematic 0.41 server and pipelines run by Sematic's LocalRunner.

Sematic is not a dependency of this project: it lives in its own git-ignored
virtualenv, ``.venv-sematic`` (``scripts/install_sematic.sh``). Without it the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SEMATIC_VENV = Path(os.environ.get("SEMATIC_VENV", ROOT / ".venv-sematic"))
SEMATIC_PYTHON = SEMATIC_VENV / "bin" / "python"
SEMATIC_VERSION = "0.41.0"


def sematic_problem() -> str | None:
    """Why Sematic 0.41 cannot be used here, or None."""
    if not SEMATIC_PYTHON.exists():
        return f"Sematic {SEMATIC_VERSION} is not installed in {SEMATIC_VENV}; run scripts/install_sematic.sh"
    probe = subprocess.run(
        [str(SEMATIC_PYTHON), "-c", "from importlib.metadata import version; print(version('sematic'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    found = probe.stdout.strip()
    if found != SEMATIC_VERSION:
        return (
            f"{SEMATIC_VENV} has sematic {found or 'missing'}, not {SEMATIC_VERSION}; "
            "run scripts/install_sematic.sh"
        )
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment minus anything that points Sematic elsewhere."""
    drop = ("SEMATIC_", "DATABASE_URL", "PORT", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{SEMATIC_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


class SematicServer:
    """``python -m sematic.api.server --debug``: Sematic's local server (Flask
    under uvicorn, socket.io over long polling) on its own SQLite database."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config_dir = workdir / "sematic-config"
        self.db_path = self.config_dir / "db.sqlite3"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "sematic-server.log"
        self.env = _clean_env(
            {
                "SEMATIC_CONFIG_DIR": str(self.config_dir),
                "DATABASE_URL": f"sqlite:///{self.db_path}",
                "PORT": str(self.port),
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> SematicServer:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(SEMATIC_VENV / "bin" / "sematic"), "migrate"],
            env=self.env,
            cwd=self.workdir,
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SEMATIC_PYTHON), "-m", "sematic.api.server", "--debug"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the Sematic server exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/meta/versions", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Sematic server did not answer:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            # Its workers wait out open long polls (about 20 s) before they stop;
            # nothing of this throwaway server needs keeping.
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)

    def log_tail(self, n: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def sematic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SematicServer]:
    problem = sematic_problem()
    if problem is not None:
        pytest.skip(problem)
    server = SematicServer(tmp_path_factory.mktemp("sematic")).start()
    try:
        yield server
    finally:
        server.stop()


def _pipeline_command(script: str, server_address: str, workdir: Path) -> tuple[list[str], dict[str, str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "pipeline.py"
    path.write_text(script)
    (workdir / "client-config").mkdir(exist_ok=True)
    env = _clean_env(
        {
            "SEMATIC_SERVER_ADDRESS": server_address,
            "SEMATIC_CONFIG_DIR": str(workdir / "client-config"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return [str(SEMATIC_PYTHON), str(path)], env


def start_pipeline(script: str, server_address: str, workdir: Path) -> subprocess.Popen[str]:
    """Start ``script`` like run_pipeline, without waiting for it."""
    command, env = _pipeline_command(script, server_address, workdir)
    return subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_pipeline(script: str, server_address: str, workdir: Path, timeout_s: float = 300) -> Any:
    """Run ``script`` in Sematic's Python with SEMATIC_SERVER_ADDRESS set to
    ``server_address``; the script prints one JSON document last, returned here."""
    command, env = _pipeline_command(script, server_address, workdir)
    done = subprocess.run(
        command,
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-8000:])
        raise AssertionError(f"the pipeline exited with {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
