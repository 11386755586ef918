"""Hostile input gets a clear 4xx, never a 5xx, never a partial write, and
SQL in names, labels and parameters is stored as text and never run.

schemathesis fuzzes every operation of /openapi.json (but the endpless live
stream); SEMATIC_METRICS_SOAK=1 raises its example count."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

import sematic_metrics.service.app  # noqa: F401 - registers every module's paths in the document
from sematic_metrics.service.app import openapi_document
from sematic_metrics.service.config import Settings
from tests._support import SOAK, LiveServer, ServerProcess

T0 = 1_700_000_000
LIMIT = 32 * 1024 * 1024
TABLES = ("metric_points", "ingest_batches", "metric_catalog", "runs", "schema_migrations")
BODY_PATHS = ("/api/v1/metrics", "/api/v1/runs", "/api/v1/sql", "/api/v1/events/metrics/update")


@pytest.fixture(scope="module")
def server(engine_dir: Path) -> Iterator[LiveServer]:
    """One service for the module, seeded so reads reach real rows."""
    database = f"h_{uuid.uuid4().hex[:12]}"
    config = Settings(data_dir=engine_dir, database=database, read_pool_size=4, body_timeout_s=2.0)
    with LiveServer(config) as live, live.client() as http:
        labels: dict[str, Any] = {
            "run_id": "r1",
            "root_id": "r1",
            "function_path": "p.f",
            "root_function_path": "p.f",
        }
        seed = {"metric_points": [point("loss", 0.5, **labels), point("steps", 3, metric_type=0, **labels)]}
        assert http.post("/api/v1/metrics", json=seed).status_code == 200
        run = {
            "id": "r1",
            "root_id": "r1",
            "function_path": "p.f",
            "future_state": "RESOLVED",
            "created_at": T0,
            "updated_at": T0,
        }
        assert http.post("/api/v1/runs", json={"runs": [run]}).status_code == 200
        yield live
        live.service.store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server process for requests that still crash a handler: a traceback
    formatted by a server thread in this process can race pytest's own use of
    ast on CPython 3.11 (gh-106905) and turn a report into an INTERNALERROR."""
    with ServerProcess(tmp_path_factory.mktemp("isolated") / "data") as served:
        yield served


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def point(name: str, value: Any, t: float = T0, metric_type: int = 1, **labels: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "metric_type": metric_type, "metric_time": t, "labels": labels}


def rows(server: LiveServer, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return server.service.store.query(sql, params)


def batch_count(server: LiveServer, key: str) -> int:
    return int(
        rows(server, "SELECT count() FROM metric_points WHERE batch_id = {k:String}", {"k": key})[0][0]
    )


def assert_tables_intact(server: LiveServer) -> None:
    for table in TABLES:
        assert rows(server, "EXISTS TABLE {t:Identifier}", {"t": table}) == [(1,)], f"{table} is gone"
    assert rows(server, "SELECT count() > 0 FROM metric_points WHERE name = 'loss'") == [(1,)]


# -- schemathesis ---------------------------------------------------------------


# The document the service serves at /openapi.json (test_fuzzed_schema_is_the_served_one
# checks they agree), loaded at import so each operation is its own test.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path="/api/v1/stream")  # endless


def test_fuzzed_schema_is_the_served_one(http: httpx.Client) -> None:
    assert http.get("/openapi.json").json() == json.loads(json.dumps(openapi_document()))


@schema.parametrize()
@settings(
    max_examples=400 if SOAK else 25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not SOAK,
    database=None,
)
def test_fuzzed_requests_never_get_a_5xx_and_leave_the_tables_intact(case: Any, server: LiveServer) -> None:
    case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=60)
    assert_tables_intact(server)


# -- hand-written: bodies ----------------------------------------------------------

BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"metric_points": [{"name": "x"'),
    ("not-json", b"name=loss&value=1"),
    ("trailing-garbage", b'{"metric_points": []} DROP TABLE metric_points'),
    (
        "invalid-utf8",
        b'{"metric_points": [{"name": "\xff\xfe", "value": 1, "metric_type": 1, "metric_time": 1}]}',
    ),
    ("array", b"[]"),
    ("null", b"null"),
    ("string", b'"metric_points"'),
    ("metric-points-not-list", b'{"metric_points": "loss"}'),
    ("empty-points", b'{"metric_points": []}'),
    ("point-missing-fields", b'{"metric_points": [{}]}'),
    ("missing-value", b'{"metric_points": [{"name": "x", "metric_type": 1, "metric_time": 1}]}'),
    ("name-number", b'{"metric_points": [{"name": 7, "value": 1, "metric_type": 1, "metric_time": 1}]}'),
    ("value-text", b'{"metric_points": [{"name": "x", "value": "abc", "metric_type": 1, "metric_time": 1}]}'),
    ("value-object", b'{"metric_points": [{"name": "x", "value": {}, "metric_type": 1, "metric_time": 1}]}'),
    ("value-bool", b'{"metric_points": [{"name": "x", "value": true, "metric_type": 1, "metric_time": 1}]}'),
    (
        "type-name",
        b'{"metric_points": [{"name": "x", "value": 1, "metric_type": "GAUGE", "metric_time": 1}]}',
    ),
    ("type-2", b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 2, "metric_time": 1}]}'),
    ("type-float", b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 1.5, "metric_time": 1}]}'),
    ("time-text", b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 1, "metric_time": "now"}]}'),
    (
        "labels-list",
        b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 1, "metric_time": 1, "labels": []}]}',
    ),
    (
        "label-value-number",
        b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 1, "metric_time": 1, '
        b'"labels": {"a": 1}}]}',
    ),
    ("empty-name", b'{"metric_points": [{"name": " ", "value": 1, "metric_type": 1, "metric_time": 1}]}'),
    (
        "both-forms",
        b'{"metric_points": [], "points": {"name": [], "value": [], "metric_type": [], "metric_time": []}}',
    ),
    (
        "compact-lengths-differ",
        b'{"points": {"name": ["a", "b"], "value": [1], "metric_type": [1, 1], "metric_time": [1, 2]}}',
    ),
    ("compact-empty", b'{"points": {"name": [], "value": [], "metric_type": [], "metric_time": []}}'),
    ("compact-not-arrays", b'{"points": {"name": "a", "value": 1, "metric_type": 1, "metric_time": 1}}'),
    (
        "value-overflow",
        b'{"metric_points": [{"name": "x", "value": 1e999999, "metric_type": 1, "metric_time": 1e999}]}',
    ),
    ("nested-deep", b'{"metric_points": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("nested-deep-labels", b'{"labels": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[i for i, _ in BAD_BODIES])
def test_bad_body_is_a_4xx_naming_the_problem_and_stores_nothing(
    server: LiveServer, http: httpx.Client, body: bytes
) -> None:
    key = f"bad-{uuid.uuid4().hex}"
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    response = http.post("/api/v1/metrics", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert batch_count(server, key) == 0


BIG = b"99999999999999999999999"  # over Int64


@pytest.mark.parametrize(
    "body",
    [
        b'{"metric_points": [{"name": "x", "value": 1, "metric_type": -' + BIG + b', "metric_time": 1}]}',
        b'{"metric_points": [{"name": "x", "value": 1, "metric_type": 1, "metric_time": 1, "step": '
        + BIG
        + b"}]}",
        b'{"points": {"name": ["x"], "value": [1], "metric_type": [' + BIG + b'], "metric_time": [1]}}',
        b'{"points": {"name": ["x"], "value": [1], "metric_type": [1], "metric_time": [1], "step": ['
        + BIG
        + b"]}}",
        b'{"metric_points": [{"name": "x", "value": NaN, "metric_type": 1, "metric_time": 1, "step": '
        + BIG
        + b"}]}",
    ],
    ids=["type", "step", "compact-type", "compact-step", "step-after-nan-token"],
)
def test_integers_over_int64_are_a_4xx(isolated: ServerProcess, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    response = httpx.post(isolated.url + "/api/v1/metrics", content=body, headers=headers, timeout=60)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("path", BODY_PATHS[1:], ids=["runs", "sql", "events"])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"\xff", id="bytes"),
        pytest.param(b"[" * 100_000, id="deep"),
    ],
)
def test_bad_bodies_on_other_endpoints_are_4xx(http: httpx.Client, path: str, body: bytes) -> None:
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})
    if path.endswith("/update"):  # Sematic's notification: accepted and ignored
        assert response.status_code in (200, 400), response.text
    else:
        assert 400 <= response.status_code < 500, response.text


def test_bad_point_is_named_by_index_and_the_batch_is_all_or_nothing(
    server: LiveServer, http: httpx.Client
) -> None:
    points = [point("ok", float(i)) for i in range(5)] + [point("ok", 1.0, t=1e15)]
    key = f"partial-{uuid.uuid4().hex}"
    response = http.post("/api/v1/metrics", json={"metric_points": points}, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert "metric_points[5].metric_time" in response.json()["error"]
    assert batch_count(server, key) == 0


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"k": "v" * 8193}, "labels.k"),
        ({"k" * 257: "v"}, "labels"),
        ({f"k{i}": "v" for i in range(129)}, "labels"),
        ({"": "v"}, "labels"),
    ],
    ids=["value-8193", "key-257", "129-labels", "empty-key"],
)
def test_oversized_labels_are_rejected(
    server: LiveServer, http: httpx.Client, labels: dict[str, Any], field: str
) -> None:
    key = f"labels-{uuid.uuid4().hex}"
    response = http.post(
        "/api/v1/metrics",
        json={"metric_points": [point("m", 1.0, **labels)]},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert f"metric_points[0].{field}" in response.json()["error"]
    assert batch_count(server, key) == 0


def test_a_million_labels_are_rejected(server: LiveServer, http: httpx.Client) -> None:
    labels = {f"k{i}": "v" for i in range(1_000_000)}
    body = json.dumps(
        {"labels": labels, "points": {"name": ["m"], "value": [1], "metric_type": [1], "metric_time": [T0]}}
    )
    key = f"million-{uuid.uuid4().hex}"
    response = http.post("/api/v1/metrics", content=body, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert "1000000 labels" in response.json()["error"]
    assert batch_count(server, key) == 0


def test_huge_names_are_rejected_and_the_longest_allowed_is_stored(
    server: LiveServer, http: httpx.Client
) -> None:
    too_long = http.post("/api/v1/metrics", json={"metric_points": [point("n" * 1025, 1.0)]})
    assert too_long.status_code == 400
    assert "metric_points[0].name" in too_long.json()["error"]
    huge = http.post("/api/v1/metrics", json={"metric_points": [point("n" * 10_000_000, 1.0)]})
    assert huge.status_code == 400
    longest = "é" * 1024
    assert http.post("/api/v1/metrics", json={"metric_points": [point(longest, 1.0)]}).status_code == 200
    assert http.get(f"/api/v1/metrics/{longest}").json()["content"]["series"] == [[1.0, []]]


def test_nan_and_infinities_are_stored_as_sent_and_skipped_by_aggregates(
    server: LiveServer, http: httpx.Client
) -> None:
    name = f"diverging-{uuid.uuid4().hex[:8]}"
    # Python's json writes the bare tokens; strings and null are the other spellings.
    raw = json.dumps(
        {
            "points": {
                "name": [name] * 7,
                "value": [1.0, float("nan"), float("inf"), float("-inf"), 3.0, "NaN", None],
                "metric_type": [1] * 7,
                "metric_time": [T0 + i for i in range(7)],
            }
        }
    )
    assert http.post("/api/v1/metrics", content=raw).status_code == 200
    stored = rows(
        server,
        "SELECT countIf(isNaN(value)), countIf(value = inf), countIf(value = -inf), count() "
        "FROM metric_points WHERE name = {n:String}",
        {"n": name},
    )
    assert stored == [(3, 1, 1, 7)]
    series = http.get(f"/api/v1/metrics/{name}").json()["content"]["series"]
    assert series == [[2.0, []]], "the average skips NaN and infinities"


@pytest.mark.parametrize(
    "t",
    [-1e12, 1e12, 1e300, -2208988801.0, 10413792000.0, "NaN", "Infinity"],
    ids=["-1e12", "1e12", "1e300", "before-1900", "year-2300", "nan", "inf"],
)
def test_timestamps_outside_datetime64_are_rejected(server: LiveServer, http: httpx.Client, t: Any) -> None:
    key = f"time-{uuid.uuid4().hex}"
    value = float(t) if isinstance(t, str) else t
    body = json.dumps({"metric_points": [point("when", 1.0, t=value)]})
    response = http.post("/api/v1/metrics", content=body, headers={"Idempotency-Key": key})
    assert response.status_code == 400, response.text
    assert "metric_points[0].metric_time" in response.json()["error"]
    compact = json.dumps(
        {"points": {"name": ["when"], "value": [1], "metric_type": [1], "metric_time": [value]}}
    )
    response = http.post("/api/v1/metrics", content=compact, headers={"Idempotency-Key": key})
    assert response.status_code == 400, response.text
    assert "points.metric_time[0]" in response.json()["error"]
    assert batch_count(server, key) == 0


def test_datetime64_bounds_are_stored(server: LiveServer, http: httpx.Client) -> None:
    name = f"edges-{uuid.uuid4().hex[:8]}"
    times = [-2208988800.0, 0.0, 10413791999.0]
    body = {"points": {"name": [name] * 3, "value": [1, 2, 3], "metric_type": [1] * 3, "metric_time": times}}
    assert http.post("/api/v1/metrics", json=body).status_code == 200
    stored = rows(
        server,
        "SELECT toUnixTimestamp64Micro(metric_time) FROM metric_points WHERE name = {n:String} ORDER BY 1",
        {"n": name},
    )
    assert [r[0] / 1e6 for r in stored] == times


# -- hand-written: SQL injection -----------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE metric_points; --",
    "x' OR '1'='1",
    "\\'; DROP DATABASE default; --",
    "{name:String}",
    "{from_us:Int64}) UNION ALL SELECT * FROM system.users --",
    "`; TRUNCATE TABLE ingest_batches; --",
    '"); DROP TABLE runs; --',
    "loss\u0000; DROP TABLE metric_catalog",
    "1; SELECT sleep(3)",
]


@pytest.mark.parametrize("text", INJECTIONS, ids=[f"inj{i}" for i in range(len(INJECTIONS))])
def test_sql_in_names_and_labels_is_stored_literally(
    server: LiveServer, http: httpx.Client, text: str
) -> None:
    name = f"m {text}"
    labels: dict[str, Any] = {"run_id": text, "function_path": text, text[:200] or "k": text, "plain": text}
    key = f"inj-{uuid.uuid4().hex}"
    response = http.post(
        "/api/v1/metrics",
        json={"metric_points": [point(name, 4.0, **labels)]},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 200, response.text
    stored = rows(
        server,
        "SELECT name, run_id, function_path, labels, batch_id FROM metric_points WHERE batch_id = {k:String}",
        {"k": key},
    )
    assert stored == [(name, text, text, {text[:200] or "k": text, "plain": text}, key)]
    # Read back through the API with the same text as filter and path.
    found = http.get(
        f"/api/v1/metrics/{quote(name, safe='')}",
        params={"labels": json.dumps({"run_id": text, "plain": text})},
    )
    assert found.status_code == 200, found.text
    assert found.json()["content"]["series"] == [[4.0, []]]
    names = http.get("/api/v1/metrics", params={"labels": json.dumps({"plain": text})}).json()["content"]
    assert names == [name]
    grouped = http.get(
        f"/api/v1/metrics/{quote(name, safe='')}", params={"group_by": "run_id,function_path"}
    ).json()
    assert grouped["content"]["series"] == [[4.0, [text, text]]]
    assert_tables_intact(server)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("from_time", "0; DROP TABLE metric_points"),
        ("to_time", "1) OR 1=1 --"),
        ("group_by", "run_id; DROP TABLE metric_points"),
        ("group_by", "run_id) UNION SELECT password FROM system.users --"),
        ("rollup", "60; DROP TABLE metric_points"),
        ("rollup", "auto' OR '1'='1"),
        ("labels", '{"run_id": "r1\' OR 1=1 --"}'),
        ("labels", '{"a\') OR 1=1 --": "x"}'),
        ("labels", "{'run_id': 1}"),
    ],
    ids=[
        "from",
        "to",
        "group-by",
        "group-by-union",
        "rollup",
        "rollup-quote",
        "label-value",
        "label-key",
        "not-json",
    ],
)
def test_sql_in_query_parameters_is_never_run(
    server: LiveServer, http: httpx.Client, param: str, value: str
) -> None:
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    seed = {"metric_points": [point(victim, 1.0, run_id="r1"), point(victim, 2.0, T0 + 1, run_id="r2")]}
    assert http.post("/api/v1/metrics", json=seed).status_code == 200
    for path in (f"/api/v1/metrics/{victim}", "/api/v1/metrics"):
        response = http.get(path, params={param: value})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200 and param == "labels":
            content = response.json()["content"]
            assert content == [] or content["series"] == [], "an injected filter matched"
    if param in ("from_time", "to_time", "labels"):  # what DELETE filters on
        response = http.delete(f"/api/v1/metrics/{victim}", params={param: value})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert response.json()["content"]["deleted"] == 0, "an injected filter deleted points"
    assert metric_points(server, victim) == 2
    assert_tables_intact(server)


def metric_points(server: LiveServer, name: str) -> int:
    return int(rows(server, "SELECT count() FROM metric_points WHERE name = {n:String}", {"n": name})[0][0])


def test_deeply_nested_labels_parameter_is_a_4xx(isolated: ServerProcess) -> None:
    for depth in (100, 5_000):
        labels = "[" * depth + "]" * depth
        response = httpx.get(isolated.url + "/api/v1/metrics", params={"labels": labels}, timeout=60)
        assert 400 <= response.status_code < 500, response.text


def test_sql_injection_in_names_in_the_path(server: LiveServer, http: httpx.Client) -> None:
    for text in INJECTIONS:
        path = quote(text, safe="")
        assert http.get(f"/api/v1/metrics/{path}").status_code == 404
        assert http.delete(f"/api/v1/metrics/{path}").status_code == 404
        assert http.get(f"/api/v1/runs/{path}/metrics").status_code in (200, 404)
        assert http.get(f"/api/v1/runs/{path}/record").status_code in (200, 404)
    assert_tables_intact(server)


# -- hand-written: transport ----------------------------------------------------------


@pytest.mark.parametrize("path", BODY_PATHS, ids=["metrics", "runs", "sql", "events"])
def test_body_over_the_limit_is_413(server: LiveServer, http: httpx.Client, path: str) -> None:
    declared = http.post(path, content=b" " * (LIMIT + 1), headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert "limit" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(LIMIT // (1 << 20) + 1):
            yield b" " * (1 << 20)

    streamed = http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


# Not /api/v1/sql: it reads its body as JSON whatever the Content-Type (curl -d
# declares a form), see tests/test_sqlapi.py.
@pytest.mark.parametrize(
    "path", [p for p in BODY_PATHS if p != "/api/v1/sql"], ids=["metrics", "runs", "events"]
)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
    ids=["text", "form", "multipart", "xml"],
)
def test_unknown_content_types_are_415(http: httpx.Client, path: str, content_type: str) -> None:
    response = http.post(path, content=b'{"metric_points": []}', headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def raw_request(port: int, head: bytes, drip: bytes, every_s: float) -> bytes:
    """Send the head, then the body one byte at a time; return the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        s.settimeout(every_s)
        answer = b""
        for byte in drip:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            try:
                answer += s.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        s.settimeout(30)
        while b"\r\n\r\n" not in answer:
            more = s.recv(65536)
            if not more:
                break
            answer += more
        return answer


def test_slow_drip_body_times_out(server: LiveServer) -> None:
    body = json.dumps({"metric_points": [point("drip", 1.0)]}).encode()
    head = (
        b"POST /api/v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Idempotency-Key: drip\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    answer = raw_request(server.port, head, body, every_s=0.25)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert batch_count(server, "drip") == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/runs", b'{"runs": [{"id": "\xff", "root_id": "r", "function_path": "f"}]}'),
        ("/api/v1/sql", b'{"sql": "SELECT \'\xff\'"}'),
    ],
    ids=["runs", "sql"],
)
def test_invalid_utf8_in_strings_on_other_endpoints_is_a_4xx(
    http: httpx.Client, path: str, body: bytes
) -> None:
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
