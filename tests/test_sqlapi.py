"""The read-only SQL endpoint, over HTTP against the real engine."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sematic_metrics.errors import ForbiddenError, InvalidInputError, StoreError
from sematic_metrics.service.config import ApiKey, Settings
from sematic_metrics.service.sqlapi import check_read_only, code_of
from sematic_metrics.service.sqlfiles import split_statements
from sematic_metrics.service.store import Store
from tests._support import T0, LiveServer, compact, run_labels

NAMES_SQL = "SELECT name, metric_type, points FROM metric_names ORDER BY name"


def fill(client: httpx.Client) -> None:
    body = compact(
        run_labels("r1"), ["loss", "loss", "steps"], [0.5, 0.25, 2.0], [T0, T0 + 1, T0 + 2], [1, 1, 0]
    )
    assert client.post("/api/v1/metrics", json=body).status_code == 200


def sql(client: httpx.Client, query: str, fmt: str | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"sql": query, **extra}
    if fmt is not None:
        body["format"] = fmt
    return client.post("/api/v1/sql", json=body)


def stored(client: httpx.Client) -> list[Any]:
    response = sql(client, "SELECT name, value FROM metric_points ORDER BY metric_time")
    assert response.status_code == 200, response.text
    return [list(row.values()) for row in response.json()["data"]]


@pytest.mark.backends
def test_json_is_clickhouse_json_over_the_views(client: httpx.Client) -> None:
    fill(client)
    response = sql(client, NAMES_SQL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [column["name"] for column in body["meta"]] == ["name", "metric_type", "points"]
    assert body["data"] == [
        {"name": "loss", "metric_type": "GAUGE", "points": 2},
        {"name": "steps", "metric_type": "COUNT", "points": 1},
    ]
    assert body["rows"] == 2


@pytest.mark.backends
def test_csv_and_table(client: httpx.Client) -> None:
    fill(client)
    response = sql(client, NAMES_SQL, "csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["name", "metric_type", "points"],
        ["loss", "GAUGE", "2"],
        ["steps", "COUNT", "1"],
    ]
    table = sql(client, NAMES_SQL, "table").text
    lines = table.splitlines()
    assert "name" in lines[0] and "metric_type" in lines[0]
    assert [line.split("│")[1].strip() for line in lines[1:-1]] == ["loss", "steps"]
    assert "\x1b" not in table


@pytest.mark.parametrize("fmt", ["arrow", "parquet"], ids=["arrow", "parquet"])
@pytest.mark.backends
def test_arrow_and_parquet_load_with_pyarrow(client: httpx.Client, fmt: str) -> None:
    fill(client)
    query = "SELECT name, value, metric_time, run_id, metric_type FROM metric_points ORDER BY metric_time"
    response = sql(client, query, fmt)
    assert response.status_code == 200, response.text
    data = io.BytesIO(response.content)
    table = pa.ipc.open_file(data).read_all() if fmt == "arrow" else pq.read_table(data)
    assert table.column_names == ["name", "value", "metric_time", "run_id", "metric_type"]
    assert table.column("name").to_pylist() == ["loss", "loss", "steps"]
    assert table.column("value").to_pylist() == [0.5, 0.25, 2.0]
    assert [t.timestamp() for t in table.column("metric_time").to_pylist()] == [T0, T0 + 1, T0 + 2]
    assert pa.types.is_string(table.schema.field("run_id").type)
    # An Enum8 column comes as strings, not as numbers (Arrow) or bytes (Parquet).
    assert pa.types.is_string(table.schema.field("metric_type").type)
    assert table.column("metric_type").to_pylist() == ["GAUGE", "GAUGE", "COUNT"]


@pytest.mark.backends
def test_get_with_bound_parameters(client: httpx.Client) -> None:
    fill(client)
    params = {
        "sql": "SELECT count() AS n FROM metric_points WHERE name = {name:String}",
        "format": "csv",
        "param_name": "loss",
    }
    response = client.get("/api/v1/sql", params=params)
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == ['"n"', "2"]
    posted = sql(client, params["sql"], "csv", params={"name": "steps"})
    assert posted.text.splitlines() == ['"n"', "1"]


# (statement, status): refused by the endpoint's check (403, or 400 for two
# statements) or by the read-only client (403). The {tmp} file must not appear.
WRITES = [
    ("INSERT INTO metric_points (name, value) VALUES ('x', 1)", 403),
    ("ALTER TABLE metric_points DELETE WHERE 1", 403),
    ("ALTER TABLE metric_points MODIFY TTL toDateTime(metric_time) + INTERVAL 1 DAY", 403),
    ("DROP TABLE metric_points", 403),
    ("CREATE TABLE intruder (a Int8) ENGINE = Memory", 403),
    ("SET readonly = 0", 403),
    ("SELECT count() FROM metric_points SETTINGS readonly = 0", 403),
    ("SELECT count() FROM metric_points SETTINGS max_execution_time = 7", 403),
    ("TRUNCATE TABLE metric_points", 403),
    ("DELETE FROM metric_points WHERE 1", 403),
    ("SYSTEM FLUSH LOGS", 403),
    ("INSERT INTO system.one SELECT 0", 403),
    ("KILL QUERY WHERE 1", 403),
    ("SELECT 1; DROP TABLE metric_points", 400),
    ("SELECT * FROM metric_points INTO OUTFILE '{tmp}'", 403),
    ("SELECT $$'$$ INTO OUTFILE '{tmp}' -- '", 403),
    ("SELECT * FROM file('{tmp}', 'LineAsString')", 403),
    ("WITH 1 AS x SELECT x FROM url('http://127.0.0.1:9/', CSV, 'a Int8')", 403),
    ("  /* comment */ insert into metric_points (name) values ('x')", 403),
]


@pytest.mark.parametrize(
    ("statement", "status"),
    WRITES,
    ids=[
        "insert",
        "alter-delete",
        "alter-ttl",
        "drop",
        "create",
        "set",
        "settings-readonly",
        "settings-limit",
        "truncate",
        "delete",
        "system",
        "system-table",
        "kill",
        "two-statements",
        "outfile",
        "outfile-hidden",
        "file-function",
        "url-function",
        "commented-insert",
    ],
)
@pytest.mark.backends
def test_writes_are_refused_change_nothing_and_ingest_still_works(
    live: LiveServer, client: httpx.Client, tmp_path: Path, statement: str, status: int
) -> None:
    fill(client)
    before = stored(client)
    target = tmp_path / "out.csv"
    response = sql(client, statement.replace("{tmp}", str(target)))
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith("sql: ")
    assert not target.exists()
    assert stored(client) == before
    assert sql(client, "EXISTS TABLE intruder", "csv").text.splitlines()[-1] == "0"
    # The readonly pitfall: the shared clients must still write.
    body = compact(run_labels("r2"), ["loss"], [9.0], [T0 + 10])
    assert client.post("/api/v1/metrics", json=body).status_code == 200
    assert stored(client) == [*before, ["loss", 9.0]]
    assert live.service.store.query("SELECT getSetting('readonly')") == [(0,)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sql": "SELECT 1", "format": "xml"}, "format"),
        ({"sql": "SELECT 1 +"}, "sql"),
        ({"sql": "SELECT * FROM no_such_table"}, "sql"),
        ({"sql": "   -- nothing\n"}, "sql"),
        ({"query": "SELECT 1"}, "body"),
        ({"sql": "SELECT {x:UInt8}"}, "sql"),
    ],
    ids=["format", "syntax", "unknown-table", "empty", "unknown-field", "unbound-param"],
)
@pytest.mark.backends
def test_bad_requests_are_400_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/sql", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}: ")


def test_get_without_sql_is_400(client: httpx.Client) -> None:
    response = client.get("/api/v1/sql")
    assert response.status_code == 400
    assert "?sql=" in response.json()["error"]


def test_needs_read_or_admin_scope(settings: Settings) -> None:
    keys = (
        ApiKey("admin", "admin-key", frozenset({"admin"})),
        ApiKey("reader", "reader-key", frozenset({"read"})),
        ApiKey("writer", "writer-key", frozenset({"write"})),
    )
    with LiveServer(replace(settings, api_keys=keys)) as server, server.client() as c:
        for key, status in [("admin-key", 200), ("reader-key", 200), ("writer-key", 403), ("", 401)]:
            headers = {"X-API-KEY": key} if key else {}
            response = c.post("/api/v1/sql", json={"sql": "SELECT 1 AS one"}, headers=headers)
            assert response.status_code == status, (key, response.text)
            assert c.get("/api/v1/sql", params={"sql": "SELECT 1"}, headers=headers).status_code == status
        server.service.store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


def test_listed_in_openapi(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert {"get", "post"} <= set(document["paths"]["/api/v1/sql"])
    assert "SqlRequest" in document["components"]["schemas"]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1",
        "select 1;",
        "  WITH 1 AS x SELECT x",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SHOW TABLES",
        "DESCRIBE TABLE metric_points",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE metric_points",
        "-- comment\nSELECT 'INSERT; DROP' AS s",
        "SELECT `outfile` FROM t",
    ],
    ids=[
        "select",
        "semicolon",
        "with",
        "union",
        "show",
        "describe",
        "explain",
        "exists",
        "strings",
        "quoted",
    ],
)
def test_check_accepts_reads(statement: str) -> None:
    check_read_only(statement)


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("INSERT INTO t VALUES (1)", ForbiddenError),
        ("SELECT 1; SELECT 2", InvalidInputError),
        ("SELECT 1 /* ; */ ; INSERT INTO t VALUES (1)", InvalidInputError),
        ("SELECT 1 INTO OUTFILE 'x'", ForbiddenError),
        ("SELECT 1 # comment\nINTO OUTFILE 'x'", ForbiddenError),
        ("", InvalidInputError),
        ("SELECT 1 " + " " * 300_000, InvalidInputError),
    ],
    ids=["insert", "two", "two-after-comment", "outfile", "outfile-after-comment", "empty", "too-long"],
)
def test_check_refuses(statement: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^sql: "):
        check_read_only(statement)


def test_code_of_blanks_strings_comments_and_heredocs() -> None:
    text = "SELECT 'a;b', \"c\", `d`, $$e$$, $t$f$t$ -- g\n/* h */ 1"
    code = code_of(text)
    assert len(code) == len(text)
    assert code.split() == ["SELECT", ",", ",", ",", ",", "1"]


def analysts_sql() -> list[str]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Analysts\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.DOTALL)
    assert blocks, "the Analysts section shows the read-only user's SQL"
    return [s for block in blocks for s in split_statements(block)]


@pytest.mark.backends
def test_readme_read_only_user_statements_parse(store: Store) -> None:
    statements = analysts_sql()
    assert any(s.startswith("CREATE USER") for s in statements)
    assert any(s.startswith("GRANT SELECT ON sematic_metrics.metric_names") for s in statements)
    for statement in statements:
        store.command(f"EXPLAIN AST {statement}")


@pytest.mark.server
def test_readme_read_only_user_can_read_but_not_write(clickhouse_url: str, store: Store) -> None:
    suffix = uuid.uuid4().hex[:8]
    database = store.settings.database
    statements = [
        s.replace("sematic_metrics.", f"{database}.")
        .replace("DEFAULT DATABASE sematic_metrics", f"DEFAULT DATABASE {database}")
        .replace("sematic_reader", f"sematic_reader_{suffix}")
        .replace("analyst", f"analyst_{suffix}")
        for s in analysts_sql()
    ]
    try:
        for statement in statements:
            store.command(statement)
    except StoreError as exc:
        pytest.skip(f"the test server's user cannot manage access: {exc}")
    parts = urllib.parse.urlsplit(clickhouse_url)
    netloc = f"analyst_{suffix}:change-me@{parts.hostname}:{parts.port}"
    analyst = clickhouse_connect.get_client(dsn=urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    try:
        assert analyst.query(f"SELECT count() FROM {database}.metric_names").result_rows == [(0,)]
        with pytest.raises(DatabaseError):
            analyst.command(f"INSERT INTO {database}.metric_points (name) VALUES ('x')")
        with pytest.raises(DatabaseError):
            analyst.command(f"DROP TABLE {database}.metric_points")
    finally:
        analyst.close()
        store.command(f"DROP USER IF EXISTS analyst_{suffix}")
        store.command(f"DROP ROLE IF EXISTS sematic_reader_{suffix}")


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json"],
    ids=["none", "curl-form", "text", "json"],
)
def test_post_body_is_json_whatever_the_content_type(client: httpx.Client, content_type: str | None) -> None:
    # curl -d sends application/x-www-form-urlencoded; users copy curl lines.
    fill(client)
    query = "SELECT count() AS n FROM metric_points WHERE name = {n:String}"
    body = json.dumps({"sql": query, "params": {"n": "loss"}, "format": "csv"}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/sql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == ['"n"', "2"]


@pytest.mark.parametrize("body", [b"", b"  \n\t"], ids=["empty", "blank"])
def test_empty_body_is_named_empty(client: httpx.Client, body: bytes) -> None:
    response = client.post("/api/v1/sql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("body: empty")
    assert "truncated" not in error


@pytest.mark.parametrize(
    ("statement", "where"),
    [("SELEC 1", "SELEC"), ("FOO BAR", "FOO"), ("   sleect * FROM metric_points", "sleect")],
    ids=["select-typo", "unknown-word", "lowercase-typo"],
)
@pytest.mark.backends
def test_statement_that_does_not_parse_gets_the_engine_syntax_error(
    client: httpx.Client, statement: str, where: str
) -> None:
    response = sql(client, statement)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("sql: ")
    assert "SYNTAX_ERROR" in error and f"({where})" in error
    assert "read-only" not in error


def test_write_keywords_are_refused_without_asking_the_engine() -> None:
    asked: list[str] = []
    for statement in (
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "SET readonly = 0",
        "ALTER TABLE t DELETE WHERE 1",
    ):
        with pytest.raises(ForbiddenError, match="read-only"):
            check_read_only(statement, asked.append)
    assert asked == []
    # A word ClickHouse has no statement for goes to the parser, which never runs it;
    # if it parsed, it would still be refused.
    with pytest.raises(ForbiddenError):
        check_read_only("SELEC 1; ", asked.append)
    assert asked == ["SELEC 1"]


@pytest.mark.backends
def test_table_of_no_rows_prints_the_header_and_0_rows(client: httpx.Client) -> None:
    response = sql(client, NAMES_SQL.replace("ORDER BY", "WHERE points > 100 ORDER BY"), "table")
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == [
        "┌─name─┬─metric_type─┬─points─┐",
        "└──────┴─────────────┴────────┘",
        "(0 rows)",
    ]
    shown = sql(client, "SHOW TABLES LIKE 'no_such_%'", "table")
    assert shown.status_code == 200, shown.text
    assert shown.text == "(0 rows)\n"


def test_cli_table_of_no_rows(live: LiveServer, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from sematic_metrics import cli

    query = "SELECT name, points FROM metric_names WHERE points > 100"
    assert cli.main(["sql", query, "--url", live.url]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.splitlines() == ["┌─name─┬─points─┐", "└──────┴────────┘", "(0 rows)"]
