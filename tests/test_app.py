"""The Sematic-compatible metrics API over HTTP, against the real engine."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import httpx
import pytest

from tests._support import T0, compact, point, run_labels


def post(client: httpx.Client, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/metrics", json=body, headers=headers)


def series(client: httpx.Client, name: str, **params: Any) -> dict[str, Any]:
    if "labels" in params:
        params["labels"] = json.dumps(params["labels"])
    response = client.get(f"/api/v1/metrics/{name}", params=params)
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


def test_versions_answer_sematic_client(client: httpx.Client) -> None:
    response = client.get("/api/v1/meta/versions")
    assert response.json() == {"server": [0, 41, 0], "min_client_supported": [0, 30, 0]}
    assert client.post("/api/v1/events/metrics/update", json={"metric_points": []}).status_code == 200


def test_healthz_checks_store(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.backends
def test_sematic_form_round_trip(client: httpx.Client) -> None:
    labels = run_labels("r1")
    points = [point("loss", 1.0 / (i + 1), T0 + i, **labels) for i in range(10)]
    response = post(client, {"metric_points": points})
    assert response.status_code == 200
    assert response.json() == {"content": {"stored": 10, "duplicate": False}}
    content = series(client, "loss", labels={"run_id": "r1"}, to_time=T0 + 100)
    assert content["metric_name"] == "loss"
    assert content["metric_type"] == "GAUGE"
    assert content["columns"] == []
    assert content["series"][0][0] == pytest.approx(sum(1.0 / (i + 1) for i in range(10)) / 10)
    assert content["series"][0][1] == []


@pytest.mark.backends
def test_compact_form_with_steps_and_shared_labels(client: httpx.Client, live: Any) -> None:
    body = compact(
        run_labels("r2"), ["acc", "acc", "acc"], [0.1, 0.2, 0.3], [T0, T0 + 1, T0 + 2], steps=[1, 2, None]
    )
    assert post(client, body).json()["content"]["stored"] == 3
    rows = live.service.store.query(
        "SELECT step, run_id, root_function_path FROM metric_points WHERE name = 'acc' ORDER BY metric_time"
    )
    assert rows == [(1, "r2", "train.pipeline"), (2, "r2", "train.pipeline"), (None, "r2", "train.pipeline")]


@pytest.mark.backends
def test_count_is_summed_and_gauge_averaged_per_bucket(client: httpx.Client) -> None:
    labels = run_labels("r1")
    times = [T0, T0 + 10, T0 + 70, T0 + 80, T0 + 200]
    post(client, compact(labels, ["n"] * 5, [1, 2, 3, 4, 5], times, types=[0] * 5))
    post(client, compact(labels, ["g"] * 5, [1, 2, 3, 4, 5], times))
    counts = series(client, "n", rollup="60", to_time=T0 + 1000)
    gauges = series(client, "g", rollup="60", to_time=T0 + 1000)
    assert counts["columns"] == ["timestamp"]
    # Buckets of 60 s aligned to the epoch; the empty bucket at T0+120 is absent.
    start = T0 - T0 % 60
    assert counts["series"] == [[3.0, [str(start)]], [7.0, [str(start + 60)]], [5.0, [str(start + 180)]]]
    assert gauges["series"] == [[1.5, [str(start)]], [3.5, [str(start + 60)]], [5.0, [str(start + 180)]]]
    assert counts["metric_type"] == "COUNT"


@pytest.mark.parametrize(("distinct", "raw"), [(300, True), (301, False)], ids=["300-raw", "301-bucketed"])
@pytest.mark.backends
def test_auto_rollup_raw_up_to_300_timestamps(client: httpx.Client, distinct: int, raw: bool) -> None:
    times = [T0 + i for i in range(distinct)]
    post(client, compact(run_labels("r1"), ["m"] * distinct, [float(i) for i in range(distinct)], times))
    content = series(client, "m", rollup="auto", to_time=T0 + 10_000)
    stamps = [int(entry[1][0]) for entry in content["series"]]
    if raw:
        assert stamps == times
    else:
        assert len(stamps) <= 300
        assert stamps == sorted(stamps)
        width = stamps[1] - stamps[0]
        assert width == 2
        assert all(s % width == 0 for s in stamps)


def test_rollups_until_now_are_kept_until_their_metric_changes(client: httpx.Client, live: Any) -> None:
    cache = live.service.series_cache
    labels = run_labels("r1")
    points = [point("loss", float(i), T0 + i, **labels) for i in range(5)]
    assert post(client, {"metric_points": points}).status_code == 200
    first = series(client, "loss", labels={"run_id": "r1"}, rollup="auto")  # no to_time: until now
    hits = cache.hits
    assert series(client, "loss", labels={"run_id": "r1"}, rollup="auto") == first
    assert cache.hits == hits + 1
    # Another metric's write leaves the answer current.
    assert post(client, {"metric_points": [point("accuracy", 0.5, T0, **labels)]}).status_code == 200
    assert series(client, "loss", labels={"run_id": "r1"}, rollup="auto") == first
    assert cache.hits == hits + 2
    # Acknowledged means visible: the next read is a fresh one.
    assert post(client, {"metric_points": [point("loss", 9.0, T0 + 10, **labels)]}).status_code == 200
    assert len(series(client, "loss", labels={"run_id": "r1"}, rollup="auto")["series"]) == 6
    # A point after now is cut by the window's end, which moves with the
    # clock: such answers are not kept.
    later = point("loss", 7.0, time.time() + 3600, **labels)
    assert post(client, {"metric_points": [later]}).status_code == 200
    answers = [series(client, "loss", labels={"run_id": "r1"}, rollup="auto") for _ in range(2)]
    assert answers[0] == answers[1] and len(answers[0]["series"]) == 6
    assert cache.hits == hits + 2


@pytest.mark.backends
def test_from_time_zero_on_one_hour_run_keeps_detail(client: httpx.Client) -> None:
    times = [T0 + i for i in range(0, 3600, 2)]
    post(client, compact(run_labels("r1"), ["loss"] * len(times), [1.0] * len(times), times))
    content = series(client, "loss", rollup="auto", from_time=0, to_time=T0 + 7200)
    stamps = [int(entry[1][0]) for entry in content["series"]]
    # 12 s buckets would need 301 points for this alignment ((T0 + 3598) // 12 - T0 // 12 + 1):
    # 13 is the smallest width.
    assert 270 <= len(stamps) <= 300
    assert stamps[1] - stamps[0] == 13
    assert all(s % 13 == 0 for s in stamps)


@pytest.mark.backends
def test_integer_rollup_is_a_minimum_width(client: httpx.Client) -> None:
    times = [T0 + i for i in range(100)]
    post(client, compact(run_labels("r1"), ["m"] * 100, [1.0] * 100, times))
    content = series(client, "m", rollup="1", to_time=T0 + 1000)
    assert len(content["series"]) == 100
    content = series(client, "m", rollup="50", to_time=T0 + 1000)
    assert [e[1][0] for e in content["series"]] == [str(T0), str(T0 + 50)]


@pytest.mark.backends
def test_half_open_window(client: httpx.Client) -> None:
    post(
        client, compact(run_labels("r1"), ["m"] * 3, [1.0, 10.0, 100.0], [T0, T0 + 1, T0 + 2], types=[0] * 3)
    )
    content = series(client, "m", from_time=T0, to_time=T0 + 2)
    assert content["series"] == [[11.0, []]]
    content = series(client, "m", from_time=T0 + 1, to_time=T0 + 3)
    assert content["series"] == [[110.0, []]]


@pytest.mark.backends
def test_group_by_across_runs_and_root_filter(client: httpx.Client) -> None:
    post(client, compact(run_labels("root1"), ["m"] * 2, [1.0, 3.0], [T0, T0 + 1]))
    post(client, compact(run_labels("child1", "root1"), ["m"] * 2, [10.0, 30.0], [T0, T0 + 1]))
    post(client, compact(run_labels("root2"), ["m"], [100.0], [T0 + 5]))
    grouped = series(client, "m", group_by="run_id", to_time=T0 + 100)
    assert sorted(grouped["series"]) == [[2.0, ["root1"]], [20.0, ["child1"]], [100.0, ["root2"]]]
    by_two = series(client, "m", group_by="root_id,run_id", to_time=T0 + 100)
    assert by_two["columns"] == ["root_id", "run_id"]
    assert sorted(by_two["series"]) == [
        [2.0, ["root1", "root1"]],
        [20.0, ["root1", "child1"]],
        [100.0, ["root2", "root2"]],
    ]
    roots = series(client, "m", labels={"root": True}, group_by="run_id", to_time=T0 + 100)
    assert sorted(e[1][0] for e in roots["series"]) == ["root1", "root2"]
    children = series(client, "m", labels={"root": False}, group_by="run_id", to_time=T0 + 100)
    assert [e[1][0] for e in children["series"]] == ["child1"]
    bucketed = series(client, "m", group_by="run_id", rollup="auto", to_time=T0 + 100)
    assert bucketed["columns"] == ["timestamp", "run_id"]
    assert [T0, "root1"] in [[int(e[1][0]), e[1][1]] for e in bucketed["series"]]


@pytest.mark.backends
def test_custom_label_filter_and_null(client: httpx.Client) -> None:
    post(client, compact({**run_labels("r1"), "split": "train"}, ["m"], [1.0], [T0]))
    post(client, compact({**run_labels("r1"), "split": "val"}, ["m"], [5.0], [T0]))
    post(client, compact(run_labels("r1"), ["m"], [9.0], [T0]))
    assert series(client, "m", labels={"split": "val"}, to_time=T0 + 1)["series"] == [[5.0, []]]
    assert series(client, "m", labels={"split": None}, to_time=T0 + 1)["series"] == [[9.0, []]]


@pytest.mark.backends
def test_nan_and_infinity_stored_and_skipped(client: httpx.Client, live: Any) -> None:
    # Python's json writes the bare NaN and Infinity tokens.
    body = (
        b'{"metric_points": ['
        + b",".join(
            json.dumps(point("m", v, T0 + i, **run_labels("r1"))).encode()
            for i, v in enumerate([1.0, math.nan, math.inf, -math.inf, 3.0])
        )
        + b"]}"
    )
    assert client.post("/api/v1/metrics", content=body).status_code == 200
    post(client, compact(run_labels("r1"), ["m", "m"], [None, "Infinity"], [T0 + 10, T0 + 11]))
    assert series(client, "m", to_time=T0 + 100)["series"] == [[2.0, []]]
    stored = live.service.store.query("SELECT value FROM metric_points WHERE name = 'm' ORDER BY metric_time")
    values = [row[0] for row in stored]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf
    assert math.isnan(values[5]) and values[6] == math.inf
    # A bucket of non-finite values only has no average.
    assert series(client, "m", from_time=T0 + 10, to_time=T0 + 11)["series"] == [[None, []]]


def test_unknown_metric_is_404(client: httpx.Client) -> None:
    response = client.get("/api/v1/metrics/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "user_id"}, "group_by"),
        ({"rollup": "hourly"}, "rollup"),
        ({"labels": "[1]"}, "labels"),
        ({"from_time": "yesterday"}, "from_time"),
    ],
    ids=["group-by", "rollup", "labels", "from-time"],
)
def test_bad_query_parameters_are_400(client: httpx.Client, params: dict[str, str], field: str) -> None:
    post(client, compact(run_labels("r1"), ["m"], [1.0], [T0]))
    response = client.get("/api/v1/metrics/m", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)


@pytest.mark.backends
def test_type_conflict_is_409_and_writes_nothing(client: httpx.Client, live: Any) -> None:
    post(client, compact(run_labels("r1"), ["m"], [1.0], [T0], types=[1]))
    body = compact(run_labels("r1"), ["other", "m"], [1.0, 2.0], [T0, T0], types=[0, 0])
    response = post(client, body)
    assert response.status_code == 409
    assert "points.metric_type[1]" in response.json()["error"]
    assert live.service.store.query("SELECT count() FROM metric_points") == [(1,)]
    mixed = compact(run_labels("r1"), ["x", "x"], [1.0, 2.0], [T0, T0], types=[0, 1])
    assert post(client, mixed).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric_points": [point(t=T0), point(t=1e12)]}, "metric_points[1].metric_time"),
        ({"metric_points": [point(name="")]}, "metric_points[0].name"),
        ({"metric_points": [point(metric_type=2)]}, "metric_points[0].metric_type"),
        ({"metric_points": [point(value="high")]}, "metric_points[0].value"),
        ({"metric_points": [{"name": "m", "value": 1}]}, "metric_points[0]"),
        ({"metric_points": [point(value=True)]}, "metric_points[0].value"),
        (compact({}, ["m", "m"], [1.0], [T0, T0]), "points.value"),
        (compact({}, ["m", "m"], [1.0, 2.0], [T0, -3e9]), "points.metric_time[1]"),
        (compact({}, ["m", ""], [1.0, 2.0], [T0, T0]), "points.name[1]"),
        (compact({}, ["m"], ["x"], [T0]), "points.value[0]"),
        ({"metric_points": []}, "metric_points"),
        ({}, "metric_points"),
    ],
    ids=[
        "time-out-of-range",
        "empty-name",
        "bad-type",
        "string-value",
        "missing-fields",
        "bool-value",
        "ragged-arrays",
        "compact-time",
        "compact-empty-name",
        "compact-string-value",
        "empty-batch",
        "empty-body",
    ],
)
def test_bad_points_are_400_naming_field_and_write_nothing(
    client: httpx.Client, live: Any, body: Any, field: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert live.service.store.query("SELECT count() FROM metric_points") == [(0,)]


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post("/api/v1/metrics", content=b'{"metric_points": [')
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


@pytest.mark.backends
def test_idempotent_retry_stores_once(client: httpx.Client, live: Any) -> None:
    body = compact(run_labels("r1"), ["m"] * 5, [1.0] * 5, [T0 + i for i in range(5)])
    first = post(client, body, key="batch-1")
    again = post(client, body, key="batch-1")
    assert first.json()["content"] == {"stored": 5, "duplicate": False}
    assert again.json()["content"] == {"stored": 5, "duplicate": True}
    assert live.service.store.query("SELECT count() FROM metric_points") == [(5,)]
    assert post(client, body, key="batch-2").json()["content"]["duplicate"] is False
    assert live.service.store.query("SELECT count() FROM metric_points") == [(10,)]


@pytest.mark.backends
def test_concurrent_posts_are_all_stored_exactly_once(live: Any) -> None:
    threads, batches, size = 16, 20, 50
    errors: list[str] = []

    def worker(n: int) -> None:
        with live.client() as c:
            for b in range(batches):
                times = [T0 + b * size + i for i in range(size)]
                body = compact(run_labels(f"r{n}"), ["m"] * size, [1.0] * size, times, types=[0] * size)
                key = f"w{n}-b{b}"
                response = post(c, body, key=key)
                if response.status_code != 200:
                    errors.append(response.text)
                if b % 5 == 0:  # a retry of the same batch must add nothing
                    post(c, body, key=key)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert errors == []
    with live.client() as c:
        content = series(c, "m", group_by="run_id", to_time=T0 * 2)
    assert sorted(content["series"]) == sorted([[float(batches * size), [f"r{n}"]] for n in range(threads)])
    writer = live.service.writer
    assert writer.inserts < threads * batches  # requests were coalesced


@pytest.mark.backends
def test_list_metrics_by_labels(client: httpx.Client) -> None:
    post(client, compact(run_labels("r1"), ["a", "b"], [1.0, 1.0], [T0, T0]))
    post(client, compact(run_labels("r2"), ["c"], [1.0], [T0]))
    assert client.get("/api/v1/metrics").json() == {"content": ["a", "b", "c"]}
    params = {"labels": json.dumps({"run_id": "r2"})}
    assert client.get("/api/v1/metrics", params=params).json() == {"content": ["c"]}
    params = {"labels": json.dumps({"run_id": "none"})}
    assert client.get("/api/v1/metrics", params=params).json() == {"content": []}


@pytest.mark.backends
def test_delete_matching_points(client: httpx.Client) -> None:
    post(client, compact(run_labels("r1"), ["m"] * 2, [1.0, 2.0], [T0, T0 + 1], types=[0, 0]))
    assert post(client, compact(run_labels("r2"), ["m"], [5.0], [T0], types=[0])).status_code == 200
    response = client.delete("/api/v1/metrics/m", params={"labels": json.dumps({"run_id": "r1"})})
    assert response.status_code == 200, response.text
    assert response.json() == {"content": {"deleted": 2}}
    assert series(client, "m", group_by="run_id", to_time=T0 + 10)["series"] == [[5.0, ["r2"]]]
    assert client.delete("/api/v1/metrics/unknown").status_code == 404


def test_body_over_limit_is_413(live: Any) -> None:
    with live.client() as c:
        big = b'{"metric_points": [' + b" " * (live.settings.max_body_bytes + 10) + b"]}"
        response = c.post("/api/v1/metrics", content=big)
    assert response.status_code == 413
    assert live.service.store.query("SELECT count() FROM metric_points") == [(0,)]


def test_openapi_lists_both_forms(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert "/api/v1/metrics" in doc["paths"]
    schema = doc["components"]["schemas"]
    assert {"IngestBody", "CompactPoints", "MetricPoint"} <= schema.keys()
    assert set(schema["CompactPoints"]["properties"]) >= {
        "name",
        "value",
        "metric_type",
        "metric_time",
        "step",
    }


def test_auth_required_when_keys_configured(keyed_live: Any) -> None:
    body = compact(run_labels("r1"), ["m"], [1.0], [T0])
    with keyed_live.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/api/v1/meta/versions").status_code == 200
        assert post(c, body).status_code == 401
        wrong = c.post("/api/v1/metrics", json=body, headers={"X-API-KEY": "nope"})
        assert wrong.status_code == 401
        ok = c.post("/api/v1/metrics", json=body, headers={"X-API-KEY": "alice-secret-key"})
        assert ok.status_code == 200
        bearer = {"Authorization": "Bearer alice-secret-key"}
        content = c.get("/api/v1/metrics/m", params={"group_by": "run_id"}, headers=bearer).json()
        assert content["content"]["series"] == [[1.0, ["r1"]]]
        reader = {"X-API-KEY": "reader-secret-key"}
        assert c.post("/api/v1/metrics", json=body, headers=reader).status_code == 403
        assert c.get("/api/v1/metrics", headers=reader).status_code == 200
    rows = keyed_live.service.store.query("SELECT user_id FROM metric_points")
    assert rows == [("alice",)]


@pytest.mark.backends
def test_identical_batches_without_key_are_both_stored(client: httpx.Client, live: Any) -> None:
    body = compact(run_labels("r1"), ["m"] * 100, [1.0] * 100, [T0 + i for i in range(100)])
    for _ in range(3):
        assert post(client, body).json()["content"] == {"stored": 100, "duplicate": False}
    assert live.service.store.query("SELECT count() FROM metric_points") == [(300,)]


@pytest.mark.backends
def test_sematic_form_with_many_label_sets(client: httpx.Client, live: Any) -> None:
    points = [point("m", float(i), T0 + i, **run_labels(f"r{i % 7}"), extra=str(i % 3)) for i in range(70)]
    assert post(client, {"metric_points": points}).status_code == 200
    rows = live.service.store.query(
        "SELECT run_id, labels['extra'], count() FROM metric_points GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert len(rows) == 21
    assert sum(r[2] for r in rows) == 70
    assert ("r3", "0", 4) in rows  # i = 3, 24, 45, 66
