"""Pipelines: per-pipeline figures (run count, success rate, average run
time), a pipeline's recent runs, and the providers of Sematic's system
metrics sematic.run_count, sematic.func_success_rate and
sematic.func_effective_runtime.

Every figure is computed by the pipeline views in schema/ over the runs
table; Python only picks the query and shapes the JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import InvalidInputError, NotFoundError
from sematic_metrics.rules import TERMINAL_STATES
from sematic_metrics.rules import US_PER_S as _US
from sematic_metrics.service import openapi
from sematic_metrics.service import series as queries
from sematic_metrics.service.core import service_of
from sematic_metrics.service.responses import JSON
from sematic_metrics.service.runs_body import STATES
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

MAX_RUNS = 500
# How the dashboard names a run's state: Sematic's SCHEDULED and RAN mean the
# function is executing or waiting on its nested runs, so the run is running.
RUN_STATUS = {
    "CREATED": "created",
    "SCHEDULED": "running",
    "RAN": "running",
    "RETRYING": "retrying",
    "RESOLVED": "resolved",
    "FAILED": "failed",
    "NESTED_FAILED": "failed",
    "CANCELED": "canceled",
}


def run_status(state: str) -> tuple[str, bool]:
    """A state's name for people, and whether the run is still in progress."""
    return RUN_STATUS.get(state, state.lower()), state not in TERMINAL_STATES


# Sematic's system metric name -> (pipeline_points metric, metric type)
SYSTEM_METRICS = {
    "sematic.run_count": ("run_count", "COUNT"),
    "sematic.func_success_rate": ("func_success_rate", "GAUGE"),
    "sematic.func_effective_runtime": ("func_effective_runtime", "GAUGE"),
}


class PipelineSummary(msgspec.Struct):
    function_path: str
    run_count: int
    success_rate: float | None
    avg_run_time_s: float | None
    last_run_at: float  # epoch seconds: the newest created_at of its root runs


class PipelineList(msgspec.Struct):
    """``GET /api/v1/pipelines``: every pipeline, the most recently run first."""

    content: list[PipelineSummary]


class PipelineMetrics(msgspec.Struct):
    function_path: str
    run_count: int
    success_rate: float | None
    avg_run_time_s: float | None
    count_by_state: dict[str, int]


class PipelineMetricsResponse(msgspec.Struct):
    """``GET /api/v1/pipelines/{function_path}/metrics``."""

    content: PipelineMetrics


class RecentRun(msgspec.Struct):
    id: str
    name: str | None
    future_state: str
    original_run_id: str | None
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    duration_s: float | None  # null while in progress
    status: str = ""  # the state as people say it: running, failed, ...
    in_progress: bool = False  # not yet in a terminal state


class RecentRuns(msgspec.Struct):
    """``GET /api/v1/pipelines/{function_path}/runs``: root runs, newest first."""

    content: list[RecentRun]


# -- figures (the SQL does the work) ----------------------------------------
def list_pipelines(store: Store) -> PipelineList:
    c = store.columns(q("pipelines_list"))
    columns = (c["function_path"], c["run_count"], c["success_rate"], c["avg_run_time_s"], c["last_run_us"])
    return PipelineList(
        [
            PipelineSummary(str(path), int(count), rate, runtime, int(last_us) / _US)
            for path, count, rate, runtime, last_us in zip(*columns, strict=True)
        ]
    )


def pipeline_metrics(store: Store, function_path: str, from_us: int, to_us: int) -> PipelineMetrics:
    """Figures of one pipeline's root runs created in ``[from_us, to_us)``."""
    params = {"function_path": function_path, "from_us": from_us, "to_us": to_us}
    rows = store.rows(q("pipeline_window"), params) if from_us < to_us else []
    if rows:
        row = rows[0]
        return PipelineMetrics(
            function_path,
            int(row["run_count"]),
            row["success_rate"],
            row["avg_run_time_s"],
            counts_by_state(row["count_by_state"]),
        )
    if not store.rows(q("pipeline_known"), {"function_path": function_path}):
        raise NotFoundError(
            f"pipeline {function_path!r} not found: no root run with that function_path was stored"
        )
    return PipelineMetrics(function_path, 0, None, None, {})


def counts_by_state(by_state: dict[str, int]) -> dict[str, int]:
    return {state: int(by_state[state]) for state in STATES if state in by_state}


def _seconds(us: int | None) -> float | None:
    return None if us is None else int(us) / _US


def recent_runs(store: Store, function_path: str, limit: int) -> RecentRuns:
    rows = store.rows(q("pipeline_recent_runs"), {"function_path": function_path, "limit": limit})
    if not rows:
        raise NotFoundError(f"pipeline {function_path!r} not found: no root run has that function_path")
    runs = []
    for row in rows:
        started_us, ended_us = row["started_us"], row["ended_us"]
        duration = None
        if started_us is not None and ended_us is not None:
            duration = (int(ended_us) - int(started_us)) / _US
        runs.append(
            RecentRun(
                str(row["run_id"]),
                row["name"],
                str(row["state"]),
                row["original_run_id"],
                _seconds(row["created_us"]),
                _seconds(started_us),
                _seconds(ended_us),
                duration,
                *run_status(str(row["state"])),
            )
        )
    return RecentRuns(runs)


# -- system metrics -----------------------------------------------------------
def _series_fn(metric: str, type_name: str) -> queries.SeriesFn:
    def series(
        store: Store, name: str, flt: queries.MetricsFilter, group_by: list[str], rollup: queries.Rollup
    ) -> dict[str, Any]:
        extra = {"metric": metric}
        sql = (q("pipeline_series"), q("pipeline_series_extents"))
        return queries.run_series(store, sql, extra, type_name, name, flt, group_by, rollup)

    return series


# The labels a system metric point has a value for; its scope and labels map
# are empty and its run_id is its root_id (definitions/113_pipeline_points.sql).
_SYSTEM_LABELS = frozenset({"run_id", "root_id", "function_path", "root_function_path", "user_id"})


def matches_no_system_point(flt: queries.MetricsFilter) -> bool:
    """Whether ``flt`` matches no point of pipeline_points, known without a
    query (the dashboard asks for names at run and pipeline scope)."""
    if flt.from_us >= flt.to_us or flt.root == 0:
        return True
    return any(value != "" for key, value in flt.filters.items() if key not in _SYSTEM_LABELS)


def system_names_with_points(store: Store, flt: queries.MetricsFilter) -> frozenset[str]:
    """The system metrics with a point matching ``flt``, from one read of the
    runs (a query per metric cost about 30 ms each in a names request)."""
    if matches_no_system_point(flt):
        return frozenset()
    found = {str(m) for m in store.columns(q("pipeline_points_present"), flt.params())["metric"]}
    return frozenset(name for name, (metric, _type) in SYSTEM_METRICS.items() if metric in found)


def system_metrics() -> dict[str, queries.SystemMetric]:
    """Providers of Sematic's system metrics, computed from runs; the Service owns them."""
    return {
        name: queries.SystemMetric(_series_fn(metric, type_name), system_names_with_points)
        for name, (metric, type_name) in SYSTEM_METRICS.items()
    }


# -- HTTP -----------------------------------------------------------------------
def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
        raise InvalidInputError(f"limit: {raw[:20]!r} is not a whole number from 1 to {MAX_RUNS}")
    return int(raw)


async def get_pipelines(request: Request) -> Response:
    return JSON(await run_in_threadpool(list_pipelines, service_of(request).store))


async def get_pipeline_metrics(request: Request) -> Response:
    params = request.query_params
    window = queries.parse_filter({k: params[k] for k in ("from_time", "to_time") if k in params})
    path = request.path_params["function_path"]
    store = service_of(request).store
    figures = await run_in_threadpool(pipeline_metrics, store, path, window.from_us, window.to_us)
    return JSON(PipelineMetricsResponse(figures))


async def get_pipeline_runs(request: Request) -> Response:
    limit = _limit(request.query_params.get("limit"))
    store = service_of(request).store
    runs = await run_in_threadpool(recent_runs, store, request.path_params["function_path"], limit)
    return JSON(runs)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/pipelines", get_pipelines, methods=["GET"]),
    Route("/api/v1/pipelines/{function_path:path}/metrics", get_pipeline_metrics, methods=["GET"]),
    Route("/api/v1/pipelines/{function_path:path}/runs", get_pipeline_runs, methods=["GET"]),
]
_PATH_PARAM = {"name": "function_path", "in": "path", "required": True, "schema": {"type": "string"}}
OPENAPI_SCHEMAS: list[type] = [PipelineList, PipelineMetricsResponse, RecentRuns]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/pipelines": {
        "get": {
            "summary": "Every pipeline: run count, success rate, average run time, last run time",
            "responses": openapi.answers("PipelineList", 401),
        }
    },
    "/api/v1/pipelines/{function_path}/metrics": {
        "get": {
            "summary": "One pipeline's figures over the root runs created in [from_time, to_time)",
            "parameters": [_PATH_PARAM, *openapi.WINDOW_PARAMS],
            "responses": openapi.answers("PipelineMetricsResponse", 400, 401, 404),
        }
    },
    "/api/v1/pipelines/{function_path}/runs": {
        "get": {
            "summary": "A pipeline's most recent root runs, newest first",
            "parameters": [
                _PATH_PARAM,
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS, "default": 50},
                },
            ],
            "responses": openapi.answers("RecentRuns", 400, 401, 404),
        }
    },
}
