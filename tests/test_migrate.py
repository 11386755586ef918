"""The schema runner: tables once, definitions brought to their files at every
start, named queries, retention, and the cluster form of the schema."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from sematic_metrics import rules
from sematic_metrics.errors import ConfigError, StoreError
from sematic_metrics.service.cluster import ClusterDDL
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import (
    MATERIALIZED_VIEW,
    VIEW,
    applied,
    changes,
    definitions,
    discover,
    migrate,
    plan,
)
from sematic_metrics.service.sqlfiles import load_all_queries, q, render, schema_dir
from sematic_metrics.service.store import Store
from tests._support import T0, LiveServer, compact, run_labels

CLUSTER_ENV = "SEMATIC_METRICS_TEST_CLICKHOUSE_CLUSTER"
T0_US = 1_700_000_000 * 1_000_000


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


def as_select(store: Store, name: str) -> str:
    rows = store.query(
        "SELECT as_select FROM system.tables WHERE database = currentDatabase() AND name = {n:String}",
        {"n": name},
    )
    return str(rows[0][0]) if rows else ""


def exists(store: Store, name: str) -> bool:
    return bool(store.query("EXISTS TABLE {n:Identifier}", {"n": name})[0][0])


def insert_points(store: Store, batch_id: str, n: int, name: str = "loss", value: float = 0.5) -> None:
    """n points of one metric, stored with one batch id, as the writer would."""
    store.command(
        "INSERT INTO metric_points (name, metric_type, metric_time, value, run_id, root_id, "
        "function_path, root_function_path, scope, user_id, labels, batch_id) "
        "SELECT {name:String}, 'GAUGE', fromUnixTimestamp64Micro({t0:Int64} + toInt64(number), 'UTC'), "
        "{value:Float64}, 'r1', 'r1', 'p', 'p', '0', '', map(), {batch:String} FROM numbers({n:UInt32})",
        {"name": name, "t0": T0_US, "value": value, "batch": batch_id, "n": n},
    )


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    """A copy of schema/ to edit, passed to the runner as its directory."""
    return Path(shutil.copytree(schema_dir(), tmp_path / "schema"))


@pytest.mark.backends
# -- tables: run once --------------------------------------------------------------------
def test_migrate_is_idempotent_and_records_every_file(store: Store) -> None:
    files = discover()
    assert [m.version for m in files] == sorted(m.version for m in files)
    assert migrate(store) == []
    assert migrate(store) == []
    assert applied(store) == {m.version: m.checksum for m in files}
    rows = store.query("SELECT name FROM schema_migrations FINAL ORDER BY version")
    assert [name for (name,) in rows] == [m.name for m in files]
    recorded = store.query("SELECT name, file FROM schema_definitions FINAL WHERE NOT dropped ORDER BY name")
    assert recorded == sorted((d.name, d.file) for d in definitions())
    assert changes(store) == []


@pytest.mark.backends
def test_migrate_runs_only_new_table_files_and_warns_on_changed_ones(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "001_a.sql").write_text(
        "-- a\nCREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = MergeTree ORDER BY x;\n"
    )
    with Store(settings) as store:
        try:
            assert migrate(store, tmp_path) == ["001_a.sql"]
            (tables / "002_b.sql").write_text(
                "CREATE TABLE IF NOT EXISTS b (y Int8) ENGINE = MergeTree ORDER BY y;\n"
                "INSERT INTO a VALUES (7);\n"
            )
            (tables / "001_a.sql").write_text("-- edited after it ran\n" + (tables / "001_a.sql").read_text())
            with caplog.at_level(logging.WARNING, logger="sematic_metrics.service.migrate"):
                assert migrate(store, tmp_path) == ["002_b.sql"]
            assert "tables/001_a.sql changed after it was applied" in caplog.text
            assert store.query("SELECT x FROM a") == [(7,)]
            assert migrate(store, tmp_path) == []
            assert sorted(applied(store)) == [1, 2]
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["001_a.sql", "001_b.sql"], "share a number"),
        (["101_a.sql"], "retired"),
        (["1_a.sql"], "NNN_name.sql"),
    ],
    ids=["same-number", "retired-number", "bad-name"],
)
def test_table_files_are_checked(tmp_path: Path, files: list[str], message: str) -> None:
    (tmp_path / "tables").mkdir()
    for name in files:
        (tmp_path / "tables" / name).write_text("SELECT 1;")
    with pytest.raises(ConfigError, match=message):
        discover(tmp_path)


# -- definitions: brought to their files at every start -------------------------------------
DRIFTS = {
    "view": (
        "metric_names",
        "CREATE OR REPLACE VIEW metric_names AS SELECT name, 'drift' AS metric_type FROM metric_points",
    ),
    "parameterized-view": (
        "metric_series",
        "CREATE OR REPLACE VIEW metric_series AS SELECT name AS g_name FROM metric_points "
        "WHERE name = {name:String}",
    ),
    "materialized-view": (
        "metric_catalog_mv",
        "ALTER TABLE metric_catalog_mv MODIFY QUERY SELECT 'drift' AS name, metric_type, "
        "min(metric_time) AS first_seen, max(metric_time) AS last_seen FROM metric_points "
        "GROUP BY name, metric_type",
    ),
}


@pytest.mark.backends
@pytest.mark.parametrize("kind", list(DRIFTS), ids=list(DRIFTS))
def test_drift_made_by_hand_is_repaired_at_the_next_start(store: Store, kind: str) -> None:
    name, drift = DRIFTS[kind]
    original = as_select(store, name)
    store.command(drift)
    assert as_select(store, name) != original
    found = changes(store)
    assert [c.describe() for c in found] == [
        f"replace {'materialized view' if kind == 'materialized-view' else 'view'} {name}: "
        "the database differs from its file"
    ]
    # The service's start brings the database back to the files.
    with LiveServer(store.settings):
        pass
    assert as_select(store, name) == original
    assert changes(store) == []
    # And it behaves as its file says again.
    insert_points(store, "b1", 3)
    assert store.query("SELECT name, metric_type, points FROM metric_names") == [("loss", "GAUGE", 3)]
    assert store.query("SELECT DISTINCT name FROM metric_catalog") == [("loss",)]
    series = store.query(
        q("count_matching"), {"name": "loss", "from_us": 0, "to_us": 2 * T0_US} | _no_filter()
    )
    assert series == [(3,)]


def _no_filter() -> dict[str, object]:
    return {"filter_keys": [], "filter_values": [], "root": -1}


@pytest.mark.backends
def test_edited_added_and_removed_definition_files(store: Store, schema_copy: Path) -> None:
    store.command("CREATE VIEW my_view AS SELECT count() AS n FROM metric_points")
    assert migrate(store, schema_copy) == []
    names = schema_copy / "definitions" / "103_metric_names.sql"
    names.write_text(
        names.read_text().replace("    uniq(run_id)        AS runs", "    uniq(run_id) AS runs, 42 AS answer")
    )
    (schema_copy / "definitions" / "120_loss_points.sql").write_text(
        "-- loss_points: the points of loss.\n"
        "CREATE VIEW loss_points AS\nSELECT * FROM metric_points WHERE name = 'loss';\n"
    )
    assert [c.describe() for c in changes(store, schema_copy)] == [
        "replace view metric_names: its file changed",
        "create view loss_points: missing",
    ]
    assert migrate(store, schema_copy) == [
        "replace view metric_names: its file changed",
        "create view loss_points: missing",
    ]
    insert_points(store, "b1", 2)
    assert store.query("SELECT answer, points FROM metric_names") == [(42, 2)]
    assert store.query("SELECT count() FROM loss_points") == [(2,)]
    assert migrate(store, schema_copy) == []

    (schema_copy / "definitions" / "120_loss_points.sql").unlink()
    assert migrate(store, schema_copy) == [
        "drop view loss_points: its file definitions/120_loss_points.sql was removed"
    ]
    assert not exists(store, "loss_points")
    assert migrate(store, schema_copy) == []
    # The user's own view was never the schema's to replace or drop.
    assert exists(store, "my_view")
    assert store.query("SELECT n FROM my_view") == [(2,)]
    # A view dropped by hand whose file is gone stays gone, and nothing is reported.
    store.command("DROP VIEW metric_names")
    names.unlink()
    assert changes(store, schema_copy) == []
    assert migrate(store, schema_copy) == []
    assert not exists(store, "metric_names")


@pytest.mark.backends
def test_views_made_by_a_migrate_stopped_before_its_ledger_insert_are_owned_next_time(
    store: Store, schema_copy: Path
) -> None:
    # The ledger rows are written after the views, in one INSERT: a migrate
    # stopped in between leaves the views as their files say, unrecorded.
    store.command("TRUNCATE TABLE schema_definitions")
    assert changes(store, schema_copy) == []
    assert migrate(store, schema_copy) == []
    recorded = store.query("SELECT name, file FROM schema_definitions FINAL WHERE NOT dropped ORDER BY name")
    assert recorded == sorted((d.name, d.file) for d in definitions(schema_copy))
    # Owned again: removing a file drops its view.
    (schema_copy / "definitions" / "103_metric_names.sql").unlink()
    assert migrate(store, schema_copy) == [
        "drop view metric_names: its file definitions/103_metric_names.sql was removed"
    ]
    assert not exists(store, "metric_names")


@pytest.mark.backends
def test_replacing_a_materialized_view_loses_and_doubles_no_rows(store: Store, schema_copy: Path) -> None:
    insert_points(store, "before", 3)
    mv = schema_copy / "definitions" / "010_ingest_batches_mv.sql"
    mv.write_text(mv.read_text().replace("WHERE batch_id != ''", "WHERE notEmpty(batch_id)"))
    found = changes(store, schema_copy)
    assert [c.describe() for c in found] == ["replace materialized view ingest_batches_mv: its file changed"]
    assert found[0].statements[0].startswith("ALTER TABLE ingest_batches_mv MODIFY QUERY")
    assert migrate(store, schema_copy) == ["replace materialized view ingest_batches_mv: its file changed"]
    assert "notEmpty(batch_id)" in as_select(store, "ingest_batches_mv")
    insert_points(store, "after", 2)
    rows = store.query(
        "SELECT batch_id, max(points), count() FROM ingest_batches GROUP BY batch_id ORDER BY batch_id"
    )
    assert rows == [("after", 2, 1), ("before", 3, 1)]
    assert store.query("SELECT count() FROM metric_points") == [(5,)]


@pytest.mark.backends
def test_a_materialized_view_with_another_target_is_recreated(store: Store, schema_copy: Path) -> None:
    mv = schema_copy / "definitions" / "010_ingest_batches_mv.sql"
    (schema_copy / "tables" / "900_batches_copy.sql").write_text(
        "CREATE TABLE IF NOT EXISTS batches_copy AS ingest_batches;\n"
    )
    mv.write_text(mv.read_text().replace("TO ingest_batches AS", "TO batches_copy AS"))
    found = changes(store, schema_copy)
    assert [c.describe() for c in found][1:] == [
        "replace materialized view ingest_batches_mv: its file changed "
        "(the database has a materialized view to ingest_batches)"
    ]
    assert found[1].statements[0] == "DROP VIEW IF EXISTS ingest_batches_mv"
    migrate(store, schema_copy)
    insert_points(store, "b1", 4)
    assert store.query("SELECT batch_id, max(points) FROM batches_copy GROUP BY batch_id") == [("b1", 4)]
    assert store.query("SELECT count() FROM ingest_batches") == [(0,)]
    assert changes(store, schema_copy) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CREATE TABLE t (a Int8) ENGINE = Memory;", "is not a view"),
        ("CREATE MATERIALIZED VIEW m ENGINE = Memory AS SELECT 1 AS a;", "needs a TO table"),
        ("CREATE VIEW metric_names AS SELECT 1;", "two definitions of metric_names"),
        ("CREATE VIEW v AS SELECT {{no_such_marker}};", "no_such_marker"),
    ],
    ids=["table", "mv-without-target", "duplicate-name", "unknown-marker"],
)
def test_bad_definition_files_are_refused(schema_copy: Path, text: str, message: str) -> None:
    (schema_copy / "definitions" / "150_bad.sql").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        definitions(schema_copy)


def test_migrate_check_and_print_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    env["SEMATIC_METRICS_DATA_DIR"] = str(data)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sematic_metrics.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)

    fresh = cli("migrate", "--check")
    assert fresh.returncode == 1, fresh.stderr
    assert "apply table file tables/001_metric_points.sql: not applied yet" in fresh.stdout
    assert cli("migrate").returncode == 0
    same = cli("migrate", "--check")
    assert (same.returncode, same.stdout) == (0, "schema matches the files\n"), same.stderr
    drift = (
        "from sematic_metrics.service.config import Settings; "
        "from sematic_metrics.service.store import Store; import sys, pathlib; "
        "s = Store(Settings(data_dir=pathlib.Path(sys.argv[1]))).open(); s.command(sys.argv[2]); s.close()"
    )
    made = subprocess.run(
        [sys.executable, "-c", drift, str(data), "CREATE OR REPLACE VIEW metric_names AS SELECT 1 AS x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert made.returncode == 0, made.stderr
    differs = cli("migrate", "--check")
    assert differs.returncode == 1
    assert differs.stdout.splitlines()[0] == "replace view metric_names: the database differs from its file"
    shown = cli("migrate", "--print")
    assert shown.returncode == 0
    assert "-- replace view metric_names: the database differs from its file" in shown.stdout
    assert "CREATE OR REPLACE VIEW metric_names AS\nSELECT" in shown.stdout
    assert cli("migrate", "--check").returncode == 1  # --print changed nothing
    repaired = cli("migrate")
    assert repaired.stdout.splitlines() == ["replace view metric_names: the database differs from its file"]
    assert cli("migrate", "--check").returncode == 0


# -- named queries and markers ---------------------------------------------------------------
def test_two_queries_of_one_name_are_an_error_at_start(store: Store, schema_copy: Path) -> None:
    (schema_copy / "queries" / "extra.sql").write_text("-- name: series\nSELECT 1;\n")
    with pytest.raises(
        ConfigError, match=r"'series': in \S+/queries/extra\.sql and in \S+/queries/metrics\.sql"
    ):
        migrate(store, schema_copy)
    (schema_copy / "queries" / "extra.sql").write_text("-- name: mine\nSELECT 1;\n-- name: mine\nSELECT 2;\n")
    with pytest.raises(ConfigError, match=r"extra\.sql: two queries are named 'mine'"):
        load_all_queries(schema_copy)


def test_the_label_filter_is_one_fragment_with_the_rules_labels() -> None:
    labels = "(" + ", ".join(f"'{k}'" for k in rules.WELL_KNOWN_LABELS) + ")"
    users = [
        q("delete_matching"),
        *(d.select for d in definitions() if d.name in ("metric_series", "pipeline_points")),
    ]
    assert len(users) == 3
    for sql in users:
        assert "{{" not in sql
        assert f"k IN {labels}" in sql
        for label, column in rules.WELL_KNOWN_LABELS.items():
            value = f"{{filter_values:Array(String)}}[indexOf({{filter_keys:Array(String)}}, '{label}')]"
            assert f"OR {column} = {value}" in sql


@pytest.mark.parametrize("fragment", ["label_filter", "series_label_filter"])
def test_a_rule_without_its_condition_in_the_fragment_is_refused(
    monkeypatch: pytest.MonkeyPatch, fragment: str
) -> None:
    render("WHERE {{" + fragment + "}}")
    monkeypatch.setitem(rules.WELL_KNOWN_LABELS, "team", "team")
    with pytest.raises(ConfigError, match=f"{fragment}.sql: the well-known label 'team'"):
        render("WHERE {{" + fragment + "}}")


def test_rules_fill_the_schema() -> None:
    stats = next(d for d in definitions() if d.name == "pipeline_stats")
    assert f"from_us = {rules.MIN_TIME_US}, to_us = {rules.MAX_TIME_US}" in stats.select
    points = next(m for m in discover() if m.name == "001_metric_points.sql")
    assert "metric_type        Enum8('COUNT' = 0, 'GAUGE' = 1) COMMENT" in points.text


@pytest.mark.backends
@pytest.mark.parametrize(
    ("value", "n", "expected_avg", "expected_sum"),
    [(0.31, 1000, 0.31, 310.0), (0.1, 1000, 0.1, 100.0)],
    ids=["0.31", "0.1"],
)
def test_averages_and_sums_are_compensated(
    store: Store, value: float, n: int, expected_avg: float, expected_sum: float
) -> None:
    insert_points(store, "", n, value=value)
    params = {"name": "loss", "by_run_id": False, "by_function_path": False, "by_root_id": False}
    params |= {"by_root_function_path": False, "width_us": 0, "from_us": 0, "to_us": 2 * T0_US} | _no_filter()
    assert store.query(q("series"), {**params, "gauge": True}) == [("", "", "", "", 0, expected_avg)]
    assert store.query(q("series"), {**params, "gauge": False}) == [("", "", "", "", 0, expected_sum)]
    buckets = store.query("SELECT value FROM metric_buckets(name = 'loss', bucket_s = 86400)")
    assert buckets == [(expected_avg,)]


def test_the_api_averages_a_constant_to_that_constant(client: httpx.Client) -> None:
    labels = run_labels("r1")
    times = [T0 + i for i in range(1000)]
    body = compact(labels, ["g"] * 1000 + ["n"] * 1000, [0.31] * 2000, times + times, [1] * 1000 + [0] * 1000)
    assert client.post("/api/v1/metrics", json=body).status_code == 200
    for name, expected in (("g", 0.31), ("n", 310.0)):
        response = client.get(f"/api/v1/metrics/{name}", params={"rollup": "86400", "to_time": T0 + 2000})
        assert response.status_code == 200, response.text
        assert [value for value, _ in response.json()["content"]["series"]] == [expected]


@pytest.mark.backends
# -- retention and the cluster form ------------------------------------------------------------
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
    expected = [s for m in discover() for s in m.statements()]
    expected += [d.script_statement for d in definitions()]
    assert statements == expected
    assert not any("ON CLUSTER" in s for _, s in plan(settings))


@pytest.mark.backends
def test_every_cluster_statement_parses(store: Store) -> None:
    statements = [statement for _, statement in plan(replace(store.settings, cluster="prod"))]
    assert len(statements) > len(discover()) + len(definitions())
    refused = [s.splitlines()[0] for s in statements if not parses(store, s)]
    assert refused == []
    # The check can fail: a broken statement is refused.
    assert not parses(store, "CREATE TABLE t ON CLUSTER prod (a Int8) ENGINE = Distributed(")


def test_cluster_form_shards_tables_and_keeps_views_on_distributed_names(settings: Settings) -> None:
    statements = [s for _, s in plan(replace(settings, cluster="prod"))]
    ddl = [s for s in statements if not s.startswith(("USE ", "INSERT "))]
    assert all(" ON CLUSTER prod" in s for s in ddl)
    tables = re.findall(r"^CREATE TABLE IF NOT EXISTS (\w+)_local ON CLUSTER", "\n".join(ddl), re.MULTILINE)
    assert {
        "metric_points",
        "ingest_batches",
        "metric_catalog",
        "schema_migrations",
        "schema_definitions",
    } <= set(tables)
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
    views = [s for s in ddl if s.startswith("CREATE OR REPLACE VIEW")]
    assert len(views) == len([d for d in definitions() if d.kind == VIEW])
    assert not any("_local" in s for s in views)
    mvs = [s for s in ddl if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(mvs) == len([d for d in definitions() if d.kind == MATERIALIZED_VIEW])
    for mv in mvs:
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
        (
            "CREATE OR REPLACE VIEW v AS SELECT x FROM t",
            ["CREATE OR REPLACE VIEW v ON CLUSTER c AS SELECT x FROM t"],
        ),
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
        "replace-view",
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


def test_the_cluster_rewriter_knows_the_schema_tables() -> None:
    ddl = ClusterDDL.for_schema("c", "db")
    assert {"metric_points", "runs", "schema_migrations", "schema_definitions"} <= ddl.sharded
    assert ddl.localize_sources(
        "SELECT a FROM metric_points JOIN runs USING (x) WHERE 'FROM runs' != ''"
    ) == ("SELECT a FROM metric_points_local JOIN runs_local USING (x) WHERE 'FROM runs' != ''")


@pytest.mark.server
def test_cluster_migration_on_a_real_cluster(clickhouse_url: str) -> None:
    cluster = os.environ.get(CLUSTER_ENV, "").strip()
    if not cluster:
        pytest.skip(f"cluster migration: set {CLUSTER_ENV} to a cluster of the test server")
    database = f"t_{uuid.uuid4().hex[:12]}"
    with Store(Settings(clickhouse_url=clickhouse_url, database=database, cluster=cluster)) as store:
        try:
            migrate(store)
            assert migrate(store) == []
            assert changes(store) == []
            engines = dict(
                store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
            )
            assert engines["metric_points"] == "Distributed"
            assert engines["metric_points_local"] == "ReplicatedMergeTree"
            assert store.query("SELECT count() FROM metric_names") == [(0,)]
            store.command(f"CREATE OR REPLACE VIEW metric_names ON CLUSTER {cluster} AS SELECT 1 AS x")
            assert [c.action for c in changes(store)] == ["replace"]
            migrate(store)
            assert changes(store) == []
        finally:
            store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
