"""The ClickHouse store: clickhouse-connect clients built from one DSN.

Embedded (``chdb://``) and server (``http(s)://``) engines are driven by the
same code. The embedded engine allows one data directory per process and
locks it, so the store takes its own lock first and turns a busy directory
into a clear error.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from sematic_metrics.config import Settings
from sematic_metrics.errors import StoreError, StoreLockedError

LOCK_NAME = "sematic-metrics.lock"
Params = Mapping[str, Any]
# The lock guards against other processes; stores of one process share it,
# as they share the process's one embedded engine.
_HELD: dict[Path, tuple[IO[str], int]] = {}
_HELD_LOCK = threading.Lock()


class Store:
    """A writer client, a small pool of reader clients, and the data-dir lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = settings.database
        self._locked: Path | None = None
        self._writer: Any = None
        self._readers: queue.Queue[Any] = queue.Queue()
        self._write_lock = threading.Lock()
        self._clients: list[Any] = []

    @property
    def embedded(self) -> bool:
        return self.settings.embedded

    @property
    def data_path(self) -> Path | None:
        if not self.embedded:
            return None
        parsed = urlparse(self.settings.dsn)
        return Path(parsed.netloc + parsed.path).resolve()

    def open(self) -> Store:
        if self.embedded:
            self._take_lock()
        try:
            bootstrap = self._client(database=None)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            self._writer = self._client(self.database)
            for _ in range(self.settings.read_pool_size):
                self._readers.put(self._client(self.database))
        except ClickHouseError as exc:
            self.close()
            raise self._translate(exc) from exc
        return self

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        if self._locked is not None:
            _release(self._locked)
            self._locked = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------
    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        with self._reader() as client:
            try:
                return list(client.query(sql, parameters=dict(params or {})).result_rows)
            except ClickHouseError as exc:
                raise self._translate(exc) from exc

    def query_columns(self, sql: str, params: Params | None = None) -> Sequence[Sequence[Any]]:
        with self._reader() as client:
            try:
                result = client.query(sql, parameters=dict(params or {}))
                return result.result_columns or [() for _ in result.column_names]
            except ClickHouseError as exc:
                raise self._translate(exc) from exc

    def command(self, sql: str, params: Params | None = None) -> Any:
        with self._write_lock:
            try:
                return self._writer.command(sql, parameters=dict(params or {}))
            except ClickHouseError as exc:
                raise self._translate(exc) from exc

    def insert_arrow(self, table: str, data: Any, settings: Mapping[str, str] | None = None) -> int:
        with self._write_lock:
            try:
                summary = self._writer.insert_arrow(table, data, settings=dict(settings or {}))
            except ClickHouseError as exc:
                raise self._translate(exc) from exc
        return int(summary.written_rows)

    def ping(self) -> bool:
        try:
            return self.query("SELECT 1") == [(1,)]
        except StoreError:
            return False

    # -- internals --------------------------------------------------------
    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        client = self._readers.get()
        try:
            yield client
        finally:
            self._readers.put(client)

    def _client(self, database: str | None) -> Any:
        kwargs: dict[str, Any] = {"dsn": self.settings.dsn}
        if database:
            kwargs["database"] = database
        if not self.embedded:
            kwargs.update(connect_timeout=5, send_receive_timeout=60, autogenerate_session_id=False)
        try:
            client = clickhouse_connect.get_client(**kwargs)
        except ClickHouseError as exc:
            raise self._translate(exc) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot reach ClickHouse at {self._safe_dsn()}: {exc}. "
                "Check SEMATIC_METRICS_CLICKHOUSE_URL and that the server is up."
            ) from exc
        self._clients.append(client)
        return client

    def _take_lock(self) -> None:
        path = self.data_path
        assert path is not None
        _acquire(path)
        self._locked = path

    def _safe_dsn(self) -> str:
        parsed = urlparse(self.settings.dsn)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}" if host else self.settings.dsn

    def _translate(self, exc: Exception) -> StoreError:
        text = str(exc)
        if "Cannot lock file" in text or "Error initializing EmbeddedServer" in text:
            return StoreLockedError(
                f"the data directory {self.data_path} is locked by another process "
                f"({text.splitlines()[0][:200]}). Stop that process or use another "
                "SEMATIC_METRICS_DATA_DIR."
            )
        if isinstance(exc, OperationalError):
            return StoreError(
                f"ClickHouse at {self._safe_dsn()} is not answering ({text[:200]}). "
                "The request was not stored; retry when the store is back."
            )
        return StoreError(f"ClickHouse rejected the operation: {text[:500]}")


def _acquire(path: Path) -> None:
    with _HELD_LOCK:
        if path in _HELD:
            handle, count = _HELD[path]
            _HELD[path] = (handle, count + 1)
            return
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / LOCK_NAME, "a+")  # noqa: SIM115 - held while stores are open
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreLockedError(
                f"the data directory {path} is in use by {holder}. The embedded engine "
                "allows one process per directory: stop that process, point "
                "SEMATIC_METRICS_DATA_DIR at another directory, or query the running "
                "server over HTTP."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        _HELD[path] = (handle, 1)


def _release(path: Path) -> None:
    with _HELD_LOCK:
        handle, count = _HELD[path]
        if count > 1:
            _HELD[path] = (handle, count - 1)
            return
        del _HELD[path]
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
