"""The dashboard: one HTML shell for every page, its static files, and the two
read endpoints its pages need beyond the metrics and pipelines APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sematic_metrics.errors import InvalidInputError, NotFoundError
from sematic_metrics.service.http import JSON
from sematic_metrics.service.openapi import EXTRA_PATHS
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = STATIC_DIR / "index.html"
MAX_RUNS = 500
_US = 1_000_000


def _seconds(us: int | None) -> float | None:
    return None if us is None else int(us) / _US


def recent_runs(store: Store, function_path: str, limit: int) -> list[dict[str, Any]]:
    rows = store.query(q("pipeline_recent_runs"), {"function_path": function_path, "limit": limit})
    if not rows:
        raise NotFoundError(f"pipeline {function_path!r} not found: no root run has that function_path")
    runs = []
    for run_id, name, state, original, created_us, started_us, ended_us in rows:
        duration = None
        if started_us is not None and ended_us is not None:
            duration = (int(ended_us) - int(started_us)) / _US
        runs.append(
            {
                "id": run_id,
                "name": name,
                "future_state": state,
                "original_run_id": original,
                "created_at": _seconds(created_us),
                "started_at": _seconds(started_us),
                "ended_at": _seconds(ended_us),
                "duration_s": duration,
            }
        )
    return runs


def run_record(store: Store, run_id: str) -> dict[str, Any]:
    rows = store.query(q("run_record"), {"run_id": run_id})
    if not rows:
        raise NotFoundError(f"run {run_id!r} not found: no run record was posted with that id")
    (rid, root_id, parent_id, function_path, name, state, original, *times) = rows[0]
    root_path = function_path
    if root_id != rid:
        root = store.query(q("run_record"), {"run_id": root_id})
        root_path = root[0][3] if root else None
    record: dict[str, Any] = {
        "id": rid,
        "root_id": root_id,
        "parent_id": parent_id,
        "function_path": function_path,
        "root_function_path": root_path,
        "name": name,
        "future_state": state,
        "original_run_id": original,
    }
    for key, us in zip(
        ("created_at", "started_at", "resolved_at", "failed_at", "ended_at", "updated_at"), times, strict=True
    ):
        record[key] = _seconds(us)
    return record


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
        raise InvalidInputError(f"limit: {raw[:20]!r} is not a whole number from 1 to {MAX_RUNS}")
    return int(raw)


async def page(request: Request) -> Response:
    return FileResponse(INDEX, headers={"Cache-Control": "no-cache"})


async def pipeline_runs(request: Request) -> Response:
    store = request.app.state.service.store
    limit = _limit(request.query_params.get("limit"))
    function_path = request.path_params["function_path"]
    runs = await run_in_threadpool(recent_runs, store, function_path, limit)
    return JSON({"content": runs})


async def get_run(request: Request) -> Response:
    store = request.app.state.service.store
    record = await run_in_threadpool(run_record, store, request.path_params["run_id"])
    return JSON({"content": record})


ROUTES: list[BaseRoute] = [
    Route("/", page, methods=["GET"]),
    Route("/pipelines/{function_path:path}", page, methods=["GET"]),
    Route("/runs/{run_id:path}", page, methods=["GET"]),
    Route("/api/v1/pipelines/{function_path:path}/runs", pipeline_runs, methods=["GET"]),
    Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
]

_ERR = {
    "description": "Error with a message",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_TIME = {"type": ["number", "null"], "description": "epoch seconds"}
EXTRA_PATHS["/api/v1/pipelines/{function_path}/runs"] = {
    "get": {
        "summary": "A pipeline's most recent root runs, newest first (dashboard)",
        "parameters": [
            {"name": "function_path", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS, "default": 50},
            },
        ],
        "responses": {
            "200": {
                "description": "content: runs with id, name, future_state, original_run_id, created_at, "
                "started_at, ended_at (epoch seconds) and duration_s (null while in progress)",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "content": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "string"},
                                            "name": {"type": "string"},
                                            "future_state": {"type": "string"},
                                            "original_run_id": {"type": ["string", "null"]},
                                            "created_at": _TIME,
                                            "started_at": _TIME,
                                            "ended_at": _TIME,
                                            "duration_s": {"type": ["number", "null"]},
                                        },
                                    },
                                }
                            },
                        }
                    }
                },
            },
            "400": _ERR,
            "401": _ERR,
            "404": _ERR,
        },
    }
}
EXTRA_PATHS["/api/v1/runs/{run_id}"] = {
    "get": {
        "summary": "The latest state of one run, with its pipeline's root_function_path (dashboard)",
        "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {
                "description": "content: the run record; times in epoch seconds",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "401": _ERR,
            "404": _ERR,
        },
    }
}
