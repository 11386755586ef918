"""The command line: sql through the running server, migrate, serve, demo."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sematic_metrics.cli import main
from sematic_metrics.errors import StoreError
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import plan
from sematic_metrics.service.sqlfiles import split_statements
from sematic_metrics.service.store import Store
from tests._support import T0, LiveServer, ServerProcess, compact, free_port, run_labels

CLI = [sys.executable, "-m", "sematic_metrics.cli"]
NAMES_SQL = "SELECT name, points FROM metric_names ORDER BY name"
ENV_KEYS = ("DATA_DIR", "CLICKHOUSE_URL", "DATABASE", "CLICKHOUSE_CLUSTER", "URL", "API_KEY", "API_KEYS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(f"SEMATIC_METRICS_{key}", raising=False)


def fill(client: httpx.Client) -> None:
    body = compact(
        run_labels("r1"), ["loss", "loss", "steps"], [0.5, 0.25, 2.0], [T0, T0 + 1, T0 + 2], [1, 1, 0]
    )
    assert client.post("/api/v1/metrics", json=body).status_code == 200


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def store_env(settings: Settings) -> dict[str, str]:
    if settings.embedded:
        return {
            "SEMATIC_METRICS_DATA_DIR": str(settings.data_dir),
            "SEMATIC_METRICS_DATABASE": settings.database,
        }
    return {
        "SEMATIC_METRICS_CLICKHOUSE_URL": settings.clickhouse_url,
        "SEMATIC_METRICS_DATABASE": settings.database,
    }


def test_sql_goes_through_the_server_and_never_opens_the_data_dir(
    live: LiveServer, client: httpx.Client
) -> None:
    fill(client)
    # The data directory is held by this process (the server under test):
    # opening it from the command would fail with a lock error.
    env = {**os.environ, **store_env(live.settings), "SEMATIC_METRICS_URL": live.url}
    done = subprocess.run(
        [*CLI, "sql", NAMES_SQL, "--format", "csv"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['"name","points"', '"loss",2', '"steps",1']


@pytest.mark.parametrize("fmt", ["table", "json", "csv"], ids=["table", "json", "csv"])
def test_sql_text_formats(
    live: LiveServer, client: httpx.Client, capsysbinary: pytest.CaptureFixture[bytes], fmt: str
) -> None:
    fill(client)
    code, out, err = run(capsysbinary, "sql", NAMES_SQL, "--url", live.url, "--format", fmt)
    assert code == 0, err
    text = out.decode()
    if fmt == "json":
        assert json.loads(text)["data"] == [{"name": "loss", "points": 2}, {"name": "steps", "points": 1}]
    elif fmt == "csv":
        assert text.splitlines()[1:] == ['"loss",2', '"steps",1']
    else:
        rows = [line.split("│")[1:3] for line in text.splitlines()[1:-1]]
        assert [[cell.strip() for cell in row] for row in rows] == [["loss", "2"], ["steps", "1"]]


@pytest.mark.parametrize("fmt", ["arrow", "parquet"], ids=["arrow", "parquet"])
def test_sql_binary_formats_to_a_file(
    live: LiveServer,
    client: httpx.Client,
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
    fmt: str,
) -> None:
    fill(client)
    target = tmp_path / f"names.{fmt}"
    code, out, err = run(
        capsysbinary, "sql", NAMES_SQL, "--url", live.url, "--format", fmt, "-o", str(target)
    )
    assert code == 0, err
    assert out == b""
    table = pa.ipc.open_file(str(target)).read_all() if fmt == "arrow" else pq.read_table(target)
    assert table.to_pylist() == [{"name": "loss", "points": 2}, {"name": "steps", "points": 1}]


def test_sql_reads_stdin_and_the_url_from_the_environment(
    live: LiveServer,
    client: httpx.Client,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(client)
    monkeypatch.setenv("SEMATIC_METRICS_URL", live.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT count() AS n FROM metric_points"))
    code, out, err = run(capsysbinary, "sql", "-", "--format", "csv")
    assert code == 0, err
    assert out.decode().splitlines() == ['"n"', "3"]


def test_sql_api_key(
    keyed_live: LiveServer, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    query = ("sql", "SELECT 1 AS one", "--url", keyed_live.url, "--format", "csv")
    code, _, err = run(capsysbinary, *query)
    assert code == 2
    assert "401" in err and "API key" in err
    code, out, err = run(capsysbinary, *query, "--api-key", "reader-secret-key")
    assert (code, out) == (0, b'"one"\n1\n'), err
    monkeypatch.setenv("SEMATIC_METRICS_API_KEY", "reader-secret-key")
    assert run(capsysbinary, *query)[0] == 0


def test_sql_write_is_refused(live: LiveServer, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, err = run(capsysbinary, "sql", "DROP TABLE metric_points", "--url", live.url)
    assert code == 2
    assert out == b""
    assert "403" in err and "read-only" in err
    assert live.service.store.query("EXISTS TABLE metric_points") == [(1,)]


def test_sql_unreachable_server(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsysbinary, "sql", "SELECT 1", "--url", url)
    assert code == 2
    assert f"cannot reach the server at {url}" in err


@pytest.mark.backends
def test_migrate_print_cluster_statements_parse(
    store: Store, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run(capsysbinary, "migrate", "--print", "--cluster", "prod")
    assert code == 0, err
    statements = split_statements(out.decode())
    settings = Settings.from_env({"SEMATIC_METRICS_CLICKHOUSE_CLUSTER": "prod"})
    assert statements == [s for _, s in plan(settings)]
    # Every DDL statement runs on the whole cluster; INSERTs (data copies in the
    # tables files) go through the Distributed tables instead.
    assert all("ON CLUSTER prod" in s for s in statements if not s.startswith(("USE ", "INSERT ")))
    for statement in statements:
        try:
            store.command(f"EXPLAIN AST {statement}")
        except StoreError as exc:
            pytest.fail(f"does not parse: {statement.splitlines()[0]}: {exc}")


@pytest.mark.usefixtures("own_engine")
def test_migrate_print_follows_the_environment(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # --print reads the database it would change: give it its own.
    monkeypatch.setenv("SEMATIC_METRICS_DATA_DIR", str(tmp_path))
    code, out, _ = run(capsysbinary, "migrate", "--print")
    assert code == 0
    assert b"ON CLUSTER" not in out
    assert b"CREATE TABLE IF NOT EXISTS metric_points\n" in out
    monkeypatch.setenv("SEMATIC_METRICS_CLICKHOUSE_CLUSTER", "from_env")
    assert b"ON CLUSTER from_env" in run(capsysbinary, "migrate", "--print")[1]
    code, _, err = run(capsysbinary, "migrate", "--print", "--cluster", "bad name")
    assert code == 2
    assert "not a plain identifier" in err


@pytest.mark.backends
def test_migrate_applies_then_reports_up_to_date(
    settings: Settings, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in store_env(settings).items():
        monkeypatch.setenv(key, value)
    try:
        code, out, err = run(capsysbinary, "migrate")
        assert code == 0, err
        assert out.decode().splitlines()[0] == "001_metric_points.sql"
        assert run(capsysbinary, "migrate")[1] == b"schema is up to date\n"
    finally:
        with Store(settings) as store:
            store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


@pytest.mark.parametrize(
    ("workers", "message"),
    [("2", "needs a ClickHouse server"), ("0", "at least one worker")],
    ids=["several-embedded", "zero"],
)
def test_serve_refuses_bad_worker_counts(
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workers: str,
    message: str,
) -> None:
    monkeypatch.setenv("SEMATIC_METRICS_DATA_DIR", str(tmp_path / "data"))
    code, _, err = run(capsysbinary, "serve", "--workers", workers, "--port", str(free_port()))
    assert code == 2
    assert message in err
    assert not (tmp_path / "data").exists()


@pytest.mark.server
def test_serve_with_workers_on_a_server(clickhouse_url: str, tmp_path: Path) -> None:
    database = f"t_workers_{uuid.uuid4().hex[:12]}"
    env = {"SEMATIC_METRICS_CLICKHOUSE_URL": clickhouse_url, "SEMATIC_METRICS_DATABASE": database}
    server = ServerProcess(tmp_path / "data", env=env, args=["--workers", "2"])
    try:
        with server, httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(8):  # spread over both workers
                body = compact(run_labels("r1"), ["m"], [1.0], [T0 + i], [0])
                assert c.post("/api/v1/metrics", json=body).status_code == 200
            series = c.get("/api/v1/metrics/m", params={"to_time": T0 + 100}).json()["content"]["series"]
            assert series == [[8.0, []]]
            assert server.stop() in (0, -signal.SIGTERM)
    finally:
        with Store(Settings(clickhouse_url=clickhouse_url, database=database)) as store:
            store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def test_demo_forwards_its_arguments(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    fake = types.ModuleType("sematic_metrics.service.demo")

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        return 5

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sematic_metrics.service.demo", fake)
    assert run(capsysbinary, "demo", "--minutes", "3", "--help")[0] == 5
    assert calls == [["--minutes", "3", "--help"]]


def test_demo_missing_is_a_clear_error(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sematic_metrics.service.demo", None)
    code, _, err = run(capsysbinary, "demo")
    assert code == 2
    assert "sematic_metrics.service.demo is missing" in err
