"""``sematic-metrics import-sematic`` on databases written by a real Sematic 0.41
server (SQLite) and loaded into a real PostgreSQL by Sematic's own migrations."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import math
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sematic_metrics.service._import_sinks import Answer, DirectSink, HttpSink, Request, Sink
from sematic_metrics.service._sematic_db import open_source
from sematic_metrics.service.config import Settings
from sematic_metrics.service.importer import Progress, Summary, import_sematic
from sematic_metrics.service.store import Store
from tests._sematic import SEMATIC_PYTHON, SEMATIC_VENV, SematicServer, run_pipeline, sematic_problem
from tests._support import LiveServer, free_port

NAMES = ("imp.loss", "imp.examples", "imp.accuracy")
GROUP_BYS = ("", "run_id", "root_id", "function_path", "root_function_path")

PIPELINE = """
import json
import sematic
from sematic.ee.metrics import MetricScope, log_metric
from sematic.metrics.metric_point import MetricType


@sematic.func
def step(x: int) -> int:
    for i in range(4):
        log_metric("imp.loss", 1.0 / (x + i + 1))
    log_metric("imp.examples", 8.0, metric_type=MetricType.COUNT)
    return x + 1


@sematic.func
def evaluate(x: int) -> int:
    log_metric("imp.accuracy", 1.0 - 1.0 / (x + 2), scope=MetricScope.PIPELINE)
    return x


@sematic.func
def explode(x: int) -> int:
    log_metric("imp.loss", 9.0)
    raise ValueError("explodes on purpose")


@sematic.func
def train(n: int) -> int:
    log_metric("imp.loss", 0.5 + n)
    return evaluate(step(step(n)))


@sematic.func
def train_and_fail(n: int) -> int:
    return explode(step(n))


@sematic.func
def outer(n: int) -> int:
    return train(n)


roots = {"train": [], "failing": [], "outer": []}
for n in (1, 2):
    future = train(n)
    sematic.LocalRunner().run(future)
    roots["train"].append(future.id)
future = train_and_fail(1)
try:
    sematic.LocalRunner().run(future)
except Exception as exc:
    roots["failed_with"] = type(exc).__name__
roots["failing"].append(future.id)
future = outer(3)
sematic.LocalRunner().run(future)
roots["outer"].append(future.id)
print(json.dumps(roots))
"""

# Loads Sematic's SQLite database into PostgreSQL: Sematic's own migrations
# create the schema (DATABASE_URL points them there), then SQLAlchemy copies
# the rows of the three tables the importer reads.
COPY_TO_POSTGRES = """
import json, os, sys
from datetime import datetime
from sematic.config.config import switch_env
switch_env("local")
from sematic.db.migrate import migrate_up
migrate_up()
import sqlalchemy as sa

src = sa.create_engine("sqlite:///" + sys.argv[1])
dst = sa.create_engine(os.environ["DATABASE_URL"])
meta = sa.MetaData()
meta.reflect(dst, only=["runs", "metric_labels", "metric_values"])
copied = {}
with src.connect() as s, dst.begin() as d:
    for name in ("runs", "metric_labels", "metric_values"):
        table = meta.tables[name]
        rows = []
        for row in s.execute(sa.text("SELECT * FROM " + name)).mappings():
            out = {}
            for column in table.columns:
                value = row.get(column.name)
                if isinstance(value, str) and isinstance(column.type, sa.DateTime):
                    value = datetime.fromisoformat(value)
                elif isinstance(value, str) and isinstance(column.type, sa.JSON):
                    value = json.loads(value)
                out[column.name] = value
            rows.append(out)
        rows.sort(key=lambda r: name == "runs" and r["id"] != r["root_id"])  # roots first (FK)
        if rows:
            d.execute(table.insert(), rows)
        copied[name] = len(rows)
print(json.dumps(copied))
"""


@dataclass
class World:
    server: SematicServer
    roots: dict[str, Any]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.server.db_path}"

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.server.db_path}?mode=ro", uri=True)) as db:
            return db.execute(sql).fetchall()

    def root_ids(self) -> list[str]:
        return [*self.roots["train"], *self.roots["failing"], *self.roots["outer"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real Sematic 0.41 server on SQLite, after a pipeline run by its LocalRunner."""
    problem = sematic_problem()
    if problem is not None:
        pytest.skip(problem)
    server = SematicServer(tmp_path_factory.mktemp("sematic-import")).start()
    try:
        roots = run_pipeline(PIPELINE, server.url, server.workdir / "pipeline")
        assert roots["failed_with"] == "PipelineRunError"
        yield World(server, roots)
    finally:
        server.stop()


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """Debian's PostgreSQL in a temporary directory (run as user postgres when
    the tests run as root: initdb refuses root)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); apt-get install postgresql"
        )
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sematic-metrics-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no postgres user to run initdb as")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c TimeZone=UTC"
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*ctl, "-o", options, "-l", str(root / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def world_in_postgres(world: World, postgres_url: str) -> str:
    done = subprocess.run(
        [str(SEMATIC_PYTHON), "-c", COPY_TO_POSTGRES, str(world.server.db_path)],
        # Sematic 0.41 ships psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for postgresql://.
        env={
            **world.server.env,
            "DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+psycopg2://"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    copied = json.loads(done.stdout.strip().splitlines()[-1])
    assert copied["metric_values"] == world.rows("SELECT count(*) FROM metric_values")[0][0] > 0
    return postgres_url


# -- helpers --------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    return subprocess.run(
        [sys.executable, "-m", "sematic_metrics.cli", "import-sematic", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def stored_points(store: Store) -> list[tuple[Any, ...]]:
    rows = store.query(
        "SELECT name, toString(metric_type), toUnixTimestamp64Micro(metric_time), value, run_id, root_id, "
        "function_path, root_function_path, scope, user_id, mapSort(labels) FROM metric_points"
    )
    return sorted((*r[:3], repr(r[3]), *r[4:-1], sorted(r[-1].items())) for r in rows)


def stored_runs(store: Store) -> list[tuple[Any, ...]]:
    rows = store.query(
        "SELECT id, root_id, parent_id, function_path, name, toString(future_state), original_run_id, "
        "toUnixTimestamp64Micro(created_at), toUnixTimestamp64Micro(started_at), "
        "toUnixTimestamp64Micro(resolved_at), toUnixTimestamp64Micro(failed_at), "
        "toUnixTimestamp64Micro(ended_at) FROM runs_latest"
    )
    return sorted(rows)


def micros(text: str | None) -> int | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return (moment - datetime(1970, 1, 1)) // (datetime(1970, 1, 1, 0, 0, 0, 1) - datetime(1970, 1, 1))


def sematic_points(world: World) -> list[tuple[Any, ...]]:
    """Sematic's own rows, in the shape of stored_points (the truth to copy)."""
    out = []
    for name, mtype, labels_json, when, value in world.rows(
        "SELECT l.metric_name, l.metric_type, l.metric_labels, v.metric_time, v.value "
        "FROM metric_values AS v JOIN metric_labels AS l USING (metric_id) "
        "WHERE l.metric_name NOT LIKE 'sematic.%'"
    ):
        labels = json.loads(labels_json)
        known = [labels.pop(k, None) or "" for k in ("run_id", "root_id", "function_path")]
        known += [labels.pop(k, None) or "" for k in ("root_function_path", "__scope__", "user_id")]
        rest = sorted((k, v) for k, v in labels.items() if v is not None)
        out.append((name, ("COUNT", "GAUGE")[mtype], micros(when), repr(float(value)), *known, rest))
    return sorted(out)


def series(answer: dict[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    content = answer["content"]
    return sorted((tuple(labels), pytest.approx(value, rel=1e-12)) for value, labels in content["series"])


def root_panel_expected(world: World, theirs: dict[str, Any], root_id: str) -> dict[str, Any]:
    """Sematic's pipeline panel, less where Sematic is wrong; each difference
    is checked against Sematic's run rows before it is corrected."""
    runs = world.rows(
        "SELECT id, root_id, function_path, future_state, started_at, resolved_at, original_run_id FROM runs"
    )
    path = next(r[2] for r in runs if r[0] == root_id)
    roots = {r[0] for r in runs if r[0] == r[1] and r[2] == path}
    # Difference 1: Sematic's count_by_state counts every run with the
    # pipeline's function_path, nested runs included (train nested in outer).
    nested = collections.Counter(r[3] for r in runs if r[2] == path and r[0] != r[1])
    counts = dict(collections.Counter(theirs["count_by_state"]) - nested)
    # Difference 2: on SQLite Sematic reads times in whole seconds
    # (strftime('%s')), so its average run times are of truncated times.
    resolved: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for _, rid, fpath, state, started, ended, original in runs:
        if rid in roots and state == "RESOLVED" and started and ended and not original:
            resolved[fpath].append((micros(started) or 0, micros(ended) or 0))
    runtimes = {}
    for fpath, value in theirs["avg_runtime_children"].items():
        if value is None:  # Difference 3: a function with no resolved run is listed as null
            assert fpath not in resolved
            continue
        truncated = [e // 1_000_000 - s // 1_000_000 for s, e in resolved[fpath]]
        assert value == pytest.approx(sum(truncated) / len(truncated)), f"Sematic's run time of {fpath}"
        exact = sum(e - s for s, e in resolved[fpath]) / len(resolved[fpath]) / 1e6
        runtimes[fpath] = pytest.approx(exact, rel=1e-9)
    return {"total_count": sum(counts.values()), "count_by_state": counts, "avg_runtime_children": runtimes}


def assert_answers_match_sematic(world: World, client: httpx.Client) -> None:
    for name in NAMES:
        params_list: list[dict[str, str]] = [{"group_by": g} for g in GROUP_BYS]
        params_list += [
            {"labels": json.dumps({"root_id": r}), "group_by": "run_id"} for r in world.root_ids()
        ]
        params_list += [
            {"labels": json.dumps({"root": flag}), "group_by": "run_id"} for flag in (True, False)
        ]
        for params in params_list:
            theirs = world.server.get(f"/api/v1/metrics/{name}", **params)
            ours = client.get(f"/api/v1/metrics/{name}", params=params)
            assert ours.status_code == 200, ours.text
            if theirs["content"]["series"]:  # Sematic names no type for an empty answer
                assert ours.json()["content"]["metric_type"] == theirs["content"]["metric_type"], params
            assert ours.json()["content"]["columns"] == theirs["content"]["columns"], (name, params)
            assert series(ours.json()) == series(theirs), (name, params)
    for root_id in world.root_ids():
        theirs = world.server.get(f"/api/v1/runs/{root_id}/metrics")["content"]
        ours = client.get(f"/api/v1/runs/{root_id}/metrics")
        assert ours.status_code == 200, ours.text
        assert ours.json()["content"] == root_panel_expected(world, theirs, root_id), root_id


# -- tests ----------------------------------------------------------------------------
def test_import_over_http_equals_sematic_answers(world: World, live: LiveServer) -> None:
    system = world.rows(
        "SELECT count(*) FROM metric_values JOIN metric_labels USING (metric_id) "
        "WHERE metric_name LIKE 'sematic.%'"
    )[0][0]
    total = world.rows("SELECT count(*) FROM metric_values")[0][0]
    n_runs = world.rows("SELECT count(*) FROM runs")[0][0]
    assert system > 0 and n_runs >= 13

    # The points are seconds old: Sematic may still write into their windows.
    first = run_cli("--db", world.db_url, "--url", live.url)
    assert first.returncode == 0, first.stderr
    assert f"runs: {n_runs} read, {n_runs} stored" in first.stdout
    assert "points: 0 read, 0 stored" in first.stdout
    assert f"left for a later run {total}:" in first.stdout
    assert live.service.store.query("SELECT count() FROM metric_points") == [(0,)]

    done = run_cli("--db", world.db_url, "--url", live.url, "--include-open")
    assert done.returncode == 0, done.stderr
    assert f"runs: {n_runs} read, 0 stored, {n_runs} already stored" in done.stdout
    assert f"points: {total} read, {total - system} stored, 0 already stored" in done.stdout
    assert f"skipped {system}: Sematic system metric (computed here from the runs)" in done.stdout
    assert "rows/s" in done.stderr  # progress, as log lines: stderr is not a terminal

    assert stored_points(live.service.store) == sematic_points(world)
    with live.client() as client:
        assert_answers_match_sematic(world, client)


def test_second_import_stores_nothing_twice(world: World, live: LiveServer) -> None:
    before = len(sematic_points(world))
    sink = HttpSink(live.url)
    try:
        with open_source_closing(world.db_url) as source:
            first = import_sematic(source, sink, include_open=True, chunk_size=5)
        with open_source_closing(world.db_url) as source:
            second = import_sematic(source, sink, include_open=True, chunk_size=5)
    finally:
        sink.close()
    assert first.points.stored == before and first.points.duplicate == 0
    assert second.points.stored == 0 and second.points.duplicate == before
    assert second.runs.stored == 0 and second.runs.duplicate == first.runs.stored > 0
    assert stored_points(live.service.store) == sematic_points(world)
    assert len(stored_runs(live.service.store)) == first.runs.stored


class InterruptAfter:
    """A real sink that is interrupted (Ctrl-C) after a number of batches of points."""

    def __init__(self, sink: Sink, batches: int) -> None:
        self.sink, self.left, self.where = sink, batches, sink.where

    def post(self, path: str, body: bytes, key: str) -> Answer:
        return self.sink.post(path, body, key)

    def post_many(self, requests: list[Request]) -> list[Answer]:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.sink.post_many(requests)

    def close(self) -> None:
        self.sink.close()


def test_interrupted_import_resumes_without_duplicates(world: World, live: LiveServer) -> None:
    expected = sematic_points(world)
    sink = HttpSink(live.url)
    try:
        with open_source_closing(world.db_url) as source:
            cut = import_sematic(source, InterruptAfter(sink, 2), include_open=True, chunk_size=2)
        assert cut.interrupted
        assert any("interrupted" in line for line in cut.lines())
        partial = len(stored_points(live.service.store))
        assert 0 < partial < len(expected)
        with open_source_closing(world.db_url) as source:
            rest = import_sematic(source, sink, include_open=True, chunk_size=2)
    finally:
        sink.close()
    assert not rest.interrupted
    assert rest.points.duplicate == partial and rest.points.stored == len(expected) - partial
    assert stored_points(live.service.store) == expected


def test_postgres_import_equals_sqlite_import(
    world: World, world_in_postgres: str, live: LiveServer, settings: Settings
) -> None:
    done = run_cli("--db", world.db_url, "--url", live.url, "--include-open")
    assert done.returncode == 0, done.stderr
    # The PostgreSQL copy goes straight into another database of the store (--direct).
    other = replace(settings, database=settings.database + "_pg")
    sink = DirectSink(other)
    try:
        for round_ in range(2):
            with open_source_closing(world_in_postgres) as source:
                assert source.kind == "postgresql"
                summary = import_sematic(source, sink, include_open=True, chunk_size=6)
            assert summary.points.read == world.rows("SELECT count(*) FROM metric_values")[0][0]
            if round_ == 0:
                assert summary.points.stored == len(sematic_points(world))
            else:  # a second run stores nothing twice
                assert summary.points.stored == 0 == summary.runs.stored
                assert summary.points.duplicate == len(sematic_points(world))
    finally:
        sink.close()
    with Store(other) as pg_store:
        try:
            assert stored_points(pg_store) == stored_points(live.service.store) == sematic_points(world)
            assert stored_runs(pg_store) == stored_runs(live.service.store)
            assert len(stored_runs(pg_store)) == world.rows("SELECT count(*) FROM runs")[0][0]
        finally:
            pg_store.command(f"DROP DATABASE IF EXISTS `{other.database}` SYNC")


def test_postgres_import_through_the_cli_answers_like_sematic(
    world: World, world_in_postgres: str, live: LiveServer
) -> None:
    done = run_cli("--db", world_in_postgres, "--url", live.url, "--include-open")
    assert done.returncode == 0, done.stderr
    assert "points:" in done.stdout and "0 skipped" in done.stdout.splitlines()[0]
    with live.client() as client:
        assert_answers_match_sematic(world, client)


@contextlib.contextmanager
def open_source_closing(url: str) -> Iterator[Any]:
    source = open_source(url)
    try:
        yield source
    finally:
        source.close()


# -- odd rows -------------------------------------------------------------------------
def sematic_schema() -> str:
    if sematic_problem() is not None:
        pytest.skip(sematic_problem() or "")
    found = sorted(SEMATIC_VENV.glob("lib/python3*/site-packages/sematic/db/schema.sql.sqlite"))
    assert found, "Sematic 0.41 ships sematic/db/schema.sql.sqlite"
    return found[0].read_text()


def _label_row(name: str, labels: Any, mtype: int) -> tuple[str, str, str, int]:
    return (f"id-{name}-{json.dumps(labels, sort_keys=True)}", name, json.dumps(labels), mtype)


def test_odd_rows_are_skipped_with_their_reasons(tmp_path: Path, live: LiveServer) -> None:
    path = tmp_path / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(sematic_schema())
        t = "2024-05-01 12:00:0{}.250000"
        a = {"run_id": "r1", "root_id": "r1", "function_path": "p.f", "root_function_path": "p.f", "x": 7}
        b = {"run_id": "r2", "root_id": "r1", "function_path": "p.g", "root_function_path": "p.f"}
        labels = [
            _label_row("good", a, 1),
            _label_row("dual", a, 1),
            _label_row("dual", b, 0),  # the same name as COUNT: the service keeps one type
            _label_row("listy", ["not", "an", "object"], 1),
            _label_row("weird_type", a, 5),
            _label_row("sematic.run_count", {"function_path": "p.f"}, 0),
        ]
        db.executemany(
            "INSERT INTO metric_labels (metric_id, metric_name, metric_labels, metric_type) VALUES (?,?,?,?)",
            labels,
        )
        ids = {row[1] + str(i): row[0] for i, row in enumerate(labels)}
        values = [
            (ids["good0"], 0.5, t.format(1)),
            (ids["good0"], math.inf, t.format(3)),
            (ids["good0"], -math.inf, t.format(4)),
            (ids["dual1"], 1.0, t.format(1)),
            (ids["dual2"], 2.0, t.format(2)),
            (ids["listy3"], 1.0, t.format(1)),
            (ids["weird_type4"], 1.0, t.format(1)),
            (ids["sematic.run_count5"], 1.0, t.format(1)),
            ("no-such-metric-id", 1.0, t.format(1)),
        ]
        db.execute("PRAGMA foreign_keys = OFF")
        db.executemany(
            "INSERT INTO metric_values (metric_id, value, metric_time, created_at) VALUES (?,?,?,?)",
            [(*v, v[2]) for v in values],
        )
        run = (
            "INSERT INTO runs (id, future_state, name, function_path, created_at, updated_at, started_at, "
            "resolved_at, root_id, tags, source_code) VALUES (?,?,?,?,?,?,?,?,?,'[]','')"
        )
        db.executemany(
            run,
            [
                ("r1", "RESOLVED", "f", "p.f", t.format(0), t.format(0), t.format(1), t.format(5), "r1"),
                ("r2", "RESOLVED", "g", "p.g", t.format(1), t.format(1), t.format(2), t.format(3), "r1"),
                ("r3", "WEIRD", "h", "p.h", t.format(1), t.format(1), None, None, "r1"),
            ],
        )
        db.commit()
    sink = HttpSink(live.url)
    with open_source_closing(f"sqlite:///{path}") as source:
        summary = import_sematic(source, sink, include_open=True)
    sink.close()
    assert summary.runs.read == 3 and summary.runs.stored == 2
    assert summary.runs.skipped == {"invalid run record (unknown future_state 'WEIRD')": 1}
    assert summary.points.read == len(values)
    assert summary.points.stored == 4  # good x3, the first dual
    skipped = dict(summary.points.skipped)
    conflict = [reason for reason in skipped if reason.startswith("refused by the service (409)")]
    assert len(conflict) == 1 and "dual" in conflict[0] and skipped[conflict[0]] == 1
    assert skipped["invalid labels (metric_labels is not a JSON object)"] == 1
    assert skipped["invalid metric_type 5"] == 1
    assert skipped["Sematic system metric (computed here from the runs)"] == 1
    assert skipped["no metric_labels row for its metric_id"] == 1
    good = live.service.store.query(
        "SELECT value, labels['x'] FROM metric_points WHERE name = 'good' ORDER BY metric_time"
    )
    # Infinities are stored as sent (SQLite cannot hold NaN: it stores NULL).
    assert [repr(v) for v, _ in good] == ["0.5", "inf", "-inf"]
    assert {x for _, x in good} == {"7"}  # a number label arrives as its JSON text
    lines = "\n".join(summary.lines())
    assert "runs: 3 read, 2 stored" in lines and "skipped 1: invalid metric_type 5" in lines


# -- command line and progress ------------------------------------------------------------
@pytest.mark.parametrize(
    ("db", "message"),
    [
        pytest.param("mysql://u@h/db", "give Sematic's DATABASE_URL", id="unknown-scheme"),
        pytest.param("sqlite:////nonexistent/db.sqlite3", "no such file", id="missing-file"),
    ],
)
def test_bad_database_url_is_named(db: str, message: str) -> None:
    done = run_cli("--db", db, "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert message in done.stderr


def test_not_a_sematic_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE runs (id TEXT)")
    done = run_cli("--db", f"sqlite:///{path}", "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "no table metric_labels, metric_values: it is not a Sematic 0.41 database" in done.stderr


def test_unreachable_service_is_named(world: World) -> None:
    port = free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}", retry_for=0.5)
    with open_source_closing(world.db_url) as source, pytest.raises(Exception, match="did not take a batch"):
        import_sematic(source, sink, include_open=True)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_line_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress(out, every_s=0)
    progress.begin("points", 1000)
    progress.add(250)
    progress.end()
    text = out.getvalue()
    assert text.startswith("\r\x1b[2Kpoints: 250/1,000 rows, ")
    assert "rows/s, ETA 0:" in text and text.endswith("\n")


def test_progress_logs_lines_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    with caplog.at_level(logging.INFO, logger="sematic_metrics.service.importer"):
        progress = Progress(out, every_s=0)
        progress.begin("runs", 10)
        progress.add(4)
        progress.end()
    assert out.getvalue() == ""
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["runs: 4/10 rows", "runs: 4/10 rows"]


def test_summary_names_what_was_left_for_later() -> None:
    summary = Summary(open_from=time.mktime((2024, 5, 1, 12, 0, 0, 0, 0, 0)) - time.timezone)
    summary.points.read, summary.points.deferred = 3, 4
    text = "\n".join(summary.lines())
    assert "left for a later run 4: points from 2024-05-01 12:00:00 UTC on" in text
