"""Pipeline statistics over HTTP: runs ingest, the SQL views behind the
pipeline endpoints, Sematic's pipeline panel and system metrics."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from sematic_metrics.service.runs_body import decode, to_batch
from sematic_metrics.service.runs_writer import RunsWriter

T0 = 1_699_920_000  # 2023-11-14T00:00:00Z, a day boundary
DAY = 86_400
PIPE = "acme.pipelines.train"


def run(
    run_id: str,
    state: str,
    created: float,
    *,
    path: str = PIPE,
    root_id: str | None = None,
    updated: float | None = None,
    runtime: float | None = None,
    original: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A run record; terminal states get their times from ``runtime``."""
    started = created + 1
    end = started + (runtime if runtime is not None else 10)
    record: dict[str, Any] = {
        "id": run_id,
        "root_id": root_id or run_id,
        "parent_id": None if root_id in (None, run_id) else root_id,
        "function_path": path,
        "name": path.rsplit(".", 1)[-1],
        "future_state": state,
        "original_run_id": original,
        "created_at": created,
        "started_at": started if state != "CREATED" else None,
        "resolved_at": end if state == "RESOLVED" else None,
        "failed_at": end if state in ("FAILED", "NESTED_FAILED") else None,
        "ended_at": end if state in ("RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED") else None,
        "updated_at": updated if updated is not None else end,
    }
    record.update(extra)
    return record


def post_runs(client: httpx.Client, runs: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/runs", json={"runs": runs}, headers=headers)


def store_runs(client: httpx.Client, runs: list[dict[str, Any]]) -> None:
    response = post_runs(client, runs)
    assert response.status_code == 200, response.text
    assert response.json() == {"content": {"stored": len(runs), "duplicate": False}}


def figures(client: httpx.Client, path: str = PIPE, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/pipelines/{path}/metrics", params=params)
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


def listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/pipelines")
    assert response.status_code == 200, response.text
    return {item["function_path"]: item for item in response.json()["content"]}


def series(client: httpx.Client, name: str, **params: Any) -> dict[str, Any]:
    if "labels" in params:
        params["labels"] = json.dumps(params["labels"])
    params.setdefault("to_time", T0 + 100 * DAY)
    response = client.get(f"/api/v1/metrics/{name}", params=params)
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


@pytest.fixture
def frozen(live: Any) -> Any:
    """The live server with background merges stopped on runs, so every
    version stays stored as its own row while the test reads."""
    live.service.store.command("SYSTEM STOP MERGES runs")
    return live


def raw_rows(live: Any) -> int:
    return int(live.service.store.query("SELECT count() FROM runs")[0][0])


# -- definitions ---------------------------------------------------------------
@pytest.mark.backends
def test_nested_runs_of_the_root_function_are_not_counted(client: httpx.Client) -> None:
    store_runs(
        client,
        [
            run("r1", "RESOLVED", T0, runtime=100),
            run("r2", "FAILED", T0 + 60),
            # Nested runs, one of them of the pipeline's own function (recursion).
            run("n1", "RESOLVED", T0 + 1, root_id="r1", runtime=5),
            run("n2", "FAILED", T0 + 61, root_id="r2", path="acme.steps.fit"),
        ],
    )
    got = figures(client)
    assert got["run_count"] == 2
    assert got["count_by_state"] == {"RESOLVED": 1, "FAILED": 1}
    assert got["success_rate"] == pytest.approx(0.5)
    assert got["avg_run_time_s"] == pytest.approx(100)
    assert set(listed(client)) == {PIPE}  # a nested function is not a pipeline
    assert client.get("/api/v1/pipelines/acme.steps.fit/metrics").status_code == 404


@pytest.mark.backends
def test_canceled_and_in_progress_runs_count_but_not_in_success_rate(client: httpx.Client) -> None:
    states = ["RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED", "CREATED", "SCHEDULED", "RAN", "RETRYING"]
    store_runs(client, [run(f"r{i}", state, T0 + i) for i, state in enumerate(states)])
    got = figures(client)
    assert got["run_count"] == 8
    assert got["success_rate"] == pytest.approx(1 / 3)
    assert got["count_by_state"] == {state: 1 for state in states}


@pytest.mark.backends
def test_cloned_runs_are_out_of_success_rate_and_run_time(client: httpx.Client) -> None:
    store_runs(
        client,
        [
            run("r1", "RESOLVED", T0, runtime=10),
            run("r2", "RESOLVED", T0 + 1, runtime=1000, original="r1"),
            run("r3", "FAILED", T0 + 2, original="r0"),
        ],
    )
    got = figures(client)
    assert got["run_count"] == 3
    assert got["success_rate"] == pytest.approx(1.0)
    assert got["avg_run_time_s"] == pytest.approx(10)


@pytest.mark.backends
def test_scheduled_then_resolved_counts_once_with_latest_state_before_merges(
    client: httpx.Client, frozen: Any
) -> None:
    store_runs(client, [run("r1", "SCHEDULED", T0, updated=T0 + 1)])
    store_runs(client, [run("r1", "RESOLVED", T0, runtime=30, updated=T0 + 40)])
    assert raw_rows(frozen) == 2  # both versions are still stored
    got = figures(client)
    assert got["run_count"] == 1
    assert got["count_by_state"] == {"RESOLVED": 1}
    assert got["success_rate"] == pytest.approx(1.0)
    assert got["avg_run_time_s"] == pytest.approx(30)
    assert listed(client)[PIPE]["run_count"] == 1


@pytest.mark.parametrize("same_batch", [False, True], ids=["separate-requests", "one-batch"])
@pytest.mark.backends
def test_an_older_update_arriving_late_never_wins(
    client: httpx.Client, frozen: Any, same_batch: bool
) -> None:
    newer = run("r1", "FAILED", T0, updated=T0 + 50)
    older = run("r1", "RAN", T0, updated=T0 + 5)
    if same_batch:
        store_runs(client, [newer, older])
    else:
        store_runs(client, [newer])
        store_runs(client, [older])
    got = figures(client)
    assert got["count_by_state"] == {"FAILED": 1}
    assert got["success_rate"] == pytest.approx(0.0)
    row = frozen.service.store.query("SELECT toString(future_state) FROM runs_latest WHERE id = 'r1'")
    assert row == [("FAILED",)]


@pytest.mark.parametrize(
    ("states", "rate", "runtime"),
    [
        (["SCHEDULED", "CANCELED"], None, None),
        (["FAILED", "RAN"], 0.0, None),
        (["RESOLVED", "CANCELED"], 1.0, 10.0),
    ],
    ids=["nothing-terminated", "no-success", "one-success"],
)
@pytest.mark.backends
def test_undefined_figures_are_null(
    client: httpx.Client, states: list[str], rate: float | None, runtime: float | None
) -> None:
    store_runs(client, [run(f"r{i}", state, T0 + i) for i, state in enumerate(states)])
    got = figures(client)
    assert got["success_rate"] == rate
    assert got["avg_run_time_s"] == runtime
    summary = listed(client)[PIPE]
    assert (summary["success_rate"], summary["avg_run_time_s"]) == (rate, runtime)


@pytest.mark.backends
def test_window_filters_on_created_at(client: httpx.Client) -> None:
    store_runs(client, [run(f"r{d}", "RESOLVED" if d % 2 else "FAILED", T0 + d * DAY) for d in range(4)])
    assert figures(client)["run_count"] == 4
    got = figures(client, from_time=T0 + DAY, to_time=T0 + 3 * DAY)  # half-open: days 1 and 2
    assert got["run_count"] == 2
    assert got["success_rate"] == pytest.approx(0.5)
    empty = figures(client, from_time=T0 + 10 * DAY, to_time=T0 + 11 * DAY)
    assert empty == {
        "function_path": PIPE,
        "run_count": 0,
        "success_rate": None,
        "avg_run_time_s": None,
        "count_by_state": {},
    }


def test_unknown_pipeline_is_404(client: httpx.Client) -> None:
    response = client.get("/api/v1/pipelines/nope.pipeline/metrics")
    assert response.status_code == 404
    assert "nope.pipeline" in response.json()["error"]


@pytest.mark.backends
def test_pipelines_newest_first_in_one_list(client: httpx.Client) -> None:
    store_runs(
        client,
        [
            run("a1", "RESOLVED", T0, path="a.old", runtime=20),
            run("a2", "RESOLVED", T0 + 3 * DAY, path="a.old", runtime=40),
            run("b1", "FAILED", T0 + 5 * DAY, path="b.new"),
            run("c1", "RAN", T0 + DAY, path="c.middle"),
        ],
    )
    response = client.get("/api/v1/pipelines")
    assert response.json() == {
        "content": [
            {
                "function_path": "b.new",
                "run_count": 1,
                "success_rate": 0.0,
                "avg_run_time_s": None,
                "last_run_at": T0 + 5 * DAY,
            },
            {
                "function_path": "a.old",
                "run_count": 2,
                "success_rate": 1.0,
                "avg_run_time_s": 30.0,
                "last_run_at": T0 + 3 * DAY,
            },
            {
                "function_path": "c.middle",
                "run_count": 1,
                "success_rate": None,
                "avg_run_time_s": None,
                "last_run_at": T0 + DAY,
            },
        ]
    }


@pytest.mark.backends
def test_rfc3339_and_epoch_times_agree(client: httpx.Client) -> None:
    record = run("r1", "RESOLVED", T0, runtime=90)
    record.update(
        created_at="2023-11-14T00:00:00Z",
        started_at="2023-11-14T00:00:01.000000",  # no offset: UTC
        resolved_at="2023-11-14T01:01:31+01:00",  # T0 + 91 s
    )
    store_runs(client, [record])
    assert figures(client)["avg_run_time_s"] == pytest.approx(90)
    assert listed(client)[PIPE]["last_run_at"] == T0


# -- Sematic's pipeline panel ---------------------------------------------------
@pytest.mark.backends
def test_run_panel_has_sematics_shape(client: httpx.Client) -> None:
    store_runs(
        client,
        [
            run("r1", "RESOLVED", T0, runtime=100),
            run("r2", "RESOLVED", T0 + 10, runtime=200),
            run("r3", "CANCELED", T0 + 20),
            run("n1", "RESOLVED", T0 + 1, root_id="r1", path="acme.steps.fit", runtime=4),
            run("n2", "RESOLVED", T0 + 11, root_id="r2", path="acme.steps.fit", runtime=8),
            run("n3", "RESOLVED", T0 + 12, root_id="r2", path="acme.steps.eval", runtime=1000, original="x"),
            run("o1", "RESOLVED", T0, path="other.pipeline", runtime=7),
        ],
    )
    expected = {
        "content": {
            "total_count": 3,
            "count_by_state": {"RESOLVED": 2, "CANCELED": 1},
            "avg_runtime_children": {PIPE: 150.0, "acme.steps.fit": 6.0},
        }
    }
    for run_id in ("r1", "n2", "r3"):
        response = client.get(f"/api/v1/runs/{run_id}/metrics")
        assert response.status_code == 200, response.text
        assert response.json() == expected


@pytest.mark.parametrize("run_id", ["missing", "orphan"], ids=["unknown-run", "root-not-stored"])
def test_run_panel_404(client: httpx.Client, run_id: str) -> None:
    store_runs(client, [run("orphan", "RAN", T0, root_id="never-stored")])
    response = client.get(f"/api/v1/runs/{run_id}/metrics")
    assert response.status_code == 404
    assert run_id in response.json()["error"]


# -- system metrics ----------------------------------------------------------------
def _two_pipelines_over_three_days() -> list[dict[str, Any]]:
    return [
        run("a1", "RESOLVED", T0 + 100, path="a.p", runtime=10),
        run("a2", "FAILED", T0 + 200, path="a.p"),
        run("a3", "RESOLVED", T0 + DAY + 100, path="a.p", runtime=30),
        run("a4", "RESOLVED", T0 + DAY + 200, path="a.p", runtime=50, original="a3"),
        run("a5", "CANCELED", T0 + 2 * DAY + 100, path="a.p"),
        run("b1", "RESOLVED", T0 + 300, path="b.p", runtime=5),
        run("b2", "RAN", T0 + 2 * DAY + 300, path="b.p"),
        run("n1", "RESOLVED", T0 + 150, path="a.p", root_id="a1", runtime=1),  # nested: not a point
    ]


@pytest.mark.parametrize(
    ("name", "metric_type", "expected"),
    [
        (
            "sematic.run_count",
            "COUNT",
            [
                [2.0, [T0, "a.p"]],
                [1.0, [T0, "b.p"]],
                [2.0, [T0 + DAY, "a.p"]],
                [1.0, [T0 + 2 * DAY, "a.p"]],
                [1.0, [T0 + 2 * DAY, "b.p"]],
            ],
        ),
        (
            "sematic.func_success_rate",
            "GAUGE",
            [[0.5, [T0, "a.p"]], [1.0, [T0, "b.p"]], [1.0, [T0 + DAY, "a.p"]]],
        ),
        (
            "sematic.func_effective_runtime",
            "GAUGE",
            [[10.0, [T0, "a.p"]], [5.0, [T0, "b.p"]], [30.0, [T0 + DAY, "a.p"]]],
        ),
    ],
    ids=["run_count", "success_rate", "effective_runtime"],
)
@pytest.mark.backends
def test_system_metrics_bucketed_by_day_with_group_by(
    client: httpx.Client, name: str, metric_type: str, expected: list[Any]
) -> None:
    store_runs(client, _two_pipelines_over_three_days())
    content = series(client, name, rollup=86400, group_by="root_function_path")
    assert content["metric_name"] == name
    assert content["metric_type"] == metric_type
    assert content["columns"] == ["timestamp", "root_function_path"]
    want = [[value, [str(ts), path]] for value, (ts, path) in expected]
    assert content["series"] == want


@pytest.mark.backends
def test_system_metrics_labels_and_root_filters(client: httpx.Client) -> None:
    store_runs(client, _two_pipelines_over_three_days())
    only_a = series(client, "sematic.run_count", labels={"function_path": "a.p"})
    assert only_a["series"] == [[5.0, []]]
    by_run = series(
        client, "sematic.func_success_rate", labels={"root_function_path": "a.p"}, group_by="run_id"
    )
    assert by_run["series"] == [[1.0, ["a1"]], [0.0, ["a2"]], [1.0, ["a3"]]]
    assert series(client, "sematic.run_count", labels={"root": False})["series"] == []
    assert series(client, "sematic.run_count", labels={"root": True})["series"] == [[7.0, []]]
    assert series(client, "sematic.run_count", labels={"__scope__": "1"})["series"] == []
    assert series(client, "sematic.run_count", labels={"run_id": "a4"})["series"] == [[1.0, []]]


@pytest.mark.backends
def test_system_metrics_are_listed_for_matching_labels(client: httpx.Client) -> None:
    store_runs(client, [*_two_pipelines_over_three_days(), run("c1", "RAN", T0, path="c.p")])

    def names(labels: dict[str, Any]) -> list[str]:
        params: dict[str, str | int] = {"labels": json.dumps(labels), "to_time": T0 + 9 * DAY}
        response = client.get("/api/v1/metrics", params=params)
        assert response.status_code == 200, response.text
        return [n for n in response.json()["content"] if n.startswith("sematic.")]

    everything = ["sematic.func_effective_runtime", "sematic.func_success_rate", "sematic.run_count"]
    assert names({}) == everything
    assert names({"function_path": "a.p"}) == everything
    assert names({"function_path": "c.p"}) == ["sematic.run_count"]
    assert names({"function_path": "zzz"}) == []


def test_system_metrics_cannot_be_deleted(client: httpx.Client) -> None:
    store_runs(client, [run("r1", "RESOLVED", T0)])
    assert client.delete("/api/v1/metrics/sematic.run_count").status_code == 400


# -- ingest rules ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "status", "fragments"),
    [
        (
            {"future_state": "DONE"},
            400,
            ["runs[1].future_state", "'DONE'", "CREATED", "NESTED_FAILED", "CANCELED"],
        ),
        ({"created_at": "yesterday"}, 400, ["runs[1].created_at", "RFC 3339"]),
        ({"updated_at": 1e12}, 400, ["runs[1].updated_at"]),
        ({"started_at": True}, 400, ["runs[1].started_at"]),
        ({"id": ""}, 400, ["runs[1].id", "empty"]),
        ({"function_path": None}, 400, ["runs[1].function_path"]),
        ({"root_id": 7}, 400, ["runs[1].root_id"]),
    ],
    ids=[
        "unknown-state",
        "bad-time",
        "time-out-of-range",
        "bool-time",
        "empty-id",
        "null-path",
        "int-root-id",
    ],
)
def test_bad_records_are_400_and_nothing_is_stored(
    client: httpx.Client, live: Any, change: dict[str, Any], status: int, fragments: list[str]
) -> None:
    records = [run("ok", "RESOLVED", T0), {**run("bad", "RESOLVED", T0 + 1), **change}]
    response = post_runs(client, records)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message
    assert raw_rows(live) == 0


def test_missing_field_and_bad_bodies_are_400(client: httpx.Client, live: Any) -> None:
    record = run("r1", "RESOLVED", T0)
    del record["updated_at"]
    response = post_runs(client, [record])
    assert response.status_code == 400
    assert "runs[0]" in response.json()["error"] and "updated_at" in response.json()["error"]
    assert post_runs(client, []).status_code == 400
    assert client.post("/api/v1/runs", content=b"{not json").status_code == 400
    assert client.post("/api/v1/runs", json={"points": []}).status_code == 400
    assert raw_rows(live) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("function_path", "acme.other"), ("root_id", "somewhere-else"), ("created_at", T0 + 5)],
    ids=["function_path", "root_id", "created_at"],
)
@pytest.mark.backends
def test_identity_fields_never_change(client: httpx.Client, live: Any, field: str, value: Any) -> None:
    store_runs(client, [run("r1", "SCHEDULED", T0, updated=T0 + 1)])
    changed = {**run("r1", "RESOLVED", T0), field: value}
    response = post_runs(client, [run("r2", "RESOLVED", T0), changed])
    assert response.status_code == 409, response.text
    assert f"runs[1].{field}" in response.json()["error"]
    versions = [run("r3", "SCHEDULED", T0), {**run("r3", "RESOLVED", T0), field: value}]
    in_one_batch = post_runs(client, versions)
    assert in_one_batch.status_code == 400
    assert f"runs[1].{field}" in in_one_batch.json()["error"]
    assert raw_rows(live) == 1


@pytest.mark.backends
def test_idempotent_retry_is_stored_once(client: httpx.Client, live: Any) -> None:
    records = [run("r1", "RESOLVED", T0), run("r2", "FAILED", T0 + 1)]
    first = post_runs(client, records, key="batch-1")
    assert first.json() == {"content": {"stored": 2, "duplicate": False}}
    retry = post_runs(client, records, key="batch-1")
    assert retry.json() == {"content": {"stored": 2, "duplicate": True}}
    assert raw_rows(live) == 2
    assert post_runs(client, records, key="batch-2").json()["content"]["duplicate"] is False
    assert raw_rows(live) == 4
    assert figures(client)["run_count"] == 2


@pytest.mark.backends
def test_concurrent_retries_store_once(live: Any) -> None:
    records = [run(f"r{i}", "RESOLVED", T0 + i) for i in range(20)]
    answers: list[dict[str, Any]] = []

    def send() -> None:
        with live.client() as c:
            answers.append(post_runs(c, records, key="same-key").json()["content"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 5
    assert all(a["stored"] == 20 for a in answers)
    assert raw_rows(live) == 20


def test_openapi_lists_pipeline_endpoints(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    for path in (
        "/api/v1/runs",
        "/api/v1/pipelines",
        "/api/v1/pipelines/{function_path}/metrics",
        "/api/v1/runs/{run_id}/metrics",
    ):
        assert path in document["paths"]
    assert "RunsBody" in document["components"]["schemas"]
    assert "RunRecord" in document["components"]["schemas"]


@pytest.mark.backends
def test_a_retry_after_a_restart_is_recognised_from_the_table(store: Any) -> None:
    body = json.dumps({"runs": [run("r1", "RESOLVED", T0), run("r2", "RAN", T0)]}).encode()
    assert RunsWriter(store).write(to_batch(decode(body), "key-1", None)).duplicate is False
    again = RunsWriter(store).write(to_batch(decode(body), "key-1", None))  # a new process's writer
    assert (again.stored, again.duplicate) == (2, True)
    assert store.query("SELECT count() FROM runs") == [(2,)]
