"""Fixtures: a fresh database per test, the store under test, and the service
served by a real uvicorn server on a free port (``live``, ``client``).

Backends: ``embedded`` (one chDB engine per test session, tests isolated by
database) and ``server`` (a ClickHouse server: ``SEMATIC_METRICS_TEST_CLICKHOUSE_URL``
if set, else a container started through testcontainers when a Docker engine
answers). A test runs on the embedded engine unless it says otherwise:

- ``@pytest.mark.backends``: the backend matters (what ClickHouse stores,
  computes or refuses), so the test runs on both; its server run is marked
  ``server``;
- ``@pytest.mark.server``: the test needs a server and runs only there.

``-m "not server"`` selects everything that runs without a server. Without a
server the ``server`` runs are skipped with the reason in the pytest summary.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest

from sematic_metrics.service.config import ApiKey, Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.store import Store
from tests._support import LiveServer

SERVER_URL_ENV = "SEMATIC_METRICS_TEST_CLICKHOUSE_URL"
# The same pin as docker-compose.yml (tests/test_store.py checks they agree).
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:26.9.6.6"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``backend`` for tests marked ``backends`` or ``server``."""
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("server") is not None:
        backends = [pytest.param("server", id="server")]
    elif metafunc.definition.get_closest_marker("backends") is not None:
        backends = [
            pytest.param("embedded", id="embedded"),
            pytest.param("server", id="server", marks=pytest.mark.server),
        ]
    else:
        return
    metafunc.parametrize("backend", backends, indirect=True)


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


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``embedded`` unless the test is marked ``backends`` or ``server``."""
    return str(getattr(request, "param", "embedded"))


class EngineKeeper:
    """One open client on the session's data directory, so that its chDB
    engine stays up between tests.

    chDB shuts its engine down when the last client closes, and every test
    closes its store. Each restart cost about 0.4 s and left about 5 threads
    and 12 file descriptors behind, so a test's setup grew from 0.8 s to
    1.4 s over 250 tests (measured with a store, migrate and drop per cycle).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dsn = Settings(data_dir=path).dsn
        self.client: Any = None

    def hold(self) -> None:
        if self.client is None:
            self.client = clickhouse_connect.get_client(dsn=self.dsn)
            self.client.query("SELECT 1")

    def release(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


@pytest.fixture(scope="session")
def engine_keeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineKeeper]:
    keeper = EngineKeeper(tmp_path_factory.mktemp("chdb"))
    keeper.hold()
    yield keeper
    keeper.release()


@pytest.fixture(scope="session")
def engine_dir(engine_keeper: EngineKeeper) -> Path:
    # chDB hosts one engine per process, so the whole session shares one data
    # directory and isolates tests by database.
    return engine_keeper.path


@pytest.fixture
def own_engine(engine_keeper: EngineKeeper) -> Iterator[None]:
    """For a test that opens an engine on another directory in this process:
    the session's engine is let go for the test (a second path is refused)."""
    engine_keeper.release()
    yield
    engine_keeper.hold()


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str, engine_dir: Path) -> Settings:
    database = f"t_{uuid.uuid4().hex[:12]}"
    if backend == "server":
        url: str = request.getfixturevalue("clickhouse_url")
        return Settings(clickhouse_url=url, database=database, read_pool_size=4)
    return Settings(data_dir=engine_dir, database=database, read_pool_size=4)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings) as s:
        migrate(s)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


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
    """The service with two keys: ``alice-secret-key`` (every scope) and
    ``reader-secret-key`` (read only)."""
    keys = (
        ApiKey("alice", "alice-secret-key"),
        ApiKey("reader", "reader-secret-key", frozenset({"read"})),
    )
    with LiveServer(replace(settings, api_keys=keys)) as server:
        yield server
        server.service.store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")
