"""Sematic upstream mode: a real Sematic 0.41 server behind the service, a real
Sematic pipeline (LocalRunner) in Sematic's own virtualenv in front of it."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sematic_metrics.cli import build_parser
from sematic_metrics.errors import ConfigError
from sematic_metrics.service import upstream
from sematic_metrics.service.app import create_app
from sematic_metrics.service.config import ApiKey, Settings, parse_upstream
from tests._sematic import SematicServer, run_pipeline, sematic_server, start_pipeline  # noqa: F401
from tests._support import T0, LiveServer, ServerProcess, free_port, point, server_config, wait_until


def upstream_app(settings: Settings) -> Starlette:
    """The app in upstream mode."""
    assert settings.sematic_upstream
    return create_app(settings)


class UpstreamLive(LiveServer):
    """LiveServer whose app fronts ``upstream_url``."""

    def __init__(self, settings: Settings, upstream_url: str) -> None:
        settings = replace(settings, sematic_upstream=upstream_url)
        super().__init__(settings)
        self.app = upstream_app(settings)
        self.server = uvicorn.Server(server_config(self.app, self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UpstreamLive:
        super().__enter__()
        return self

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}{upstream.STATUS_PATH}", timeout=30).json()
        return body

    def wait_copied(self) -> dict[str, Any]:
        try:
            wait_until(lambda: self.status()["run_copies"]["backlog"] == 0, 120, "run copies stored")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; upstream status: {self.status()}") from None
        return self.status()


@pytest.fixture
def front(settings: Settings, sematic_server: SematicServer) -> Iterator[UpstreamLive]:  # noqa: F811
    with UpstreamLive(settings, sematic_server.url) as server:
        yield server


# -- the pipeline -------------------------------------------------------------------
PIPELINE = """
import json
import signal
import sematic
from sematic.ee.metrics import log_metric
from sematic.metrics.metric_point import MetricType


@sematic.func
def step_TAG(x: int) -> int:
    for i in range(3):
        log_metric("up.loss", 1.0 / (x + i + 1))
    log_metric("up.examples", 10.0, metric_type=MetricType.COUNT)
    return x + 1


@sematic.func
def explode_TAG(x: int) -> int:
    log_metric("up.loss", 9.0)
    raise ValueError("explodes on purpose")


@sematic.func
def train_TAG(n: int) -> int:
    return step_TAG(step_TAG(n))


@sematic.func
def train_and_fail_TAG(n: int) -> int:
    return explode_TAG(step_TAG(n))


@sematic.func
def outer_TAG(n: int) -> int:
    return train_TAG(n)


roots = {"train": [], "failing": [], "outer": []}
for n in (1, 2):
    future = train_TAG(n)
    sematic.LocalRunner().run(future)
    roots["train"].append([future.id, n])
future = train_and_fail_TAG(1)
try:
    sematic.LocalRunner().run(future)
except Exception as exc:
    roots["failed_with"] = type(exc).__name__
roots["failing"].append([future.id, 1])
future = outer_TAG(5)
sematic.LocalRunner().run(future)
roots["outer"].append([future.id, 5])
print(json.dumps(roots))
"""


def epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def sematic_runs(server: SematicServer, root_ids: list[str]) -> list[dict[str, Any]]:
    """Every run of these root runs, as the Sematic server has them."""
    runs: list[dict[str, Any]] = []
    for root_id in root_ids:
        runs += server.get(f"/api/v1/runs/{root_id}/graph", root=1)["runs"]
    return runs


def expected_panel(
    theirs: dict[str, Any], runs: list[dict[str, Any]], root: dict[str, Any]
) -> dict[str, Any]:
    """Sematic's pipeline panel for ``root``, less the points where Sematic is
    wrong, each checked against the run records before it is corrected."""
    path = root["function_path"]
    pipeline_roots = {r["id"] for r in runs if r["id"] == r["root_id"] and r["function_path"] == path}
    # Difference 1: Sematic's count_by_state counts every run with the
    # pipeline's function_path, nested runs included (here train_TAG nested in
    # outer_TAG); a pipeline's run count is its root runs.
    nested = collections.Counter(
        r["future_state"] for r in runs if r["function_path"] == path and r["id"] != r["root_id"]
    )
    counts = dict(collections.Counter(theirs["count_by_state"]) - nested)
    # Difference 2: on SQLite Sematic reads each time in whole seconds
    # (strftime('%s')), so its average run times are of truncated times.
    # Difference 3: it lists a function without a resolved run as null.
    in_pipeline = [r for r in runs if r["root_id"] in pipeline_roots]
    resolved: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in in_pipeline:
        if r["future_state"] == "RESOLVED" and r["resolved_at"] and r["started_at"]:
            resolved[r["function_path"]].append(r)
    runtimes = {}
    for fpath, value in theirs["avg_runtime_children"].items():
        if value is None:
            assert fpath not in resolved, f"Sematic has no run time for {fpath} but it has resolved runs"
            continue
        started = [epoch(r["started_at"]) or 0.0 for r in resolved[fpath]]
        ended = [epoch(r["resolved_at"]) or 0.0 for r in resolved[fpath]]
        truncated = [math.floor(e) - math.floor(s) for s, e in zip(started, ended, strict=True)]
        assert value == pytest.approx(sum(truncated) / len(truncated)), f"Sematic's {fpath} run time"
        runtimes[fpath] = pytest.approx(sum(e - s for s, e in zip(started, ended, strict=True)) / len(ended))
    return {"total_count": sum(counts.values()), "count_by_state": counts, "avg_runtime_children": runtimes}


def test_sematic_pipeline_through_upstream_mode(
    front: UpstreamLive,
    sematic_server: SematicServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    roots = run_pipeline(PIPELINE.replace("TAG", tag), front.url, tmp_path / "pipeline")
    assert roots["failed_with"] == "PipelineRunError"
    status = front.wait_copied()
    assert status["run_copies"]["rejected_runs"] == 0
    root_ids = [rid for kind in ("train", "failing", "outer") for rid, _ in roots[kind]]
    runs = sematic_runs(sematic_server, root_ids)
    assert len(runs) == 2 * 3 + 3 + 4
    assert status["run_copies"]["copied_runs"] >= len(runs)

    with front.client() as client:
        # Every run is copied with Sematic's final state and times.
        for run in runs:
            ours = client.get(f"/api/v1/runs/{run['id']}/record").json()["content"]
            for key in ("root_id", "parent_id", "function_path", "future_state", "original_run_id"):
                assert ours[key] == run[key], (key, run["function_path"])
            for key in ("created_at", "started_at", "resolved_at", "failed_at", "ended_at"):
                assert ours[key] == pytest.approx(epoch(run[key]), abs=1e-6), (key, run["function_path"])

        # The points logged by Sematic's log_metric are in ClickHouse.
        for root_id, n in roots["train"]:
            labels = json.dumps({"root_id": root_id})
            examples = client.get("/api/v1/metrics/up.examples", params={"labels": labels}).json()
            assert examples["content"]["series"] == [[20.0, []]]
            loss = client.get("/api/v1/metrics/up.loss", params={"labels": labels, "group_by": "run_id"})
            values = [1 / (n + i + 1) for i in range(3)] + [1 / (n + i + 2) for i in range(3)]
            per_run = sorted(v for v, _ in loss.json()["content"]["series"])
            assert len(per_run) == 2
            assert sum(per_run) / 2 == pytest.approx(sum(values) / 6)
        failing_id = roots["failing"][0][0]
        failing_loss = client.get(
            "/api/v1/metrics/up.loss",
            params={"labels": json.dumps({"function_path": f"__main__.explode_{tag}"})},
        ).json()
        assert failing_loss["content"]["series"] == [[9.0, []]]

        # The pipeline panel equals Sematic's own answer, but where Sematic is wrong.
        by_id = {r["id"]: r for r in runs}
        for root_id in root_ids:
            theirs = sematic_server.get(f"/api/v1/runs/{root_id}/metrics")["content"]
            ours = client.get(f"/api/v1/runs/{root_id}/metrics").json()["content"]
            assert ours == expected_panel(theirs, runs, by_id[root_id]), by_id[root_id]["function_path"]
        # The nested train run makes Sematic's count differ from ours here.
        train_panel = client.get(f"/api/v1/runs/{roots['train'][0][0]}/metrics").json()["content"]
        assert train_panel["count_by_state"] == {"RESOLVED": 2}
        theirs_train = sematic_server.get(f"/api/v1/runs/{roots['train'][0][0]}/metrics")["content"]
        assert theirs_train["count_by_state"] == {"RESOLVED": 3}
        failing_panel = client.get(f"/api/v1/runs/{failing_id}/metrics").json()["content"]
        assert failing_panel["count_by_state"] == {"NESTED_FAILED": 1}


# -- runs read back: future_states ------------------------------------------------------
SMALL_PIPELINE = """
import json
import signal
import sematic


@sematic.func
def add_TAG(a: int, b: int) -> int:
    return a + b


@sematic.func
def sum_TAG(n: int) -> int:
    return add_TAG(add_TAG(n, 1), 2)


future = sum_TAG(1)
sematic.LocalRunner().run(future)
print(json.dumps({"root": future.id}))
"""


def test_future_states_copies_the_runs_read_back_from_sematic(
    front: UpstreamLive,
    sematic_server: SematicServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The pipeline talks to Sematic directly: the service has not seen these runs.
    tag = uuid.uuid4().hex[:8]
    root = run_pipeline(SMALL_PIPELINE.replace("TAG", tag), sematic_server.url, tmp_path)["root"]
    runs = sematic_runs(sematic_server, [root])
    assert len(runs) == 3
    with front.client() as client:
        assert client.get(f"/api/v1/runs/{root}/record").status_code == 404
        answer = client.post("/api/v1/runs/future_states", json={"run_ids": [r["id"] for r in runs]})
        assert answer.status_code == 200
        assert sorted(answer.json()["content"], key=lambda c: c["run_id"]) == sorted(
            ({"run_id": r["id"], "future_state": "RESOLVED"} for r in runs), key=lambda c: c["run_id"]
        )
        front.wait_copied()
        for run in runs:
            ours = client.get(f"/api/v1/runs/{run['id']}/record").json()["content"]
            assert (ours["future_state"], ours["root_id"]) == (run["future_state"], root)
            assert ours["resolved_at"] == pytest.approx(epoch(run["resolved_at"]), abs=1e-6)
        panel = client.get(f"/api/v1/runs/{root}/metrics").json()["content"]
        assert panel["count_by_state"] == {"RESOLVED": 1}


# -- cancel: Sematic's event reaches the runner through the service ------------------------
CANCELED_PIPELINE = """
import json
import signal
import pathlib
import sys
import time
import sematic


@sematic.func
def wait_TAG(marker: str) -> int:
    pathlib.Path(marker + ".started").touch()
    while not pathlib.Path(marker + ".release").exists():
        time.sleep(0.05)
    return 1


@sematic.func
def long_TAG(marker: str) -> int:
    return wait_TAG(marker)


future = long_TAG(sys.argv[1] if len(sys.argv) > 1 else "MARKER")
print(json.dumps({"root": future.id}), flush=True)
try:
    sematic.LocalRunner().run(future)
except BaseException as exc:
    print(json.dumps({"ended_with": type(exc).__name__}), flush=True)
"""


def test_cancel_reaches_the_runner_through_the_service_and_is_copied(
    front: UpstreamLive,
    sematic_server: SematicServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    marker = tmp_path / "wait"
    script = CANCELED_PIPELINE.replace("TAG", tag).replace("MARKER", str(marker))
    proc = start_pipeline(script, front.url, tmp_path / "pipeline")
    try:
        assert proc.stdout is not None
        root = json.loads(proc.stdout.readline())["root"]
        wait_until(
            lambda: marker.with_suffix(".started").exists() or proc.poll() is not None, 120, "run start"
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with front.client() as client:
            canceled = client.put(f"/api/v1/resolutions/{root}/cancel")
            assert canceled.status_code == 200, canceled.text
            assert canceled.json()["content"]["status"] == "CANCELED"
        # Sematic's cancel event travels over socket.io long polling through the service.
        out, err = proc.communicate(timeout=120)
        assert json.loads(out.strip().splitlines()[-1]) == {"ended_with": "CancellationError"}, err
        assert "Received cancelation event" in err
    finally:
        marker.with_suffix(".release").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    front.wait_copied()
    runs = sematic_runs(sematic_server, [root])
    assert {r["future_state"] for r in runs} == {"CANCELED"}
    with front.client() as client:
        for run in runs:
            ours = client.get(f"/api/v1/runs/{run['id']}/record").json()["content"]
            assert ours["future_state"] == "CANCELED", run["function_path"]
        panel = client.get(f"/api/v1/runs/{root}/metrics").json()["content"]
        assert panel["count_by_state"] == {"CANCELED": 1}


# -- Sematic's dashboard draws the service's panel --------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_sematic_dashboard_shows_the_pipeline_panel_of_the_service(
    front: UpstreamLive,
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    tag = uuid.uuid4().hex[:8]
    root = run_pipeline(SMALL_PIPELINE.replace("TAG", tag), front.url, tmp_path)["root"]
    front.wait_copied()
    with front.client() as client:
        ours = client.get(f"/api/v1/runs/{root}/metrics").json()
    assert ours["content"]["count_by_state"] == {"RESOLVED": 1}
    panels: list[Any] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.on(
                "response",
                lambda r: panels.append(r.json()) if r.url.endswith(f"/runs/{root}/metrics") else None,
            )
            page.goto(f"{front.url}/runs/{root}#panel=metrics", wait_until="domcontentloaded")
            page.get_by_text("Pipeline Metrics").wait_for()
            text = page.inner_text("body")
        finally:
            browser.close()
    assert "Unable to load metrics" not in text
    # The dashboard asks for the panel (more than once) and draws the service's answer.
    assert panels
    assert all(panel == ours for panel in panels)
    after = text.split("Pipeline Metrics", 1)[1].split()
    assert after[:4] == ["1", "runs", "100%", "success"]
    assert f"__main__.add_{tag}" in text


# -- forwarding ---------------------------------------------------------------------------
def test_sematic_dashboard_and_api_load_through_the_service(
    front: UpstreamLive,
    sematic_server: SematicServer,  # noqa: F811
) -> None:
    with front.client() as client, httpx.Client(base_url=sematic_server.url, timeout=60) as direct:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == direct.get("/").text
        assert "<!doctype html>" in page.text.lower()
        # A deep link of Sematic's dashboard and its static files.
        assert client.get("/pipelines/some.pipeline").text == page.text
        script = re.search(r'src="(/static/js/[^"]+\.js)"', page.text)
        assert script is not None
        js = client.get(script.group(1))
        assert js.status_code == 200
        assert js.content == direct.get(script.group(1)).content
        assert js.headers["content-length"] == str(len(js.content))
        # Sematic's own answers, errors included, pass unchanged.
        assert client.get("/api/v1/meta/versions").json() == direct.get("/api/v1/meta/versions").json()
        missing = client.get("/api/v1/runs/no-such-run")
        assert missing.status_code == 404
        assert missing.json() == direct.get("/api/v1/runs/no-such-run").json()
        listed = client.get("/api/v1/runs", params={"limit": 1})
        assert listed.status_code == 200
        assert "content" in listed.json()


def test_large_bodies_stream_both_ways_past_the_service_body_limit(
    front: UpstreamLive,
) -> None:
    # Sematic's local artifact storage, through the service: 40 MiB is over
    # the service's own 32 MiB body limit, which does not apply to forwarded calls.
    blob = hashlib.sha256(b"seed").digest() * (40 * 1024 * 1024 // 32)
    key = uuid.uuid4().hex
    path = f"/api/v1/storage/upstream-test/{key}/local"
    with front.client() as client:
        put = client.put(path, content=blob, headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 200, put.text
        digest = hashlib.sha256()
        size = 0
        with client.stream("GET", path) as got:
            assert got.status_code == 200
            for chunk in got.iter_raw():
                digest.update(chunk)
                size += len(chunk)
        assert size == len(blob)
        assert digest.digest() == hashlib.sha256(blob).digest()


def test_api_keys_guard_only_the_service_own_endpoints(
    settings: Settings,
    sematic_server: SematicServer,  # noqa: F811
) -> None:
    keyed = replace(settings, api_keys=(ApiKey("alice", "alice-secret-key"),))
    with UpstreamLive(keyed, sematic_server.url) as server, server.client() as client:
        # Sematic's paths: Sematic authenticates them (a local server lets everyone in).
        assert client.get("/api/v1/meta/versions").json()["server"] == [0, 41, 0]
        assert client.get("/api/v1/runs", params={"limit": 1}).status_code == 200
        # The service's own paths need the service's key.
        assert client.get("/api/v1/metrics").status_code == 401
        assert client.get(f"/api/v1/runs/{uuid.uuid4().hex}/metrics").status_code == 401
        with_key = client.get("/api/v1/metrics", headers={"X-API-KEY": "alice-secret-key"})
        assert with_key.status_code == 200


def test_socketio_long_polling_through_the_service_and_websocket_refused(
    front: UpstreamLive,
) -> None:
    base = "/socket.io/"
    with front.client() as client:
        opened = client.get(base, params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200
        handshake = json.loads(opened.text[1:])
        assert opened.text[0] == "0"
        sid = handshake["sid"]
        poll = {"EIO": "4", "transport": "polling", "sid": sid}
        assert client.post(base, params=poll, content=b"40/metrics,").text == "OK"
        assert client.get(base, params=poll).text.startswith("40/metrics,")
        # The upgrade to a websocket is refused; the polling session goes on.
        upgrade = client.get(
            base,
            params={**poll, "transport": "websocket"},
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert upgrade.status_code == 400
        assert "long-polling" in upgrade.json()["error"]
        # Sematic's metrics-update event reaches Sematic's socket.io through the service.
        event = {"metric_points": [{"name": "up.loss", "value": 1.0}]}
        assert client.post("/api/v1/events/metrics/update", json=event).status_code == 200
        received = ""
        for _ in range(5):
            received = client.get(base, params=poll).text
            if "update" in received:
                break
        packet = next(p for p in received.split("\x1e") if p.startswith("42/metrics,"))
        assert json.loads(packet[len("42/metrics,") :]) == ["update", event]


def test_upstream_down_gives_502_and_metrics_keep_working(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with UpstreamLive(settings, dead) as server, server.client() as client:
        for method, path in (("GET", "/"), ("GET", "/api/v1/runs/abc"), ("PUT", "/api/v1/graph")):
            answer = client.request(method, path, json={} if method == "PUT" else None)
            assert answer.status_code == 502, path
            assert dead in answer.json()["error"]
        body = {"metric_points": [point("up.down", 2.5, T0)]}
        assert client.post("/api/v1/metrics", json=body).status_code == 200
        series = client.get("/api/v1/metrics/up.down", params={"to_time": T0 + 1}).json()
        assert series["content"]["series"] == [[2.5, []]]
        assert client.get("/healthz").status_code == 200
        assert server.status()["unanswered"] == 3


# -- copies retried -----------------------------------------------------------------------
class FlakySematic:
    """An HTTP peer in Sematic's shape whose GET /api/v1/runs/{id} answers 503
    until ``ready`` is set; its other answers are Sematic's for a future_states call."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.gets = 0
        self.run = {
            "id": "flaky1",
            "root_id": "flaky1",
            "parent_id": None,
            "function_path": "flaky.pipeline",
            "name": "flaky",
            "future_state": "RESOLVED",
            "original_run_id": None,
            "created_at": "2024-05-01T12:00:00+00:00",
            "started_at": "2024-05-01T12:00:01+00:00",
            "resolved_at": "2024-05-01T12:00:03.500000+00:00",
            "failed_at": None,
            "ended_at": "2024-05-01T12:00:03.500000+00:00",
            "updated_at": "2024-05-01T12:00:00+00:00",
        }

        async def future_states(request: Request) -> Response:
            ids = (await request.json())["run_ids"]
            return JSONResponse({"content": [{"run_id": i, "future_state": "RESOLVED"} for i in ids]})

        async def get_run(request: Request) -> Response:
            self.gets += 1
            if not self.ready.is_set():
                return JSONResponse({"error": "database is restarting"}, 503)
            return JSONResponse({"content": self.run})

        async def save_graph(request: Request) -> Response:
            await request.body()
            return JSONResponse({})

        self.app = Starlette(
            routes=[
                Route("/api/v1/graph", save_graph, methods=["PUT"]),
                Route("/api/v1/runs/future_states", future_states, methods=["POST"]),
                Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
            ]
        )


@pytest.fixture
def flaky() -> Iterator[tuple[FlakySematic, str]]:
    peer = FlakySematic()
    port = free_port()
    peer_server = uvicorn.Server(server_config(peer.app, port))
    thread = threading.Thread(target=peer_server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: peer_server.started or not thread.is_alive(), 30, "peer start")
        yield peer, f"http://127.0.0.1:{port}"
    finally:
        peer_server.should_exit = True
        thread.join(30)


def test_failed_copy_is_retried_without_failing_the_call(
    settings: Settings, flaky: tuple[FlakySematic, str]
) -> None:
    peer, url = flaky
    with UpstreamLive(settings, url) as server, server.client() as client:
        answer = client.post("/api/v1/runs/future_states", json={"run_ids": ["flaky1"]})
        assert answer.status_code == 200
        wait_until(lambda: server.status()["run_copies"]["retries"] >= 2, 60, "copy retried")
        status = server.status()["run_copies"]
        assert status["backlog"] == 1
        assert "503" in status["last_error"]
        assert client.get("/api/v1/runs/flaky1/record").status_code == 404
        peer.ready.set()
        server.wait_copied()
        record = client.get("/api/v1/runs/flaky1/record").json()["content"]
        assert record["future_state"] == "RESOLVED"
        assert record["resolved_at"] - record["started_at"] == pytest.approx(2.5)
        assert server.status()["run_copies"]["copied_runs"] == 1


def test_graph_over_the_body_limit_is_forwarded_but_not_copied(
    settings: Settings, flaky: tuple[FlakySematic, str]
) -> None:
    peer, url = flaky
    small = replace(settings, max_body_bytes=4096)
    graph = {"graph": {"runs": [peer.run], "edges": [], "artifacts": []}}
    big = {"graph": {"runs": [{**peer.run, "id": "big1", "root_id": "big1", "source_code": "x" * 8192}]}}
    with UpstreamLive(small, url) as server, server.client() as client:
        assert client.put("/api/v1/graph", json=big).status_code == 200
        assert client.put("/api/v1/graph", json=graph).status_code == 200
        status = server.wait_copied()["run_copies"]
        assert (status["rejected_runs"], status["copied_runs"]) == (1, 1)
        assert client.get("/api/v1/runs/big1/record").status_code == 404
        assert client.get("/api/v1/runs/flaky1/record").json()["content"]["future_state"] == "RESOLVED"


# -- who answers what ----------------------------------------------------------------------
OURS = [
    ("GET", "/api/v1/metrics"),
    ("POST", "/api/v1/metrics"),
    ("GET", "/api/v1/metrics/train.loss"),
    ("DELETE", "/api/v1/metrics/train.loss"),
    ("GET", "/api/v1/runs/abc/metrics"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/runs/abc/record"),
    ("GET", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/train.pipeline/metrics"),
    ("POST", "/api/v1/sql"),
    ("GET", "/api/v1/stream"),
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/dashboard/"),
    ("GET", upstream.STATUS_PATH),
]
SEMATICS = [
    ("GET", "/"),
    ("GET", "/pipelines/train.pipeline"),
    ("GET", "/runs/abc"),
    ("GET", "/static/js/main.js"),
    ("GET", "/api/v1/meta/versions"),
    ("POST", "/api/v1/events/metrics/update"),
    ("POST", "/api/v1/events/graph/update"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/abc"),
    ("GET", "/api/v1/runs/abc/graph"),
    ("POST", "/api/v1/runs/future_states"),
    ("PUT", "/api/v1/graph"),
    ("PUT", "/api/v1/resolutions/abc/cancel"),
    ("GET", "/socket.io/"),
    ("POST", "/api/v1/metrics/extra"),
]


def test_the_service_answers_its_own_paths_and_forwards_sematics(settings: Settings) -> None:
    app = upstream_app(replace(settings, sematic_upstream="http://127.0.0.1:9"))
    up = app.state.service.upstream
    assert up is not None
    front = upstream.UpstreamFront(app, up, app.router.routes)

    def owns(method: str, path: str) -> bool:
        return front.owns({"type": "http", "method": method, "path": path, "root_path": ""})

    assert [(m, p) for m, p in OURS if not owns(m, p)] == []
    assert [(m, p) for m, p in SEMATICS if owns(m, p)] == []
    assert not front.owns({"type": "websocket", "path": "/socket.io/", "root_path": ""})


# -- the command line ------------------------------------------------------------------------
def test_serve_with_the_upstream_flag_fronts_sematic(
    sematic_server: SematicServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data", args=["--sematic-upstream", sematic_server.url]).start()
    try:
        page = httpx.get(f"{server.url}/", timeout=60)
        assert page.status_code == 200
        assert page.text == httpx.get(f"{sematic_server.url}/", timeout=60).text
        status = httpx.get(f"{server.url}{upstream.STATUS_PATH}", timeout=60).json()
        assert status["url"] == sematic_server.url
    finally:
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("http://sematic:5001", "http://sematic:5001"),
        ("https://sematic.example.com/", "https://sematic.example.com"),
    ],
    ids=["unset", "http", "https-slash"],
)
def test_upstream_setting_accepts_http_urls(raw: str, expected: str | None) -> None:
    assert parse_upstream(raw) == expected
    env = {"SEMATIC_METRICS_SEMATIC_UPSTREAM": raw}
    assert Settings.from_env(env).sematic_upstream == expected


@pytest.mark.parametrize(
    "raw",
    ["sematic:5001", "ftp://sematic", "http://", "http://sematic:port", "http://sematic/?x=1"],
    ids=["no-scheme", "ftp", "no-host", "bad-port", "query"],
)
def test_upstream_setting_rejects_what_is_not_an_http_url(raw: str) -> None:
    with pytest.raises(ConfigError, match="SEMATIC_METRICS_SEMATIC_UPSTREAM"):
        Settings.from_env({"SEMATIC_METRICS_SEMATIC_UPSTREAM": raw})


def test_serve_takes_the_upstream_flag() -> None:
    args = build_parser().parse_args(["serve", "--sematic-upstream", "http://sematic:5001"])
    assert args.sematic_upstream == "http://sematic:5001"
    assert build_parser().parse_args(["serve"]).sematic_upstream is None


# -- whole seconds on the Sematic wire ---------------------------------------------------------
def test_auto_rollup_never_returns_two_points_in_one_second(client: httpx.Client) -> None:
    times = [T0 + 0.1, T0 + 0.2, T0 + 0.9, T0 + 1.0, T0 + 1.5, T0 + 3.25]
    values = [1.0, 2.0, 3.0, 10.0, 20.0, 7.0]
    body = {"metric_points": [point("sub", v, t, run_id="r1") for v, t in zip(values, times, strict=True)]}
    assert client.post("/api/v1/metrics", json=body).status_code == 200
    content = client.get("/api/v1/metrics/sub", params={"rollup": "auto", "to_time": T0 + 10}).json()
    assert content["content"]["series"] == [
        [2.0, [str(T0)]],
        [15.0, [str(T0 + 1)]],
        [7.0, [str(T0 + 3)]],
    ]


def test_auto_rollup_of_many_subsecond_points_stays_in_whole_seconds(client: httpx.Client) -> None:
    # 1000 distinct times, 4 per second: over 300, so the data-extent width rule applies.
    times = [T0 + i / 4 for i in range(1000)]
    body = {"metric_points": [point("many", 1.0, t, run_id="r1") for t in times]}
    assert client.post("/api/v1/metrics", json=body).status_code == 200
    series = client.get("/api/v1/metrics/many", params={"rollup": "auto", "to_time": T0 + 1000}).json()
    stamps = [entry[1][0] for entry in series["content"]["series"]]
    assert len(stamps) <= 300
    assert all(s.isdigit() for s in stamps)
    assert len(set(stamps)) == len(stamps)
