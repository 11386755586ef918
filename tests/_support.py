"""Helpers for reliability tests: a real `sematic-metrics serve` subprocess,
a TCP proxy that can drop responses, an in-thread server for any settings,
and a reader for a stopped server's data directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sematic_metrics.service.app import create_app
from sematic_metrics.service.config import Settings

BIN = Path(sys.executable).parent / "sematic-metrics"
SOAK = os.environ.get("SEMATIC_METRICS_SOAK", "") not in ("", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command() -> list[str]:
    if BIN.exists():
        return [str(BIN), "serve"]
    return [sys.executable, "-m", "sematic_metrics.cli", "serve"]


class ServerProcess:
    """`sematic-metrics serve` in a subprocess with its own data directory."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")},
            "SEMATIC_METRICS_DATA_DIR": str(data_dir),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 90) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*server_command(), "--port", str(self.port), "--log-level", "warning"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM: a graceful shutdown; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


_READER = """
import json, sys
from pathlib import Path
from sematic_metrics.service.config import Settings
from sematic_metrics.service.store import Store
settings = Settings(data_dir=Path(sys.argv[1]), read_pool_size=1)
with Store(settings) as store:
    rows = store.query(sys.argv[2])
print(json.dumps([list(r) for r in rows], default=str))
"""


def query_data_dir(data_dir: Path, sql: str) -> list[list[Any]]:
    """Run SQL on the data directory of a stopped server, in a fresh process
    (one embedded engine per process, and the test process has its own)."""
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(data_dir), sql],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")},
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading {data_dir} failed:\n{done.stderr[-3000:]}")
    rows: list[list[Any]] = json.loads(done.stdout)
    return rows


class DropProxy:
    """A TCP proxy. While ``drops`` > 0, a connection whose upstream starts to
    answer is cut instead: the server has done the work, the client never
    hears about it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.drops = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def drop_next(self, n: int) -> None:
        with self._lock:
            self.drops += n

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops > 0:
                self.drops -= 1
                self.dropped += 1
                return True
            return False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return

        def pump_up() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    upstream.sendall(data)
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

        threading.Thread(target=pump_up, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if self._take_drop():
                    # RST rather than FIN, as a dead middlebox or peer would.
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() wakes the other pump, blocked in recv() on these sockets.
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def __enter__(self) -> DropProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self.listener.close()


@contextlib.contextmanager
def serve_in_thread(settings: Settings) -> Iterator[Any]:
    """The app for any settings under uvicorn in a thread; yields the app."""
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    app.state.url = f"http://127.0.0.1:{port}"
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(30)


def compact_batch(key: str, n: int, name: str = "points", t0: float = 1_700_000_000.0) -> dict[str, Any]:
    """n COUNT points of value 1 labelled run_id=key: summing a series counts points."""
    return {
        "labels": {"run_id": key, "root_id": key},
        "points": {
            "name": [name] * n,
            "value": [1.0] * n,
            "metric_type": [0] * n,
            "metric_time": [t0 + i for i in range(n)],
        },
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]
