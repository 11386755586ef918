"""Runs: ``POST /api/v1/runs`` (run records in), Sematic's pipeline panel
``GET /api/v1/runs/{run_id}/metrics``, and one run's latest record
``GET /api/v1/runs/{run_id}/record`` for the dashboard.

``GET /api/v1/runs/{run_id}`` itself belongs to Sematic (upstream mode
forwards it), so the record lives under ``/record``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import NotFoundError
from sematic_metrics.rules import MAX_TIME_US, MIN_TIME_US
from sematic_metrics.rules import US_PER_S as _US
from sematic_metrics.service import openapi
from sematic_metrics.service._body import idempotency_key, read_body
from sematic_metrics.service.auth import user_of
from sematic_metrics.service.core import service_of
from sematic_metrics.service.pipelines import counts_by_state, run_status
from sematic_metrics.service.responses import JSON
from sematic_metrics.service.runs_body import STATES, RunsBody, RunsResult, decode, to_batch
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

_ALL_TIME = {"from_us": MIN_TIME_US, "to_us": MAX_TIME_US}
_TIMES = ("created_at", "started_at", "resolved_at", "failed_at", "ended_at", "updated_at")


class RunsResponse(msgspec.Struct):
    """``POST /api/v1/runs``: how many records were stored, or that the request was a retry."""

    content: RunsResult


class RunPanel(msgspec.Struct):
    total_count: int
    count_by_state: dict[str, int]
    avg_runtime_children: dict[str, float]


class RunPanelResponse(msgspec.Struct):
    """``GET /api/v1/runs/{run_id}/metrics``: Sematic's pipeline panel."""

    content: RunPanel


def run_panel(store: Store, run_id: str) -> RunPanel:
    """Sematic's pipeline panel for the pipeline of a run's root run."""
    found = {str(row["id"]): row for row in store.rows(q("run_lookup"), {"run_id": run_id})}
    run = found.get(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} not found: no record of it was stored through POST /api/v1/runs")
    root = found.get(str(run["root_id"]))
    if root is None:
        raise NotFoundError(
            f"run {run_id!r}: its root run {run['root_id']!r} was never stored, so its pipeline is unknown; "
            "send the root run to POST /api/v1/runs"
        )
    path = str(root["function_path"])
    stats = store.rows(q("pipeline_window"), {"function_path": path, **_ALL_TIME})
    runtimes = store.rows(q("pipeline_function_runtimes"), {"function_path": path})
    count, by_state = (stats[0]["run_count"], stats[0]["count_by_state"]) if stats else (0, {})
    return RunPanel(
        int(count),
        counts_by_state(by_state),
        {str(r["function_path"]): float(r["avg_run_time_s"]) for r in runtimes},
    )


def _seconds(us: int | None) -> float | None:
    return None if us is None else int(us) / _US


def run_record(store: Store, run_id: str) -> dict[str, Any]:
    """The latest version of a run, with its pipeline's root_function_path."""
    rows = store.rows(q("run_record"), {"run_id": run_id})
    if not rows:
        raise NotFoundError(f"run {run_id!r} not found: no run record was posted with that id")
    row = rows[0]
    root_path = row["function_path"]
    if row["root_id"] != row["id"]:
        root = store.rows(q("run_record"), {"run_id": row["root_id"]})
        root_path = root[0]["function_path"] if root else None
    record: dict[str, Any] = {
        "id": row["id"],
        "root_id": row["root_id"],
        "parent_id": row["parent_id"],
        "function_path": row["function_path"],
        "root_function_path": root_path,
        "name": row["name"],
        "future_state": row["state"],
        "original_run_id": row["original_run_id"],
    }
    for key in _TIMES:
        record[key] = _seconds(row[key.replace("_at", "_us")])
    record["status"], record["in_progress"] = run_status(str(row["state"]))
    return record


async def post_runs(request: Request) -> Response:
    svc = service_of(request)
    key = idempotency_key(request)
    body = await read_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout_s)
    user = user_of(request)

    def store_body() -> RunsResult:
        return svc.runs_writer.write(to_batch(decode(body), key, user))

    return JSON(RunsResponse(await run_in_threadpool(store_body)))


async def get_run_metrics(request: Request) -> Response:
    panel = await run_in_threadpool(run_panel, service_of(request).store, request.path_params["run_id"])
    return JSON(RunPanelResponse(panel))


async def get_run_record(request: Request) -> Response:
    record = await run_in_threadpool(run_record, service_of(request).store, request.path_params["run_id"])
    return JSON({"content": record})


ROUTES: list[BaseRoute] = [
    Route("/api/v1/runs", post_runs, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/metrics", get_run_metrics, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/record", get_run_record, methods=["GET"]),
]
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
OPENAPI_SCHEMAS: list[type] = [RunsBody, RunsResponse, RunPanelResponse]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/runs": {
        "post": {
            "summary": "Store run records (batch upsert; the latest updated_at wins)",
            "description": (
                "All or nothing. Times are epoch seconds or RFC 3339 strings. An Idempotency-Key "
                "header makes a retried batch store once. id, root_id, function_path and "
                "created_at never change between versions of a run (409 otherwise). "
                f"States: {', '.join(STATES)}."
            ),
            "parameters": [openapi.IDEMPOTENCY_KEY],
            "requestBody": {"required": True, **openapi.schema_ref("RunsBody")},
            "responses": openapi.answers("RunsResponse", 400, 401, 403, 409, 413, 415, 503),
        }
    },
    "/api/v1/runs/{run_id}/metrics": {
        "get": {
            "summary": "Sematic's pipeline panel for the pipeline of the run's root run",
            "parameters": [_RUN_ID],
            "responses": openapi.answers("RunPanelResponse", 401, 404),
        }
    },
    "/api/v1/runs/{run_id}/record": {
        "get": {
            "summary": "The latest state of one run, with its pipeline's root_function_path",
            "parameters": [_RUN_ID],
            "responses": {
                "200": {
                    "description": (
                        "content: the run record; times in epoch seconds; status names the "
                        "state for people (SCHEDULED and RAN are running) and in_progress says "
                        "whether the run has yet to reach a terminal state"
                    ),
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **openapi.errors(401, 404),
            },
        }
    },
}
