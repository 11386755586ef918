"""API keys with scopes: every endpoint but two needs a key, a key's scopes
bound what it may do, and points carry the key's name as user_id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sematic_metrics.service.app  # noqa: F401 - registers every module's paths in the document
from sematic_metrics.errors import ConfigError
from sematic_metrics.service.app import openapi_document
from sematic_metrics.service.auth import AuthMiddleware, scope_for
from sematic_metrics.service.config import Settings, parse_api_keys
from tests._support import LiveServer

KEYS = (
    "admin=k-admin-0001:admin,writer=k-writer-0002:write,"
    "reader=k-reader-0003:read,both=k-both-0004:read+write"
)
ADMIN, WRITER, READER, BOTH = "k-admin-0001", "k-writer-0002", "k-reader-0003", "k-both-0004"
OPEN = {("GET", "/healthz"), ("GET", "/api/v1/meta/versions")}
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def keyed(engine_dir: Path) -> Iterator[LiveServer]:
    database = f"a_{uuid.uuid4().hex[:12]}"
    config = Settings(data_dir=engine_dir, database=database, api_keys=parse_api_keys(KEYS))
    with LiveServer(config) as server:
        yield server
        server.service.store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture
def http(keyed: LiveServer) -> Iterator[httpx.Client]:
    with keyed.client() as c:
        yield c


def as_key(key: str) -> dict[str, str]:
    return {"X-API-KEY": key}


def operations() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path, methods in openapi_document()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        found.extend((method.upper(), concrete) for method in methods)
    return [*found, ("GET", "/openapi.json")]


def body(run_id: str = "r1", **labels: str) -> dict[str, Any]:
    return {
        "labels": {"run_id": run_id, "root_id": run_id, **labels},
        "points": {"name": ["loss"], "value": [0.5], "metric_type": [1], "metric_time": [T0]},
    }


def points_of(keyed: LiveServer, run_id: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = keyed.service.store.query(
        "SELECT user_id, count() FROM metric_points WHERE run_id = {r:String} GROUP BY user_id",
        {"r": run_id},
    )
    return rows


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda v: str(v))
def test_every_endpoint_rejects_a_missing_or_wrong_key(http: httpx.Client, method: str, path: str) -> None:
    wrong: list[dict[str, Any]] = [
        {},
        as_key("nope"),
        as_key(ADMIN[:-1]),  # a prefix
        as_key(ADMIN + "x"),  # an extension
        as_key(ADMIN.upper()),
        as_key("-"),
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": "Bearer"},
        {"X-API-KEY": ADMIN.encode() + b"\xff"},  # not ASCII
    ]
    for headers in wrong:
        response = http.request(method, path, headers=headers, json={} if method == "POST" else None)
        if (method, path) in OPEN:
            assert response.status_code == 200
            continue
        assert response.status_code == 401, (headers, response.text)
        assert "API key" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_open_paths_and_the_dashboard_shell_need_no_key(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/api/v1/meta/versions").json()["server"] == [0, 41, 0]
    # The HTML shell and its static files carry no data; the page asks for a key.
    for path in ("/", "/dashboard/", "/dashboard/pipelines/p.f", "/dashboard/runs/r1"):
        page = http.get(path, follow_redirects=True)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
    assert http.post("/", json={}).status_code in (401, 405)


@pytest.mark.parametrize(
    "headers",
    [as_key(ADMIN), {"Authorization": f"Bearer {ADMIN}"}, {"authorization": f"bearer  {ADMIN}"}],
    ids=["x-api-key", "bearer", "bearer-lowercase-spaces"],
)
def test_key_in_either_header(http: httpx.Client, headers: dict[str, str]) -> None:
    assert http.get("/api/v1/metrics", headers=headers).status_code == 200


def test_read_key_reads_but_cannot_write_or_delete(keyed: LiveServer, http: httpx.Client) -> None:
    assert http.post("/api/v1/metrics", json=body("seed-r"), headers=as_key(ADMIN)).status_code == 200
    reader = as_key(READER)
    assert http.get("/api/v1/metrics", headers=reader).status_code == 200
    assert http.get("/api/v1/metrics/loss", headers=reader).status_code == 200
    assert http.get("/api/v1/sql", params={"sql": "SELECT 1"}, headers=reader).status_code == 200
    assert http.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers=reader).status_code == 200
    refused = http.post("/api/v1/metrics", json=body("by-reader"), headers=reader)
    assert refused.status_code == 403
    assert "'write' scope" in refused.json()["error"]
    run = {
        "id": "by-reader",
        "root_id": "by-reader",
        "function_path": "p.f",
        "future_state": "CREATED",
        "created_at": T0,
        "updated_at": T0,
    }
    assert http.post("/api/v1/runs", json={"runs": [run]}, headers=reader).status_code == 403
    assert http.delete("/api/v1/metrics/loss", headers=reader).status_code == 403
    assert points_of(keyed, "by-reader") == []
    assert points_of(keyed, "seed-r") == [("admin", 1)]


def test_write_key_writes_but_cannot_read_or_delete(keyed: LiveServer, http: httpx.Client) -> None:
    writer = as_key(WRITER)
    assert http.post("/api/v1/metrics", json=body("by-writer"), headers=writer).status_code == 200
    run = {
        "id": "w1",
        "root_id": "w1",
        "function_path": "p.f",
        "future_state": "CREATED",
        "created_at": T0,
        "updated_at": T0,
    }
    assert http.post("/api/v1/runs", json={"runs": [run]}, headers=writer).status_code == 200
    assert http.get("/api/v1/metrics", headers=writer).status_code == 403
    assert http.get("/api/v1/sql", params={"sql": "SELECT 1"}, headers=writer).status_code == 403
    assert http.delete("/api/v1/metrics/loss", headers=writer).status_code == 403
    assert points_of(keyed, "by-writer") == [("writer", 1)]


def test_read_write_key_does_both_but_cannot_delete(http: httpx.Client) -> None:
    both = as_key(BOTH)
    assert http.post("/api/v1/metrics", json=body("by-both"), headers=both).status_code == 200
    assert http.get("/api/v1/metrics/loss", headers=both).status_code == 200
    refused = http.delete("/api/v1/metrics/loss", headers=both)
    assert refused.status_code == 403
    assert "'admin' scope" in refused.json()["error"]


def test_admin_key_does_everything(keyed: LiveServer, http: httpx.Client) -> None:
    admin = as_key(ADMIN)
    assert http.post("/api/v1/metrics", json=body("by-admin"), headers=admin).status_code == 200
    assert http.get("/api/v1/metrics", headers=admin).status_code == 200
    assert http.get("/openapi.json", headers=admin).status_code == 200
    deleted = http.delete("/api/v1/metrics/loss", params={"labels": '{"run_id": "by-admin"}'}, headers=admin)
    assert deleted.json() == {"content": {"deleted": 1}}
    assert points_of(keyed, "by-admin") == []


@pytest.mark.parametrize(
    ("key", "name"), [(ADMIN, "admin"), (WRITER, "writer"), (BOTH, "both")], ids=["admin", "writer", "both"]
)
def test_user_id_is_the_key_name_whatever_the_body_says(
    keyed: LiveServer, http: httpx.Client, key: str, name: str
) -> None:
    run_id = f"spoof-{name}"
    spoofed = body(run_id, user_id="mallory")
    assert http.post("/api/v1/metrics", json=spoofed, headers=as_key(key)).status_code == 200
    sematic = {
        "metric_points": [
            {
                "name": "loss",
                "value": 1.0,
                "metric_type": 1,
                "metric_time": T0 + 1,
                "labels": {"run_id": run_id, "user_id": "mallory"},
            }
        ]
    }
    assert http.post("/api/v1/metrics", json=sematic, headers=as_key(key)).status_code == 200
    assert points_of(keyed, run_id) == [(name, 2)]


def test_query_parameter_key_only_for_the_live_stream(http: httpx.Client) -> None:
    assert http.get("/api/v1/metrics", params={"api_key": READER}).status_code == 401
    with http.stream("GET", "/api/v1/stream", params={"run_id": "r1", "api_key": READER}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    with http.stream("GET", "/api/v1/stream", params={"run_id": "r1", "api_key": "nope"}) as stream:
        assert stream.status_code == 401
    with http.stream("GET", "/api/v1/stream", params={"run_id": "r1", "api_key": WRITER}) as stream:
        assert stream.status_code == 403


def test_identify_finds_each_key_and_nothing_else() -> None:
    keys = parse_api_keys(KEYS)
    middleware = AuthMiddleware(app=None, keys=keys)  # type: ignore[arg-type]
    for key in keys:
        assert middleware.identify(key.key) is key
    for near in ("", ADMIN[:-1], ADMIN + " ", "K-ADMIN-0001", "k-admin-0001\x00", "é" * 10_000):
        assert middleware.identify(near) is None
    # Every stored digest has one length, so timing reveals no key length.
    assert {len(digest) for digest, _ in middleware._digests} == {32}


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/metrics", "read"),
        ("HEAD", "/api/v1/metrics", "read"),
        ("GET", "/api/v1/sql", "read"),
        ("POST", "/api/v1/sql", "read"),
        ("POST", "/api/v1/metrics", "write"),
        ("POST", "/api/v1/runs", "write"),
        ("POST", "/api/v1/events/metrics/update", "write"),
        ("DELETE", "/api/v1/metrics/loss", "admin"),
        ("GET", "/api/v1/admin/anything", "admin"),
    ],
    ids=lambda v: str(v),
)
def test_scope_each_request_needs(method: str, path: str, scope: str) -> None:
    assert scope_for(method, path) == scope


def test_scopes_are_configured_like_the_keys() -> None:
    settings = Settings.from_env({"SEMATIC_METRICS_API_KEYS": KEYS + ",legacy=k-legacy"})
    scopes = {key.name: key.scopes for key in settings.api_keys}
    assert scopes == {
        "admin": {"admin"},
        "writer": {"write"},
        "reader": {"read"},
        "both": {"read", "write"},
        "legacy": {"read", "write", "admin"},
    }
    with pytest.raises(ConfigError, match="unknown scopes"):
        Settings.from_env({"SEMATIC_METRICS_API_KEYS": "x=k:read+root"})
