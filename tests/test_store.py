"""The store: the data-directory lock, the read-only SQL clients, the backends."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sematic_metrics.errors import ConfigError, ForbiddenError, InvalidInputError
from sematic_metrics.service.config import Settings
from sematic_metrics.service.store import SQL_POOL_SIZE, Store
from tests.conftest import CLICKHOUSE_IMAGE

ROOT = Path(__file__).resolve().parent.parent
INSERT = (
    "INSERT INTO metric_points (name, metric_type, metric_time, value) "
    "VALUES ('m', 'GAUGE', toDateTime64(1700000000, 6, 'UTC'), 1.5)"
)
# Another block: an identical INSERT would be deduplicated by the table.
INSERT_MORE = INSERT.replace("1.5)", "2.5)")


def count(store: Store) -> int:
    return int(store.query("SELECT count() FROM metric_points")[0][0])


def test_second_process_on_locked_data_dir_gets_clear_error(engine_dir: Path) -> None:
    with Store(Settings(data_dir=engine_dir, database="lock_probe")) as holder:
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from sematic_metrics.service.config import Settings
            from sematic_metrics.errors import StoreLockedError
            from sematic_metrics.service.store import Store
            try:
                Store(Settings(data_dir=Path({str(engine_dir)!r}))).open()
            except StoreLockedError as exc:
                print("StoreLockedError:", exc)
                raise SystemExit(3)
            print("opened")
            """
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        holder.command("DROP DATABASE IF EXISTS lock_probe SYNC")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("StoreLockedError:")
    assert str(engine_dir.resolve()) in done.stdout
    assert "SEMATIC_METRICS_DATA_DIR" in done.stdout


@pytest.mark.parametrize(
    "statement",
    [
        INSERT,
        "ALTER TABLE metric_points DELETE WHERE 1",
        "DROP TABLE metric_points",
        "TRUNCATE TABLE metric_points",
        "CREATE TABLE intruder (a Int8) ENGINE = Memory",
        "SELECT count() FROM metric_points SETTINGS readonly = 0",
        "INSERT INTO FUNCTION file('intruder.csv', 'CSV', 'a Int8') VALUES (1)",
        "OPTIMIZE TABLE metric_points FINAL",
        "RENAME TABLE metric_points TO stolen",
        "INSERT INTO system.one SELECT 0",
    ],
    ids=[
        "insert",
        "alter",
        "drop",
        "truncate",
        "create",
        "settings-clause",
        "file",
        "optimize",
        "rename",
        "system-table",
    ],
)
@pytest.mark.backends
def test_read_only_client_refuses_writes_and_leaves_shared_clients_writable(
    store: Store, statement: str
) -> None:
    store.command(INSERT)
    # Straight to the engine, past the endpoint's own check: the client enforces it.
    with pytest.raises(ForbiddenError, match="read-only"):
        store.sql(statement)
    assert count(store) == 1
    assert store.query("EXISTS TABLE intruder") == [(0,)]
    with contextlib.ExitStack() as held:  # every reader of the pool, made on demand
        readers = [held.enter_context(store._reader()) for _ in range(store.settings.read_pool_size)]
        assert len({id(r) for r in readers}) == store.settings.read_pool_size
        for reader in readers:
            assert reader.query("SELECT getSetting('readonly')").result_rows == [(0,)]
    store.command(INSERT_MORE)
    assert count(store) == 2
    for _ in range(SQL_POOL_SIZE):
        assert store.sql("SELECT getSetting('readonly')", fmt="TSV") == b"1\n"


@pytest.mark.backends
def test_sql_results_load_as_arrow_and_parquet(store: Store) -> None:
    store.command(INSERT)
    query = "SELECT name, value, metric_time, nan AS missing FROM metric_points"
    arrow = pa.ipc.open_file(io.BytesIO(store.sql(query, fmt="Arrow"))).read_all()
    parquet = pq.read_table(io.BytesIO(store.sql(query, fmt="Parquet")))
    for table in (arrow, parquet):
        assert table.column_names == ["name", "value", "metric_time", "missing"]
        row = table.to_pylist()[0]
        assert (row["name"], row["value"]) == ("m", 1.5)
        assert row["metric_time"].timestamp() == 1_700_000_000
        assert row["missing"] != row["missing"]  # NaN survives


@pytest.mark.backends
def test_sql_binds_parameters(store: Store) -> None:
    store.command(INSERT)
    body = store.sql("SELECT count() FROM metric_points WHERE name = {n:String}", {"n": "m"}, "TSV")
    assert body == b"1\n"


@pytest.mark.backends
def test_sql_error_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInputError, match=r"SYNTAX_ERROR|Syntax error"):
        store.sql("SELEC 1")
    with pytest.raises(InvalidInputError, match="no_such_table"):
        store.sql("SELECT * FROM no_such_table")


def test_cluster_needs_a_server(engine_dir: Path) -> None:
    with pytest.raises(ConfigError, match="needs a ClickHouse server"):
        Store(Settings(data_dir=engine_dir, cluster="prod")).open()


def test_local_name_is_the_table_without_cluster(store: Store) -> None:
    assert store.local_name("metric_points") == "metric_points"
    clustered = Store(replace(store.settings, cluster="prod", clickhouse_url="http://127.0.0.1:1"))
    assert clustered.local_name("metric_points") == "metric_points_local"
    assert clustered.local_name("metric_series") == "metric_series"


def test_compose_pins_the_tested_server_image_with_a_healthcheck() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    images = re.findall(r"image:\s*(\S+)", compose)
    assert CLICKHOUSE_IMAGE in images
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d+\.\d+\.\d+\.\d+", CLICKHOUSE_IMAGE)
    assert compose.count("healthcheck:") >= 2
    assert "condition: service_healthy" in compose


@pytest.mark.backends
def test_rows_and_columns_are_read_by_name(store: Store) -> None:
    store.command(INSERT)
    store.command(INSERT_MORE)
    query = "SELECT value, name AS metric FROM metric_points ORDER BY value"
    assert store.rows(query) == [{"value": 1.5, "metric": "m"}, {"value": 2.5, "metric": "m"}]
    columns = store.columns(query)
    assert list(columns) == ["value", "metric"]
    assert list(columns["value"]) == [1.5, 2.5]
    empty = "SELECT value, name FROM metric_points WHERE name = {n:String}"
    assert store.rows(empty, {"n": "none"}) == []
    assert list(store.columns(empty, {"n": "none"})["value"]) == []


@pytest.mark.parametrize("fmt", ["Arrow", "Parquet"], ids=["arrow", "parquet"])
@pytest.mark.backends
def test_enum_columns_come_as_strings_and_the_rest_unchanged(store: Store, fmt: str) -> None:
    store.command(INSERT)
    query = (
        "SELECT metric_type, [metric_type] AS types, "
        # An Enum whose value holds a parenthesis and a quote.
        "CAST(NULL, 'Nullable(Enum8(\\'a)\\\\\\'\\' = 1))') AS odd, "
        "value, metric_type AS `the type`, toUInt8(metric_type) AS code "
        "FROM metric_points WHERE name = {n:String} -- a comment at the end"
    )
    data = io.BytesIO(store.sql(query, {"n": "m"}, fmt=fmt))
    table = pa.ipc.open_file(data).read_all() if fmt == "Arrow" else pq.read_table(data)
    assert table.column_names == ["metric_type", "types", "odd", "value", "the type", "code"]
    assert table.to_pylist() == [
        {
            "metric_type": "GAUGE",
            "types": ["GAUGE"],
            "odd": None,
            "value": 1.5,
            "the type": "GAUGE",
            "code": 1,
        }
    ]
    for name in ("metric_type", "odd", "the type"):
        assert pa.types.is_string(table.schema.field(name).type), name
    assert pa.types.is_integer(table.schema.field("code").type)


@pytest.mark.backends
def test_check_syntax_gives_the_engine_error_and_runs_nothing(store: Store) -> None:
    with pytest.raises(InvalidInputError, match=r"Syntax error.*\(SELEC\).*SYNTAX_ERROR"):
        store.check_syntax("SELEC 1")
    store.check_syntax(INSERT)  # parses, and is not run
    assert count(store) == 0


def test_writing_holds_every_statement_of_the_store(store: Store) -> None:
    held: list[bool] = []

    def try_lock() -> None:
        # The lock is private; a non-blocking attempt from another thread is
        # the only way to see it held without waiting on a timer.
        got = store._write_lock.acquire(blocking=False)
        if got:
            store._write_lock.release()
        held.append(not got)

    with store.writing():
        other = threading.Thread(target=try_lock)
        other.start()
        other.join()
        store.command(INSERT)  # reentrant for the holder
    other = threading.Thread(target=try_lock)
    other.start()
    other.join()
    assert held == [True, False]
    assert count(store) == 1


def test_readers_are_made_on_demand_up_to_the_pool_size(store: Store) -> None:
    size = store.settings.read_pool_size
    released = threading.Event()
    with contextlib.ExitStack() as held:
        readers = [held.enter_context(store._reader()) for _ in range(size)]
        got: list[object] = []

        def one_more() -> None:
            with store._reader() as reader:  # waits for a reader to come back
                got.append(reader)
            released.set()

        waiter = threading.Thread(target=one_more)
        waiter.start()
        held.close()
        waiter.join(10)
    # The extra request got one of the pool's readers back; no new one was made.
    assert released.is_set() and got[0] in readers
    assert store._reader_count == size
    assert store.query("SELECT 1") == [(1,)]
