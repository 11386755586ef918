"""Shared test helpers (the benchmarks import the server helpers too).

- request bodies: ``point``, ``run_labels``, ``compact``, ``compact_batch``;
- waiting: ``wait_until`` polls a condition against a deadline;
- servers: ``free_port``, ``LiveServer`` (the app under uvicorn in a thread of
  this process), ``ServerProcess`` (``sematic-metrics serve`` in a subprocess
  with its own data directory), ``DropProxy`` (a TCP proxy that can cut
  responses) and ``query_data_dir`` (SQL on a stopped server's data directory).

Nothing here imports pytest: benchmarks run as plain scripts.
"""

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sematic_metrics.service.app import create_app
from sematic_metrics.service.config import Settings
from sematic_metrics.service.core import Service

T0 = 1_700_000_000  # a whole multiple of 100 seconds
BIN = Path(sys.executable).parent / "sematic-metrics"
SOAK = os.environ.get("SEMATIC_METRICS_SOAK", "") not in ("", "0")


# -- request bodies -----------------------------------------------------------------
def point(
    name: str = "loss",
    value: Any = 1.0,
    t: float = T0,
    metric_type: int = 1,
    **labels: Any,
) -> dict[str, Any]:
    """One point in Sematic's ``metric_points`` form."""
    return {"name": name, "value": value, "metric_type": metric_type, "metric_time": t, "labels": labels}


def run_labels(run_id: str, root_id: str | None = None, pipeline: str = "train.pipeline") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "root_id": root_id or run_id,
        "function_path": pipeline if (root_id or run_id) == run_id else "train.step",
        "root_function_path": pipeline,
    }


def compact(
    labels: dict[str, Any],
    names: Sequence[str],
    values: Sequence[Any],
    times: Sequence[float],
    types: Sequence[int] | None = None,
    steps: Sequence[int | None] | None = None,
) -> dict[str, Any]:
    """A body in the compact (columnar) form."""
    points: dict[str, Any] = {
        "name": list(names),
        "value": list(values),
        "metric_type": list(types) if types is not None else [1] * len(names),
        "metric_time": list(times),
    }
    if steps is not None:
        points["step"] = list(steps)
    return {"labels": labels, "points": points}


def compact_batch(key: str, n: int, name: str = "points", t0: float = 1_700_000_000.0) -> dict[str, Any]:
    """n COUNT points of value 1 labelled run_id=key: summing a series counts points."""
    return compact(
        {"run_id": key, "root_id": key}, [name] * n, [1.0] * n, [t0 + i for i in range(n)], [0] * n
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# -- waiting ----------------------------------------------------------------------
def wait_until(condition: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` at the deadline.
    The deadline only bounds a failure: a passing test waits as long as it must."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s:.0f} s")
        time.sleep(0.01)


# -- servers ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# At teardown, requests still in flight are cut after this many seconds: a
# long poll of Sematic's dashboard, forwarded upstream, holds one for 25 s.
SHUTDOWN_GRACE_S = 3


def server_config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


class LiveServer:
    """The app under a real uvicorn server, in a thread of this process:
    ``create_app(settings)``, or ``app`` (any ASGI app) when given."""

    def __init__(self, settings: Settings, port: int | None = None, app: Any = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app if app is not None else create_app(settings)
        self.server = uvicorn.Server(server_config(self.app, self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 120, "uvicorn start")
        if not self.server.started:
            raise RuntimeError("the server thread ended before uvicorn started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def server_command() -> list[str]:
    if BIN.exists():
        return [str(BIN), "serve"]
    return [sys.executable, "-m", "sematic_metrics.cli", "serve"]


class ServerProcess:
    """`sematic-metrics serve` in a subprocess with its own data directory;
    the environment keeps no SEMATIC_METRICS_ variable but those in ``env``."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}-server.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")},
            "SEMATIC_METRICS_DATA_DIR": str(data_dir),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 120) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*server_command(), "--port", str(self.port), "--log-level", "warning", *self.args],
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
        """SIGTERM: a graceful shutdown; returns the exit code (0 if never started)."""
        if self.proc is None:
            return 0
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


# Headless Chromium for browser tests and benchmarks: Debian's package, never a
# downloaded browser, with the background traffic a closed network refuses off.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "screenshots"
UPLOT = REPO / "sematic_metrics" / "service" / "static" / "vendor" / "uPlot.esm.js"
