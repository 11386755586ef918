"""Start and stop service processes on loopback for the benchmarks.

Our own server is started by the test suite's helpers (tests/_support.py:
``ServerProcess``, ``LiveServer``, ``free_port``), so benchmarks and tests
start it one way; this module adds the peers (Sematic, MLflow)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository root holds tests/
    sys.path.insert(0, str(ROOT))

from tests._support import LiveServer, ServerProcess, free_port  # noqa: E402

__all__ = ["LiveServer", "ServerProcess", "free_port", "mlflow", "ours", "process", "sematic"]


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer {path} within {timeout_s:.0f} s; log:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def process(
    argv: Sequence[str],
    port: int,
    health_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process in its own process group until the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    try:
        wait_http(port, health_path, proc, timeout_s, log)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# The series cache off: every read computed, as the first read after a write
# (a repeated read is answered from memory while its metric is unchanged).
COMPUTED = {"SEMATIC_METRICS_SERIES_CACHE_MB": "0"}


@contextlib.contextmanager
def ours(data_dir: Path, log: Path, env: Mapping[str, str] | None = None) -> Iterator[int]:
    """``sematic-metrics serve`` on a free port with its own data directory."""
    server = ServerProcess(data_dir, env=env, log_path=log)
    with server:
        yield server.port
        server.stop()


BENCH_DIR = Path(__file__).resolve().parent
PEERS = {
    "sematic": ("sematic==0.41.0", "Sematic 0.41 server, SQLite"),
    "mlflow": ("mlflow", "MLflow tracking server, SQLite backend"),
}


def peer_python(name: str, root: Path = BENCH_DIR) -> Path:
    return root / f".venv-{name}" / "bin" / "python"


def peer_missing(name: str, root: Path = BENCH_DIR) -> str | None:
    """Why the peer cannot run here, or None when its virtualenv is installed."""
    python = peer_python(name, root)
    if not python.exists():
        return (
            f"not installed: {python.parent.parent} is missing (`benchmarks/run.py --install-peers` "
            f"creates it: python -m venv, then pip install {PEERS[name][0]})"
        )
    module = "sematic.api.server" if name == "sematic" else "mlflow.server"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return f"installed but {module} cannot be found in {python.parent.parent}: {probe.stderr[-300:]}"
    return None


def install_peer(name: str, root: Path = BENCH_DIR) -> str:
    """Create the peer's virtualenv and pip install it; returns the pip log tail."""
    venv = root / f".venv-{name}"
    if not peer_python(name, root).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(peer_python(name, root)), "-m", "pip", "install", "-q", PEERS[name][0]],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {PEERS[name][0]} failed: {proc.stderr[-1000:]}")
    return proc.stdout[-500:]


@contextlib.contextmanager
def sematic(config_dir: Path, log: Path, root: Path = BENCH_DIR) -> Iterator[int]:
    """The Sematic 0.41 server (its ``sematic start`` steps, in the foreground)."""
    port = free_port()
    config_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(peer_python("sematic", root)), str(BENCH_DIR / "_peer_sematic_server.py")]
    env = {"SEMATIC_CONFIG_DIR": str(config_dir), "PORT": str(port)}
    with process(argv, port, "/api/v1/meta/versions", log, env, cwd=config_dir, timeout_s=180):
        yield port


@contextlib.contextmanager
def mlflow(directory: Path, log: Path, root: Path = BENCH_DIR) -> Iterator[int]:
    """``mlflow server`` with a SQLite backend store (default workers)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        str(peer_python("mlflow", root).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--default-artifact-root", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with process(argv, port, "/health", log, cwd=directory, timeout_s=180):
        yield port
