"""GET /api/v1/series and its export GET /api/v1/series/points over HTTP."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sematic_metrics.service import series_api
from tests._support import LiveServer, compact

T0 = 1_699_920_000  # a whole day since the epoch


def post(
    client: httpx.Client,
    run: str,
    values: list[Any],
    steps: list[int | None] | None,
    t0: float = T0,
    key: str = "",
    metric_type: int = 1,
) -> httpx.Response:
    body = compact(
        {"run_id": run, "root_id": run, "root_function_path": "pipe"},
        ["loss"] * len(values),
        values,
        [t0 + i for i in range(len(values))],
        [metric_type] * len(values),
        steps,
    )
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post("/api/v1/metrics", content=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.text
    return response


def series(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/series", params={"name": "loss", **params})
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


def test_series_answer_shape_raw_then_bucketed(client: httpx.Client) -> None:
    post(client, "r1", [1.0, "NaN", 3.0, 4.0], [0, 1, 2, 3])
    post(client, "r2", [10.0, 20.0], [0, 1])
    raw = series(client, x="step", group_by="run_id")
    assert raw["metric_type"] == "GAUGE" and raw["x"] == "step" and raw["width"] == 0
    first, second = raw["series"]
    assert first == {
        "group": {"run_id": "r1"},
        "x": [0, 1, 2, 3],
        "value": [1.0, None, 3.0, 4.0],
        "min": [1.0, None, 3.0, 4.0],
        "max": [1.0, None, 3.0, 4.0],
        "first": [1.0, None, 3.0, 4.0],
        "last": [1.0, None, 3.0, 4.0],
        "count": [1, 1, 1, 1],
    }
    assert second["group"] == {"run_id": "r2"}
    bucketed = series(client, x="step", buckets=2)
    assert bucketed["width"] == 2
    (one,) = bucketed["series"]
    assert one["group"] == {}
    assert one["x"] == [0, 2]
    assert one["count"] == [4, 2]
    assert one["value"] == [pytest.approx(31 / 3), 3.5]
    assert (one["min"], one["max"]) == ([1.0, 3.0], [20.0, 4.0])
    timed = series(client, buckets=1)
    assert timed["x"] == "time" and timed["width"] == 5.0
    assert timed["series"][0]["x"] == [float(T0)]


def test_time_is_epoch_seconds_with_microseconds(client: httpx.Client) -> None:
    post(client, "r1", [1.0, 2.0], None, t0=T0 + 0.123456)
    answer = series(client)
    assert answer["width"] == 0
    assert answer["series"][0]["x"] == [T0 + 0.123456, T0 + 1.123456]
    assert series(client, **{"from": str(T0 + 1.123456)})["series"][0]["x"] == [T0 + 1.123456]


def test_a_retried_batch_adds_nothing(client: httpx.Client) -> None:
    post(client, "r1", [1.0] * 5, None, key="k1", metric_type=0)
    again = post(client, "r1", [1.0] * 5, None, key="k1", metric_type=0)
    assert again.json()["content"]["duplicate"] is True
    (one,) = series(client, buckets=1)["series"]
    assert one["value"] == [5.0] and one["count"] == [5]


def test_no_steps_gives_no_step_series(client: httpx.Client) -> None:
    post(client, "r1", [1.0], None)
    assert series(client, x="step")["series"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "epoch"}, "x"),
        ({"buckets": "0"}, "buckets"),
        ({"buckets": "10001"}, "buckets"),
        ({"buckets": "ten"}, "buckets"),
        ({"from": "5", "to": "5"}, "from"),
        ({"from": "soon"}, "from"),
        ({"x": "step", "to": "1.5"}, "to"),
        ({"labels": "[1]"}, "labels"),
        ({"group_by": "host"}, "group_by"),
        ({"name": ""}, "name"),
        ({"format": "xls"}, "format"),
    ],
    ids=[
        "x",
        "buckets-0",
        "buckets-big",
        "buckets-text",
        "empty-range",
        "from-text",
        "step-fraction",
        "labels",
        "group-by",
        "name",
        "format",
    ],
)
def test_bad_parameters_are_named(client: httpx.Client, params: dict[str, str], field: str) -> None:
    post(client, "r1", [1.0], [0])
    path = "/api/v1/series/points" if field == "format" else "/api/v1/series"
    response = client.get(path, params={"name": "loss", **params})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:")


@pytest.mark.parametrize("path", ["/api/v1/series", "/api/v1/series/points"], ids=["series", "export"])
def test_unknown_metric_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path, params={"name": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


def _rows(fmt: str, data: bytes) -> list[dict[str, Any]]:
    if fmt == "csv":
        return [
            {k: (float(v) if k in ("x", "value", "metric_time") else v) for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(data.decode()))
        ]
    if fmt == "jsonl":
        rows = [orjson.loads(line) for line in data.splitlines()]
        return [{**r, "value": float(r["value"])} for r in rows]
    table = pq.read_table(io.BytesIO(data)) if fmt == "parquet" else pa.ipc.open_stream(data).read_all()
    records: list[dict[str, Any]] = table.to_pylist()
    return records


@pytest.mark.parametrize("fmt", list(series_api.FORMATS), ids=list(series_api.FORMATS))
def test_export_streams_every_point_in_pages(
    live: LiveServer, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_api, "PAGE_POINTS", 7)  # many pages
    with live.client() as client:
        values: list[Any] = [float(i) for i in range(40)]
        values[3] = "NaN"
        values[5] = "-Infinity"
        post(client, "r1", values, list(range(40)))
        post(client, "r2", [0.5] * 3, None, t0=T0 + 100)
        response = client.get("/api/v1/series/points", params={"name": "loss", "format": fmt})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(series_api.FORMATS[fmt].split(";")[0])
        rows = _rows(fmt, response.content)
        assert [r["x"] for r in rows] == [float(T0 + i) for i in range(40)] + [
            float(T0 + 100 + i) for i in range(3)
        ]
        assert math.isnan(rows[3]["value"]) and rows[5]["value"] == -math.inf and rows[6]["value"] == 6.0
        assert {r["run_id"] for r in rows} == {"r1", "r2"}
        by_step = client.get(
            "/api/v1/series/points",
            params={"name": "loss", "format": fmt, "x": "step", "from": "10", "to": "20"},
        )
        assert [int(r["x"]) for r in _rows(fmt, by_step.content)] == list(range(10, 20))


def test_openapi_lists_the_series_endpoints(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert {"/api/v1/series", "/api/v1/series/points"} <= set(document["paths"])
    assert "SeriesResponse" in document["components"]["schemas"]


def test_a_kept_answer_lasts_until_its_metric_changes(live: LiveServer, client: httpx.Client) -> None:
    cache = live.service.series_cache
    post(client, "r1", [1.0, 2.0], [0, 1])
    first = series(client, x="step")
    hits = cache.hits
    assert series(client, x="step") == first
    assert cache.hits == hits + 1
    # A write of another metric leaves the answer current.
    other = compact({"run_id": "r1"}, ["accuracy"], [0.5], [T0], [1], [0])
    assert client.post("/api/v1/metrics", content=json.dumps(other)).status_code == 200
    assert series(client, x="step") == first
    assert cache.hits == hits + 2
    # Acknowledged means visible: the next read is a fresh one.
    post(client, "r1", [5.0], [2])
    assert series(client, x="step")["series"][0]["x"] == [0, 1, 2]
    deleted = client.delete("/api/v1/metrics/loss", params={"labels": json.dumps({"run_id": "r1"})})
    assert deleted.status_code == 200, deleted.text
    assert series(client, x="step")["series"] == []
    assert cache.hits == hits + 2
