"""Read a Sematic 0.41 database (SQLite or PostgreSQL) for ``import-sematic``.

The SELECTs below target Sematic's own schema (``runs``, ``metric_labels``,
``metric_values``; see sematic/db/migrations in Sematic 0.41), not ours, so
they live here rather than in schema/. Values are always bound parameters.

Reads come in pages of bounded size: keyset pagination on SQLite (short read
transactions, so a running Sematic server is never blocked for long) and a
server-side cursor inside one read-only snapshot on PostgreSQL. Sematic
stores naive UTC times; they come out as epoch seconds.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sematic_metrics.errors import ConfigError

_UTC = timezone.utc
_iso = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=_UTC)
RUN_COLUMNS = (
    "id",
    "root_id",
    "parent_id",
    "function_path",
    "name",
    "future_state",
    "original_run_id",
    "created_at",
    "updated_at",
    "started_at",
    "resolved_at",
    "failed_at",
    "ended_at",
)
RUN_TIMES = frozenset(RUN_COLUMNS[7:])
_RUNS_SELECT = "SELECT " + ", ".join(f"r.{c}" for c in RUN_COLUMNS) + " FROM runs AS r"
_SQLITE_RUNS = _RUNS_SELECT + " WHERE r.id > :after ORDER BY r.id LIMIT :limit"
# Points come without their labels: each metric_id's metric_labels row is read
# once (metrics()), not once per point (a join costs twice the scan).
# SQLite: keyset on (metric_time, rowid), served by Sematic's metric_values_time_idx.
_SQLITE_POINTS = (
    "SELECT v.rowid, v.metric_time, v.value, v.metric_id FROM metric_values AS v"
    " WHERE v.metric_time >= :after_time AND (v.metric_time > :after_time OR v.rowid > :after_rowid)"
    " AND v.metric_time < :until ORDER BY v.metric_time, v.rowid LIMIT :limit"
)
_SQLITE_METRICS = (
    "SELECT metric_id, metric_name, metric_labels, metric_type FROM metric_labels"
    " WHERE metric_id IN (SELECT value FROM json_each(:ids))"
)
_SQLITE_COUNT_POINTS = "SELECT count(*) FROM metric_values WHERE metric_time < :until"
_SQLITE_COUNT_ALL = "SELECT count(*) FROM metric_values"
_SQLITE_COUNT_RUNS = "SELECT count(*) FROM runs"
_SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
# PostgreSQL: one ordered scan through a server-side cursor; ties broken by
# every column so the order (and so each chunk) is the same on every run.
_PG_RUNS = _RUNS_SELECT + " ORDER BY r.id"
_PG_POINTS = (
    "SELECT v.metric_time, v.value, v.metric_id FROM metric_values AS v WHERE v.metric_time < %(until)s"
    " ORDER BY v.metric_time, v.metric_id, v.value, v.created_at"
)
_PG_METRICS = (
    "SELECT metric_id, metric_name, metric_labels, metric_type FROM metric_labels"
    " WHERE metric_id = ANY(%(ids)s)"
)
_PG_COUNT_POINTS = "SELECT count(*) FROM metric_values WHERE metric_time < %(until)s"
_PG_COUNT_ALL = "SELECT count(*) FROM metric_values"
_PG_COUNT_RUNS = "SELECT count(*) FROM runs"
_PG_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
_NEEDED = ("runs", "metric_labels", "metric_values")
# Beyond the latest representable time: "no upper bound".
FAR_FUTURE = 10413792000.0


# One row of metric_values: (epoch seconds, value, metric_id); a plain tuple,
# because a million NamedTuples cost a second.
PointRow = tuple[float, float, str]


class Metric(NamedTuple):
    """One metric_labels row."""

    name: str
    labels: Any
    metric_type: int


class Source(Protocol):
    kind: str

    def count_runs(self) -> int: ...
    def count_points(self, until: float) -> tuple[int, int]: ...
    def runs(self, page: int) -> Iterator[list[dict[str, Any]]]: ...
    def points(self, page: int, until: float) -> Iterator[list[PointRow]]: ...
    def metrics(self, ids: list[str]) -> dict[str, Metric]: ...
    def close(self) -> None: ...


def epoch(value: object) -> float | None:
    """Sematic's times (naive UTC datetimes or their SQLite text) -> epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return (value - _EPOCH).total_seconds()
        return (value - _EPOCH_UTC).total_seconds()
    raise ValueError(f"{value!r} is not a time")


def _epoch(value: object) -> float:
    seconds = epoch(value)
    if seconds is None:
        raise ValueError("metric_values.metric_time is empty")
    return seconds


def naive_utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(min(seconds, FAR_FUTURE - 1), _UTC).replace(tzinfo=None)


def open_source(url: str) -> Source:
    """A reader for Sematic's DATABASE_URL: ``sqlite:///path`` or ``postgresql://...``."""
    scheme, _, rest = url.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        path = urllib.parse.unquote(rest[1:] if rest.startswith("/") else rest).split("?", 1)[0]
        return SqliteSource(Path(path))
    if base in ("postgresql", "postgres"):
        return PostgresSource("postgresql://" + rest)
    if not rest and Path(url).is_file():
        return SqliteSource(Path(url))
    raise ConfigError(
        f"--db {_redact(url)!r}: give Sematic's DATABASE_URL, sqlite:///path/to/db.sqlite3 "
        "(Sematic's default is sqlite:///$HOME/.sematic/db.sqlite3) or postgresql://user:pass@host:port/db"
    )


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def _check_tables(found: set[str], where: str) -> None:
    missing = [t for t in _NEEDED if t not in found]
    if missing:
        raise ConfigError(
            f"{where} has no table {', '.join(missing)}: it is not a Sematic 0.41 database "
            "(metrics came with Sematic 0.30; run `sematic migrate up` on it first)"
        )


def _labels_text(raw: object) -> Any:
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


class SqliteSource:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file; give the path of Sematic's db.sqlite3")
        self.path = path
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=30)
            found = {str(r[0]) for r in self._db.execute(_SQLITE_TABLES)}
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot read it as SQLite: {exc}") from None
        _check_tables(found, str(path))

    def _one(self, sql: str, params: dict[str, Any] | None = None) -> int:
        return int(self._db.execute(sql, params or {}).fetchone()[0])

    def count_runs(self) -> int:
        return self._one(_SQLITE_COUNT_RUNS)

    def count_points(self, until: float) -> tuple[int, int]:
        """(points before ``until``, all points)."""
        return self._one(_SQLITE_COUNT_POINTS, {"until": _sqlite_time(until)}), self._one(_SQLITE_COUNT_ALL)

    def runs(self, page: int) -> Iterator[list[dict[str, Any]]]:
        after = ""
        while True:
            rows = self._db.execute(_SQLITE_RUNS, {"after": after, "limit": page}).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]

    def points(self, page: int, until: float) -> Iterator[list[PointRow]]:
        params: dict[str, Any] = {"after_time": "", "after_rowid": -(2**63), "until": _sqlite_time(until)}
        params["limit"] = page
        while True:
            rows = self._db.execute(_SQLITE_POINTS, params).fetchall()
            if not rows:
                return
            params["after_rowid"] = rows[-1][0]
            params["after_time"] = rows[-1][1]
            try:  # Sematic's own text, 'YYYY-MM-DD HH:MM:SS.ffffff': the fast path
                yield [((_iso(t) - _EPOCH).total_seconds(), float(v), m) for _, t, v, m in rows]
            except (TypeError, ValueError):
                yield [(_epoch(t), float(v), m) for _, t, v, m in rows]

    def metrics(self, ids: list[str]) -> dict[str, Metric]:
        rows = self._db.execute(_SQLITE_METRICS, {"ids": json.dumps(ids)}).fetchall()
        return {str(i): Metric(name, _labels_text(labels), mtype) for i, name, labels, mtype in rows}

    def close(self) -> None:
        self._db.close()


def _sqlite_time(seconds: float) -> str:
    # Sematic writes SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff', which sort as text.
    return naive_utc(seconds).isoformat(sep=" ")


class PostgresSource:
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "reading Sematic's PostgreSQL database needs psycopg 3: "
                "pip install 'sematic-metrics[sematic]'"
            ) from None
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(url, autocommit=False)
            self._db.read_only = True
            # One snapshot for the counts and every scan of this import.
            self._db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with self._db.cursor() as cur:
                cur.execute(_PG_TABLES)
                found = {str(r[0]) for r in cur.fetchall()}
        except psycopg.Error as exc:
            raise ConfigError(f"{_redact(url)}: cannot read the database: {exc}".strip()) from None
        _check_tables(found, _redact(url))

    def _one(self, sql: str, params: dict[str, Any] | None = None) -> int:
        with self._db.cursor() as cur:
            cur.execute(sql, params or {})
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def count_runs(self) -> int:
        return self._one(_PG_COUNT_RUNS)

    def count_points(self, until: float) -> tuple[int, int]:
        return self._one(_PG_COUNT_POINTS, {"until": naive_utc(until)}), self._one(_PG_COUNT_ALL)

    def _scan(self, name: str, sql: str, params: dict[str, Any], page: int) -> Iterator[list[Any]]:
        with self._db.cursor(name=name) as cur:
            cur.itersize = page
            cur.execute(sql, params)
            while rows := cur.fetchmany(page):
                yield rows

    def runs(self, page: int) -> Iterator[list[dict[str, Any]]]:
        for rows in self._scan("sematic_metrics_runs", _PG_RUNS, {}, page):
            yield [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]

    def points(self, page: int, until: float) -> Iterator[list[PointRow]]:
        params = {"until": naive_utc(until)}
        for rows in self._scan("sematic_metrics_points", _PG_POINTS, params, page):
            yield [(_epoch(t), float(v), m) for t, v, m in rows]

    def metrics(self, ids: list[str]) -> dict[str, Metric]:
        with self._db.cursor() as cur:
            cur.execute(_PG_METRICS, {"ids": ids})
            rows = cur.fetchall()
        return {str(i): Metric(name, _labels_text(labels), mtype) for i, name, labels, mtype in rows}

    def close(self) -> None:
        self._db.rollback()
        self._db.close()
