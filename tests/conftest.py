"""Fixtures: the store under test on every backend, a fresh database per test,
and the service served by a real uvicorn server on a free port.

Backends: ``embedded`` (one chDB engine per test session, tests isolated by
database) and ``server`` (a ClickHouse server: ``SEMATIC_METRICS_TEST_CLICKHOUSE_URL``
if set, else a container started through testcontainers when a Docker engine
answers). Every test that uses ``settings`` (and so ``store``, ``live``,
``client``, ``keyed_live``) runs on both; without a server the ``server`` runs
are skipped with the reason in the pytest summary.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from sematic_metrics.service.app import create_app
from sematic_metrics.service.config import ApiKey, Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.store import Store

SERVER_URL_ENV = "SEMATIC_METRICS_TEST_CLICKHOUSE_URL"
# The same pin as docker-compose.yml (tests/test_store.py checks they agree).
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:26.9.6.6"
BACKENDS = ("embedded", "server")


def docker_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers /_ping."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not os.path.exists(path):
                return f"no Docker engine ({path} does not exist)"
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(3)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = sock.recv(64)
        else:
            address = urllib.parse.urlsplit(host.replace("tcp://", "http://", 1))
            with urllib.request.urlopen(f"http://{address.netloc}/_ping", timeout=3) as response:
                reply = f"HTTP/1.0 {response.status} ".encode()
    except OSError as exc:
        return f"no Docker engine answers at {host}: {exc}"
    return None if b" 200 " in reply else f"the Docker engine at {host} answered {reply[:40]!r}"


def _wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.read().strip() == b"Ok.":
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.fixture(scope="session")
def clickhouse_url() -> Iterator[str]:
    """A ClickHouse server for the whole session, or a skip saying why there is none."""
    url = os.environ.get(SERVER_URL_ENV, "").strip()
    if url:
        yield url
        return
    problem = docker_problem()
    if problem is not None:
        pytest.skip(f"server backend: {SERVER_URL_ENV} is not set and {problem}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(CLICKHOUSE_IMAGE)
            .with_exposed_ports(8123)
            .with_env("CLICKHOUSE_USER", "test")
            .with_env("CLICKHOUSE_PASSWORD", "test")
            .with_env("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "1")
        )
        container.start()
    try:
        address = f"{container.get_container_host_ip()}:{container.get_exposed_port(8123)}"
        _wait_ready(f"http://{address}")
        yield f"http://test:test@{address}"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            container.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # chDB hosts one engine per process, so the whole session shares one data
    # directory and isolates tests by database.
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str, engine_dir: Path) -> Settings:
    database = f"t_{uuid.uuid4().hex[:12]}"
    if backend == "server":
        url = request.getfixturevalue("clickhouse_url")
        return Settings(clickhouse_url=url, database=database, read_pool_size=4)
    return Settings(data_dir=engine_dir, database=database, read_pool_size=4)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings) as s:
        migrate(s)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app under a real uvicorn server, in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.app.state.service

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server
        server.service.store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c


@pytest.fixture
def keyed_live(settings: Settings) -> Iterator[LiveServer]:
    keys = (
        ApiKey("alice", "alice-secret-key"),
        ApiKey("reader", "reader-secret-key", frozenset({"read"})),
    )
    with LiveServer(replace(settings, api_keys=keys)) as server:
        yield server
