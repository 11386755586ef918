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

The service reads results by column name: ``rows`` gives one dict per row,
``columns`` one sequence per column (the faster form for large results).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from sematic_metrics.service import _repair
from sematic_metrics.service._changes import Changes, changes_of
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
    # Strings as Arrow/Parquet strings, not binary (Enum columns: see _enums_as_strings).
    "output_format_arrow_string_as_string": 1,
    "output_format_parquet_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
    # chDB turns implicit_select on: "SELEC 1" would then parse as a SELECT of
    # a column named SELEC. Off, a statement must start with its keyword.
    "implicit_select": 0,
    "readonly": 1,
}
# Formats whose Enum columns the engine writes as numbers (Arrow) or bytes (Parquet).
_TYPED_FORMATS = frozenset({"Arrow", "ArrowStream", "Parquet"})
_ENUM = re.compile(r"\bEnum(?:8|16)?\(")
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
        # Readers are made on demand up to read_pool_size (each costs a session).
        self._readers: queue.LifoQueue[Any] = queue.LifoQueue()
        self._reader_count = 0
        self._reader_lock = threading.Lock()
        # Reentrant: a caller may hold it across several statements (writing()).
        self._write_lock = threading.RLock()
        self._clients: list[Any] = []
        self._sql_clients: queue.Queue[Any] = queue.Queue()
        self._sql_ready = False
        self._sql_init = threading.Lock()
        self.cluster = (
            ClusterDDL.for_schema(settings.cluster, settings.database) if settings.cluster else None
        )
        self._changes: Changes | None = None

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
            # Only the embedded engine has one writer process, so only there do
            # the generations see every write.
            path = self.data_path
            assert path is not None
            self._changes = changes_of(path, self.database)
        try:
            bootstrap = self._client(database=None)
            for statement in self._rewrite(f"CREATE DATABASE IF NOT EXISTS `{self.database}`"):
                bootstrap.command(statement)
            # Into a Distributed table, insert synchronously: acknowledged means stored.
            writer_settings = {"distributed_foreground_insert": 1} if self.cluster else None
            self._writer = self._client(self.database, writer_settings)
            self._readers.put(self._client(self.database))
            self._reader_count = 1
        except ClickHouseError as exc:
            self.close()
            raise self._translate(exc) from exc
        return self

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        self._readers = queue.LifoQueue()
        self._reader_count = 0
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
        """Rows as tuples, for ad-hoc SQL (tests, benchmarks); the service reads
        its named queries by column name with ``rows`` or ``columns``."""
        with self._reader() as client:
            try:
                return list(self._read(client, sql, params).result_rows)
            except ClickHouseError as exc:
                raise self._translate(exc) from exc

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """The result as one dict per row, keyed by column name."""
        names, columns = self._named(sql, params)
        # From the columns: one transpose, no intermediate list of tuples.
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]

    def columns(self, sql: str, params: Params | None = None) -> dict[str, Sequence[Any]]:
        """The result as column name -> values: the fast form for large results.

        An empty result has every column, empty (chDB gives no names for it).
        """
        names, columns = self._named(sql, params)
        if not names:
            return collections.defaultdict(tuple)
        return dict(zip(names, columns, strict=True))

    def _named(self, sql: str, params: Params | None) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        with self._reader() as client:
            try:
                result = self._read(client, sql, params)
                names = tuple(result.column_names)
                return names, result.result_columns or [() for _ in names]
            except ClickHouseError as exc:
                raise self._translate(exc) from exc

    def _read(self, client: Any, sql: str, params: Params | None) -> Any:
        """Run a read; when the embedded engine reports a part corrupted, set it
        aside (see _repair, with the writer client under the write lock) and
        run the read once more."""
        try:
            return client.query(sql, parameters=dict(params or {}))
        except ClickHouseError as exc:
            if not self.embedded:
                raise
            with self._write_lock:
                repaired = _repair.set_aside(self._writer, exc)
                self._touch()
            if not repaired:
                raise
            return client.query(sql, parameters=dict(params or {}))

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock across several statements: no INSERT or other
        statement of this process's store runs until the block ends."""
        with self._write_lock:
            yield

    def command(self, sql: str, params: Params | None = None) -> Any:
        """Run a statement; with a cluster, in its cluster form (see _cluster)."""
        result = None
        with self._write_lock:
            try:
                for statement in self._rewrite(sql):
                    try:
                        result = self._writer.command(statement, parameters=dict(params or {}))
                    except ClickHouseError as exc:
                        raise self._translate(exc) from exc
            finally:  # even a failed statement may have changed rows
                self._touch()
        return result

    def sql(self, text: str, params: Params | None = None, fmt: str = "JSON") -> bytes:
        """Run analysts' SQL on a read-only client; the result in a ClickHouse format.

        A statement the engine refuses as a write raises ForbiddenError, any
        other rejected statement InvalidInputError; nothing else is touched.
        """
        with self._sql_client() as client:
            try:
                if fmt in _TYPED_FORMATS:
                    text, params = _enums_as_strings(client, text, params)
                return bytes(client.raw_query(text, parameters=dict(params) if params else None, fmt=fmt))
            except OperationalError as exc:
                raise self._translate(exc) from exc
            except ClickHouseError as exc:
                raise _refused(exc) from exc

    def result_names(self, text: str, params: Params | None = None) -> list[str] | None:
        """The column names a SELECT would return, without running it; None
        when the statement is not a SELECT or the engine cannot analyse it."""
        with self._sql_client() as client:
            described = _describe(client, text, params)
        return None if described is None else [name for name, _ in described]

    def check_syntax(self, text: str) -> None:
        """Parse a statement with the engine's parser, without running it:
        InvalidInputError with the engine's syntax error when it does not parse."""
        with self._sql_client() as client:
            try:
                client.query("SELECT formatQuery({statement:String})", parameters={"statement": text})
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
            finally:  # before the caller acknowledges; a failed INSERT may have stored parts
                if table == "metric_points":
                    self._touch(data.column("name").unique().to_pylist())
        return int(summary.written_rows)

    def version(self, name: str) -> tuple[int, int] | None:
        """The write generation of metric ``name`` (see Changes), or None when
        this process cannot see every write (a ClickHouse server)."""
        return self._changes.version(name) if self._changes is not None else None

    def _touch(self, names: Iterable[str] | None = None) -> None:
        if self._changes is not None:
            self._changes.touch(names)

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
        try:
            client = self._readers.get_nowait()
        except queue.Empty:
            client = self._new_reader() or self._readers.get()
        try:
            yield client
        finally:
            self._readers.put(client)

    def _new_reader(self) -> Any:
        """A new reader client, or None when the pool is full."""
        with self._reader_lock:
            if self._reader_count >= self.settings.read_pool_size:
                return None
            self._reader_count += 1
        try:
            return self._client(self.database)
        except BaseException as exc:
            with self._reader_lock:
                self._reader_count -= 1
            if isinstance(exc, ClickHouseError):
                raise self._translate(exc) from exc
            raise

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


def _enums_as_strings(client: Any, text: str, params: Params | None) -> tuple[str, Params | None]:
    """The statement with its Enum result columns cast to strings.

    No engine setting writes Enums as Arrow or Parquet strings (Arrow gets the
    numbers, Parquet bytes). So the result's columns are read first with
    DESCRIBE, which analyses the statement without running it, and when one
    holds an Enum, the statement is wrapped in a SELECT that casts it: the
    names, order and other columns stay as they were. Statements that cannot
    be wrapped (SHOW, EXPLAIN ..., or one DESCRIBE refuses, e.g. with a
    trailing ';' or a FORMAT clause) run as sent.
    """
    casts: dict[str, str] = {}
    for name, type_name in _describe(client, text, params) or []:
        if _ENUM.search(type_name):
            casts.setdefault(name, _without_enums(type_name))
    if not casts:
        return text, params
    bound = dict(params or {})
    replaced = []
    for i, (name, type_name) in enumerate(casts.items()):
        # Column names come from the engine and are quoted as identifiers;
        # the target types are bound values.
        bound[f"__sematic_type_{i}"] = type_name
        replaced.append(f"CAST({_quote(name)}, {{__sematic_type_{i}:String}}) AS {_quote(name)}")
    return f"SELECT * REPLACE ({', '.join(replaced)}) FROM (\n{text}\n)", bound


def _describe(client: Any, text: str, params: Params | None) -> list[tuple[str, str]] | None:
    """(name, type) of a SELECT's result columns, from the engine's analysis
    (nothing runs); None for other statements or one the engine refuses."""
    head = text.lstrip().lstrip("(").lstrip()[:4].upper()
    if head not in ("SELE", "WITH"):
        return None
    try:
        # Newlines: a trailing line comment must not swallow the parenthesis.
        described = client.query(f"DESCRIBE TABLE (\n{text}\n)", parameters=dict(params or {}))
    except ClickHouseError:
        return None
    return [(str(row["name"]), str(row["type"])) for row in described.named_results()]


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _without_enums(type_name: str) -> str:
    """A type name with every Enum8(...) / Enum16(...) replaced by String."""
    out, i = [], 0
    while match := _ENUM.search(type_name, i):
        out.append(type_name[i : match.start()] + "String")
        depth, j = 1, match.end()
        while depth and j < len(type_name):
            ch = type_name[j]
            if ch == "'":
                j += 1
                while j < len(type_name) and type_name[j] != "'":
                    j += 2 if type_name[j] == "\\" else 1
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            j += 1
        i = j
    out.append(type_name[i:])
    return "".join(out)


def _refused(exc: ClickHouseError) -> SematicMetricsError:
    text = str(exc).strip()
    lines = text.splitlines() or [type(exc).__name__]
    first = next((line.strip() for line in lines if "Code:" in line), lines[0])
    if "(SYNTAX_ERROR)" in first:
        # The engine lists every token it would have accepted: keep where it failed.
        first = first.split(". Expected one of:")[0].rstrip(".") + ". (SYNTAX_ERROR)"
    first = first[:1000]
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
