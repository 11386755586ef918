"""The ClickHouse store: clickhouse-connect clients built from one DSN.

Embedded (``chdb://``) and server (``http(s)://``) engines are driven by the
same code. The embedded engine allows one data directory per process and
locks it, so the store takes its own lock first and turns a busy directory
into a clear error.

Inserts use the service's group commit in both modes, not the server's
``async_insert``: requests are already coalesced into few INSERTs, an
acknowledged point is a stored point, and ``insert_deduplication_token`` keeps
retries idempotent on plain MergeTree tables (ClickHouse deduplicates async
inserts only on Replicated tables). With a cluster configured, DDL is rewritten
by ``_cluster.ClusterDDL`` and inserts into Distributed tables are made
synchronous, so an acknowledged point has reached its shard.

Analysts' SQL runs on separate clients created read-only (``readonly=1`` set
once, when each client is made). With chDB every client owns its own session,
so the shared reader and writer clients never see that setting.
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

from sematic_metrics.errors import (
    ConfigError,
    ForbiddenError,
    InvalidInputError,
    SematicMetricsError,
    StoreError,
    StoreLockedError,
)
from sematic_metrics.service.cluster import ClusterDDL
from sematic_metrics.service.config import Settings

LOCK_NAME = "sematic-metrics.lock"
Params = Mapping[str, Any]
# The lock guards against other processes; stores of one process share it,
# as they share the process's one embedded engine.
_HELD: dict[Path, tuple[IO[str], int]] = {}
_HELD_LOCK = threading.Lock()
# Settings of the read-only SQL clients, applied once when each is created:
# readonly comes last so the limits before it can still be set, and analysts
# cannot change any of them afterwards.
SQL_SETTINGS: dict[str, Any] = {
    "max_execution_time": 120,
    "max_result_bytes": 512 * 1024 * 1024,
    "result_overflow_mode": "throw",
    "output_format_pretty_row_numbers": 0,
    "output_format_pretty_color": 0,
    "readonly": 1,
}
SQL_POOL_SIZE = 2
_SQL_TIMEOUT_S = 150
# ClickHouse error codes of a statement refused for lack of rights.
_REFUSED_CODES = frozenset({164, 497})  # READONLY, ACCESS_DENIED


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
        self._sql_clients: queue.Queue[Any] = queue.Queue()
        self._sql_ready = False
        self._sql_init = threading.Lock()
        self.cluster = (
            ClusterDDL.for_schema(settings.cluster, settings.database) if settings.cluster else None
        )

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
        if self.cluster is not None and self.embedded:
            raise ConfigError(
                "SEMATIC_METRICS_CLICKHOUSE_CLUSTER needs a ClickHouse server: set "
                "SEMATIC_METRICS_CLICKHOUSE_URL to one of its nodes, or unset the cluster."
            )
        if self.embedded:
            self._take_lock()
        try:
            bootstrap = self._client(database=None)
            for statement in self._rewrite(f"CREATE DATABASE IF NOT EXISTS `{self.database}`"):
                bootstrap.command(statement)
            # Into a Distributed table, insert synchronously: acknowledged means stored.
            writer_settings = {"distributed_foreground_insert": 1} if self.cluster else None
            self._writer = self._client(self.database, writer_settings)
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
        self._sql_clients = queue.Queue()
        self._sql_ready = False
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
        """Run a statement; with a cluster, in its cluster form (see _cluster)."""
        result = None
        with self._write_lock:
            for statement in self._rewrite(sql):
                try:
                    result = self._writer.command(statement, parameters=dict(params or {}))
                except ClickHouseError as exc:
                    raise self._translate(exc) from exc
        return result

    def sql(self, text: str, params: Params | None = None, fmt: str = "JSON") -> bytes:
        """Run analysts' SQL on a read-only client; the result in a ClickHouse format.

        A statement the engine refuses as a write raises ForbiddenError, any
        other rejected statement InvalidInputError; nothing else is touched.
        """
        with self._sql_client() as client:
            try:
                return bytes(client.raw_query(text, parameters=dict(params) if params else None, fmt=fmt))
            except OperationalError as exc:
                raise self._translate(exc) from exc
            except ClickHouseError as exc:
                raise _refused(exc) from exc

    def local_name(self, table: str) -> str:
        """Where a table's rows live: its local table on a cluster, else itself."""
        return self.cluster.local(table) if self.cluster else table

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
    def _rewrite(self, sql: str) -> list[str]:
        return self.cluster.rewrite(sql) if self.cluster else [sql]

    @contextlib.contextmanager
    def _sql_client(self) -> Iterator[Any]:
        with self._sql_init:
            if not self._sql_ready:
                for _ in range(SQL_POOL_SIZE):
                    self._sql_clients.put(self._client(self.database, SQL_SETTINGS, _SQL_TIMEOUT_S))
                self._sql_ready = True
        client = self._sql_clients.get()
        try:
            yield client
        finally:
            self._sql_clients.put(client)

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        client = self._readers.get()
        try:
            yield client
        finally:
            self._readers.put(client)

    def _client(
        self, database: str | None, settings: Mapping[str, Any] | None = None, timeout: int = 60
    ) -> Any:
        kwargs: dict[str, Any] = {"dsn": self.settings.dsn}
        if database:
            kwargs["database"] = database
        if settings:
            kwargs["settings"] = dict(settings)
        if not self.embedded:
            kwargs.update(connect_timeout=5, send_receive_timeout=timeout, autogenerate_session_id=False)
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


def _refused(exc: ClickHouseError) -> SematicMetricsError:
    text = str(exc).strip()
    lines = text.splitlines() or [type(exc).__name__]
    first = next((line.strip() for line in lines if "Code:" in line), lines[0])[:1000]
    if getattr(exc, "code", None) in _REFUSED_CODES or "(READONLY)" in text:
        return ForbiddenError(
            f"sql: the SQL endpoint is read-only and ClickHouse refused the statement ({first}). "
            "Send SELECT, WITH, SHOW, DESCRIBE, EXISTS or EXPLAIN queries only."
        )
    return InvalidInputError(f"sql: ClickHouse rejected the query: {first}")


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
