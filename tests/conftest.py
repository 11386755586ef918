"""Fixtures: a real chDB engine per test session, a fresh database per test,
and the service served by a real uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from sematic_metrics.app import create_app
from sematic_metrics.config import ApiKey, Settings
from sematic_metrics.migrate import migrate
from sematic_metrics.store import Store


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # chDB hosts one engine per process, so the whole session shares one data
    # directory and isolates tests by database.
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def settings(engine_dir: Path) -> Settings:
    return Settings(data_dir=engine_dir, database=f"t_{uuid.uuid4().hex[:12]}", read_pool_size=4)


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
