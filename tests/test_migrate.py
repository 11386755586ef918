"""The migration runner, retention, and the cluster form of the schema."""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from sematic_metrics.errors import ConfigError, StoreError
from sematic_metrics.service.cluster import ClusterDDL
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import applied, discover, migrate, plan
from sematic_metrics.service.store import Store

CLUSTER_ENV = "SEMATIC_METRICS_TEST_CLICKHOUSE_CLUSTER"


def parses(store: Store, statement: str) -> bool:
    """Whether the engine's parser accepts the statement (nothing is executed)."""
    try:
        store.command(f"EXPLAIN AST {statement}")
    except StoreError:
        return False
    return True


def ttl_days(store: Store) -> int | None:
    ddl = str(store.query("SHOW CREATE TABLE metric_points")[0][0])
    match = re.search(r"\bTTL .*toIntervalDay\((?:_CAST\()?(\d+)", ddl)
    return int(match.group(1)) if match else None


def test_migrate_is_idempotent_and_records_every_file(store: Store) -> None:
    files = discover()
    assert [m.version for m in files] == sorted(m.version for m in files)
    assert migrate(store) == []
    assert migrate(store) == []
    assert applied(store) == {m.version: m.checksum for m in files}
    rows = store.query("SELECT name FROM schema_migrations FINAL ORDER BY version")
    assert [name for (name,) in rows] == [m.name for m in files]


def test_migrate_runs_only_new_files_and_warns_on_changed_ones(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "001_a.sql").write_text(
        "-- a\nCREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = MergeTree ORDER BY x;\n"
    )
    (tmp_path / "notes.sql").write_text("-- name: not_a_migration\nSELECT 1;\n")
    with Store(settings) as store:
        try:
            assert migrate(store, tmp_path) == ["001_a.sql"]
            (tmp_path / "002_b.sql").write_text(
                "CREATE VIEW IF NOT EXISTS b AS SELECT x FROM a;\nINSERT INTO a VALUES (7);\n"
            )
            (tmp_path / "001_a.sql").write_text(
                "-- edited after it ran\n" + (tmp_path / "001_a.sql").read_text()
            )
            with caplog.at_level(logging.WARNING, logger="sematic_metrics.service.migrate"):
                assert migrate(store, tmp_path) == ["002_b.sql"]
            assert "001_a.sql changed after it was applied" in caplog.text
            assert store.query("SELECT x FROM b") == [(7,)]
            assert migrate(store, tmp_path) == []
            assert sorted(applied(store)) == [1, 2]
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="share a number"):
        discover(tmp_path)


def test_ttl_follows_the_configuration(store: Store) -> None:
    assert ttl_days(store) is None
    for wanted in (30, 7, None):
        with Store(replace(store.settings, ttl_days=wanted)) as other:
            migrate(other)
            assert ttl_days(other) == wanted
            before = str(other.query("SHOW CREATE TABLE metric_points")[0][0])
            migrate(other)  # unchanged configuration: no ALTER
            assert str(other.query("SHOW CREATE TABLE metric_points")[0][0]) == before


def test_plan_without_cluster_is_the_files_as_written(settings: Settings) -> None:
    statements = [statement for source, statement in plan(settings) if source.endswith(".sql")]
    assert statements == [s for m in discover() for s in m.statements()]
    assert not any("ON CLUSTER" in s for _, s in plan(settings))


def test_every_cluster_statement_parses(store: Store) -> None:
    statements = [statement for _, statement in plan(replace(store.settings, cluster="prod"))]
    assert len(statements) > len(discover())
    refused = [s.splitlines()[0] for s in statements if not parses(store, s)]
    assert refused == []
    # The check can fail: a broken statement is refused.
    assert not parses(store, "CREATE TABLE t ON CLUSTER prod (a Int8) ENGINE = Distributed(")


def test_cluster_form_shards_tables_and_keeps_views_on_distributed_names(settings: Settings) -> None:
    statements = [s for _, s in plan(replace(settings, cluster="prod"))]
    ddl = [s for s in statements if not s.startswith("USE ")]
    assert all(" ON CLUSTER prod" in s for s in ddl)
    tables = re.findall(r"^CREATE TABLE IF NOT EXISTS (\w+)_local ON CLUSTER", "\n".join(ddl), re.MULTILINE)
    assert {"metric_points", "ingest_batches", "metric_catalog", "schema_migrations"} <= set(tables)
    for table in tables:
        local = next(s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local "))
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/", local)
        assert "non_replicated_deduplication_window" not in local
        distributed = next(s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} "))
        assert f"AS {table}_local" in distributed
        assert f"Distributed('prod', '{settings.database}', '{table}_local', cityHash64(" in distributed
    ledger = next(s for s in ddl if s.startswith("CREATE TABLE IF NOT EXISTS schema_migrations_local"))
    replica = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    assert f"ReplicatedReplacingMergeTree({replica}, applied_at)" in ledger
    views = [s for s in ddl if s.startswith("CREATE VIEW")]
    assert views and not any("_local" in s for s in views)
    for mv in (s for s in ddl if s.startswith("CREATE MATERIALIZED VIEW")):
        target = re.search(r"\bTO (\w+)", mv)
        source = re.search(r"\bFROM (\w+)", mv)
        assert target and source
        assert target.group(1).endswith("_local") and source.group(1).endswith("_local")


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "ALTER TABLE t MODIFY TTL d + INTERVAL 1 DAY",
            ["ALTER TABLE t_local ON CLUSTER c MODIFY TTL d + INTERVAL 1 DAY"],
        ),
        (
            "ALTER TABLE t ADD COLUMN y Int8",
            [
                "ALTER TABLE t_local ON CLUSTER c ADD COLUMN y Int8",
                "ALTER TABLE t ON CLUSTER c ADD COLUMN y Int8",
            ],
        ),
        ("DELETE FROM t WHERE x = 1", ["DELETE FROM t_local ON CLUSTER c WHERE x = 1"]),
        ("TRUNCATE TABLE IF EXISTS t", ["TRUNCATE TABLE IF EXISTS t_local ON CLUSTER c"]),
        ("OPTIMIZE TABLE t FINAL", ["OPTIMIZE TABLE t_local ON CLUSTER c FINAL"]),
        (
            "DROP TABLE IF EXISTS t SYNC",
            ["DROP TABLE IF EXISTS t ON CLUSTER c SYNC", "DROP TABLE IF EXISTS t_local ON CLUSTER c SYNC"],
        ),
        ("DROP VIEW v", ["DROP VIEW v ON CLUSTER c"]),
        ("CREATE DATABASE IF NOT EXISTS `db`", ["CREATE DATABASE IF NOT EXISTS `db` ON CLUSTER c"]),
        ("CREATE TABLE m (a Int8) ENGINE = Memory", ["CREATE TABLE m ON CLUSTER c (a Int8) ENGINE = Memory"]),
        ("INSERT INTO t (x) VALUES (1)", ["INSERT INTO t (x) VALUES (1)"]),
        ("SELECT x FROM t", ["SELECT x FROM t"]),
        ("ALTER TABLE t ON CLUSTER other DELETE WHERE 1", ["ALTER TABLE t ON CLUSTER other DELETE WHERE 1"]),
        ("ALTER TABLE plain DELETE WHERE 1", ["ALTER TABLE plain ON CLUSTER c DELETE WHERE 1"]),
    ],
    ids=[
        "alter-ttl",
        "alter-column",
        "delete",
        "truncate",
        "optimize",
        "drop-table",
        "drop-view",
        "database",
        "memory-table",
        "insert",
        "select",
        "explicit-cluster",
        "unsharded",
    ],
)
def test_cluster_rewrites(statement: str, expected: list[str]) -> None:
    ddl = ClusterDDL("c", "db", {"t"})
    assert ddl.rewrite(statement) == expected


def test_cluster_sharding_key_and_computed_columns() -> None:
    ddl = ClusterDDL("c", "db")
    local, distributed = ddl.rewrite(
        "CREATE TABLE r (id String, k Bool MATERIALIZED id = '', c String COMMENT 'x, MATERIALIZED') "
        "ENGINE = ReplacingMergeTree(v) ORDER BY (k, c, id) SETTINGS non_replicated_deduplication_window = 5 "
        "COMMENT 'non_replicated_deduplication_window'"
    )
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', v)"
        in local
    )
    assert (
        "SETTINGS replicated_deduplication_window = 5 COMMENT 'non_replicated_deduplication_window'" in local
    )
    assert distributed.endswith(
        "ENGINE = Distributed('c', 'db', 'r_local', cityHash64(c, id))\n"
        "COMMENT 'non_replicated_deduplication_window'"
    )
    assert ddl.sharded == {"r"}
    assert (
        ClusterDDL("c", "db")
        .rewrite("CREATE TABLE u (a Int8) ENGINE = MergeTree ORDER BY tuple()")[1]
        .endswith("rand())")
    )


def test_cluster_refuses_what_it_cannot_shard() -> None:
    with pytest.raises(ConfigError, match="no ENGINE"):
        ClusterDDL("c", "db").rewrite("CREATE TABLE t AS other")
    with pytest.raises(ConfigError, match="give it a TO table"):
        ClusterDDL("c", "db", {"t"}).rewrite(
            "CREATE MATERIALIZED VIEW mv ENGINE = SummingMergeTree ORDER BY k "
            "AS SELECT k, count() AS n FROM t GROUP BY k"
        )


def test_cluster_migration_on_a_real_cluster(clickhouse_url: str) -> None:
    cluster = os.environ.get(CLUSTER_ENV, "").strip()
    if not cluster:
        pytest.skip(f"cluster migration: set {CLUSTER_ENV} to a cluster of the test server")
    database = f"t_{uuid.uuid4().hex[:12]}"
    with Store(Settings(clickhouse_url=clickhouse_url, database=database, cluster=cluster)) as store:
        try:
            migrate(store)
            assert migrate(store) == []
            engines = dict(
                store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
            )
            assert engines["metric_points"] == "Distributed"
            assert engines["metric_points_local"] == "ReplicatedMergeTree"
            assert store.query("SELECT count() FROM metric_names") == [(0,)]
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
