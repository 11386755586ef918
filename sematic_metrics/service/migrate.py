"""Apply schema/NNN_*.sql in order and record what ran.

Each file runs once per database and is recorded in ``schema_migrations`` with
its checksum. With a cluster configured, the store runs every statement in its
cluster form (``_cluster.ClusterDDL``); ``plan`` shows the statements that
would run, for ``sematic-metrics migrate --print``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sematic_metrics.errors import StoreError
from sematic_metrics.service.cluster import ClusterDDL
from sematic_metrics.service.config import Settings
from sematic_metrics.service.sqlfiles import q, schema_dir, split_statements
from sematic_metrics.service.store import Store

log = logging.getLogger(__name__)
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_TTL = re.compile(r"\bTTL .*toIntervalDay\((?:_CAST\()?(\d+)")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32   COMMENT 'Number of the schema file',
    name       String   COMMENT 'File name',
    checksum   String   COMMENT 'SHA-256 of the file when applied',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
COMMENT 'Schema files applied to this database'
"""
# The retention check reads the DDL of the table holding the rows (the local
# table on a cluster), so it is bound by name.
_TABLE_DDL = """
SELECT create_table_query FROM system.tables
WHERE database = currentDatabase() AND name = {table:String}
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.text)


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or schema_dir()
    found = []
    for path in sorted(directory.iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise StoreError(f"two schema files share a number in {directory}; renumber one")
    return found


def plan(settings: Settings, directory: Path | None = None) -> list[tuple[str, str]]:
    """(source, statement) for every statement a fresh database needs, in order,
    in the cluster form when ``settings.cluster`` is set. Nothing is executed."""
    ddl = ClusterDDL(settings.cluster, settings.database) if settings.cluster else None
    sources = [("database", f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")]
    sources += [("database", f"USE `{settings.database}`"), ("ledger", _LEDGER.strip())]
    sources += [(m.name, statement) for m in discover(directory) for statement in m.statements()]
    return [(source, out) for source, sql in sources for out in (ddl.rewrite(sql) if ddl else [sql])]


def render(settings: Settings, directory: Path | None = None) -> str:
    """The plan as a script for clickhouse-client --multiquery."""
    target = f" on cluster {settings.cluster}" if settings.cluster else ""
    lines = [
        f"-- sematic-metrics schema for database {settings.database}{target}.",
        "-- Run with: clickhouse-client --multiquery < schema.sql",
        "-- Retention (SEMATIC_METRICS_TTL_DAYS) is applied by the service when it starts.",
    ]
    for source, statement in plan(settings, directory):
        lines += ["", f"-- {source}", statement + ";"]
    return "\n".join(lines) + "\n"


def applied(store: Store) -> dict[int, str]:
    rows = store.query("SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
    return {int(v): str(c) for v, c in rows}


def migrate(store: Store, directory: Path | None = None) -> list[str]:
    """Apply every schema file not yet recorded; return the names applied."""
    store.command(_LEDGER)
    done = applied(store)
    ran: list[str] = []
    for migration in discover(directory):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                log.warning("schema file %s changed after it was applied", migration.name)
            continue
        for statement in migration.statements():
            store.command(statement)
        store.command(
            "INSERT INTO schema_migrations (version, name, checksum) "
            "VALUES ({v:UInt32}, {n:String}, {c:String})",
            {"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        log.info("applied schema file %s", migration.name)
        ran.append(migration.name)
    apply_ttl(store)
    return ran


def apply_ttl(store: Store) -> None:
    """Set or remove the retention TTL only when it differs from the config."""
    rows = store.query(_TABLE_DDL, {"table": store.local_name("metric_points")})
    ddl = str(rows[0][0]) if rows else ""
    match = _TTL.search(ddl)
    current = int(match.group(1)) if match else None
    wanted = store.settings.ttl_days
    if wanted == current:
        return
    if wanted:
        store.command(q("set_ttl"), {"days": wanted})
    elif " TTL " in ddl:
        store.command(q("remove_ttl"))
