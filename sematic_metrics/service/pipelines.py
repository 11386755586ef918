"""Pipeline statistics: runs ingest, per-pipeline figures, Sematic's pipeline
panel and the system metrics sematic.run_count, sematic.func_success_rate and
sematic.func_effective_runtime.

Every figure is computed by the views in schema/11x_*.sql over the runs table;
Python only picks the query and shapes the JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import NotFoundError
from sematic_metrics.service import openapi
from sematic_metrics.service import series as queries
from sematic_metrics.service.http import idempotency_key, read_body, require_json, user_of
from sematic_metrics.service.points_body import MAX_TIME, MIN_TIME
from sematic_metrics.service.runs_body import STATES, RunsBody, RunsResult, RunsWriter, decode, to_batch
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store
from sematic_metrics.wire import ENCODER

if TYPE_CHECKING:
    from sematic_metrics.service.app import Service

_US = 1_000_000
_ALL_TIME = {"from_us": int(MIN_TIME) * _US, "to_us": int(MAX_TIME) * _US}
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


class RunPanel(msgspec.Struct):
    total_count: int
    count_by_state: dict[str, int]
    avg_runtime_children: dict[str, float]


class RunPanelResponse(msgspec.Struct):
    """``GET /api/v1/runs/{run_id}/metrics``: Sematic's pipeline panel."""

    content: RunPanel


class RunsResponse(msgspec.Struct):
    """``POST /api/v1/runs``: how many records were stored, or that the request was a retry."""

    content: RunsResult


def _json(value: Any) -> Response:
    return Response(ENCODER.encode(value), media_type="application/json")


# -- figures (the SQL does the work) ----------------------------------------
def list_pipelines(store: Store) -> PipelineList:
    columns = store.query_columns(q("pipelines_list"))
    return PipelineList(
        [
            PipelineSummary(str(path), int(count), rate, runtime, int(last_us) / _US)
            for path, count, rate, runtime, last_us in zip(*columns, strict=True)
        ]
    )


def pipeline_metrics(store: Store, function_path: str, from_us: int, to_us: int) -> PipelineMetrics:
    """Figures of one pipeline's root runs created in ``[from_us, to_us)``."""
    params = {"function_path": function_path, "from_us": from_us, "to_us": to_us}
    rows = store.query(q("pipeline_window"), params) if from_us < to_us else []
    if rows:
        count, rate, runtime, by_state = rows[0]
        return PipelineMetrics(function_path, int(count), rate, runtime, _counts(by_state))
    if not store.query(q("pipeline_known"), {"function_path": function_path}):
        raise NotFoundError(
            f"pipeline {function_path!r} not found: no root run with that function_path was stored"
        )
    return PipelineMetrics(function_path, 0, None, None, {})


def run_panel(store: Store, run_id: str) -> RunPanel:
    """Sematic's pipeline panel for the pipeline of a run's root run."""
    found = {str(row[0]): row for row in store.query(q("run_lookup"), {"run_id": run_id})}
    run = found.get(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} not found: no record of it was stored through POST /api/v1/runs")
    root = found.get(str(run[1]))
    if root is None:
        raise NotFoundError(
            f"run {run_id!r}: its root run {run[1]!r} was never stored, so its pipeline is unknown; "
            "send the root run to POST /api/v1/runs"
        )
    path = str(root[2])
    stats = store.query(q("pipeline_window"), {"function_path": path, **_ALL_TIME})
    runtimes = store.query(q("pipeline_function_runtimes"), {"function_path": path})
    count, _, _, by_state = stats[0] if stats else (0, None, None, {})
    return RunPanel(int(count), _counts(by_state), {str(p): float(s) for p, s in runtimes})


def _counts(by_state: dict[str, int]) -> dict[str, int]:
    return {state: int(by_state[state]) for state in STATES if state in by_state}


# -- system metrics -----------------------------------------------------------
def _series_fn(metric: str, type_name: str) -> queries.SeriesFn:
    def series(
        store: Store, name: str, flt: queries.MetricsFilter, group_by: list[str], rollup: queries.Rollup
    ) -> dict[str, Any]:
        extra = {"metric": metric}
        sql = (q("pipeline_series"), q("pipeline_series_extents"))
        return queries.run_series(store, sql, extra, type_name, name, flt, group_by, rollup)

    return series


def _names_fn(metric: str) -> Callable[[Store, queries.MetricsFilter], bool]:
    def has_points(store: Store, flt: queries.MetricsFilter) -> bool:
        if flt.from_us >= flt.to_us:
            return False
        return bool(store.query(q("pipeline_points_any"), {"metric": metric, **flt.params()}))

    return has_points


for _name, (_metric, _type) in SYSTEM_METRICS.items():
    queries.SYSTEM_SERIES[_name] = _series_fn(_metric, _type)
    queries.SYSTEM_NAMES[_name] = _names_fn(_metric)


# -- HTTP -----------------------------------------------------------------------
def _service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


_WRITER_LOCK = threading.Lock()


def _writer(request: Request) -> RunsWriter:
    """One runs writer per app, created on first use."""
    state = request.app.state
    with _WRITER_LOCK:
        writer: RunsWriter | None = getattr(state, "runs_writer", None)
        if writer is None:
            writer = RunsWriter(_service(request).store)
            state.runs_writer = writer
    return writer


async def post_runs(request: Request) -> Response:
    svc = _service(request)
    require_json(request)
    key = idempotency_key(request)
    body = await read_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout_s)
    writer = _writer(request)
    user = user_of(request)

    def store_body() -> RunsResult:
        return writer.write(to_batch(decode(body), key, user))

    return _json(RunsResponse(await run_in_threadpool(store_body)))


async def get_pipelines(request: Request) -> Response:
    return _json(await run_in_threadpool(list_pipelines, _service(request).store))


async def get_pipeline_metrics(request: Request) -> Response:
    params = request.query_params
    window = queries.parse_filter({k: params[k] for k in ("from_time", "to_time") if k in params})
    path = request.path_params["function_path"]
    store = _service(request).store
    figures = await run_in_threadpool(pipeline_metrics, store, path, window.from_us, window.to_us)
    return _json(PipelineMetricsResponse(figures))


async def get_run_metrics(request: Request) -> Response:
    panel = await run_in_threadpool(run_panel, _service(request).store, request.path_params["run_id"])
    return _json(RunPanelResponse(panel))


ROUTES: list[BaseRoute] = [
    Route("/api/v1/runs", post_runs, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/metrics", get_run_metrics, methods=["GET"]),
    Route("/api/v1/pipelines", get_pipelines, methods=["GET"]),
    Route("/api/v1/pipelines/{function_path:path}/metrics", get_pipeline_metrics, methods=["GET"]),
]


# -- OpenAPI ----------------------------------------------------------------------
openapi.EXTRA_PATHS.update(
    {
        "/api/v1/runs": {
            "post": {
                "summary": "Store run records (batch upsert; the latest updated_at wins)",
                "description": (
                    "All or nothing. Times are epoch seconds or RFC 3339 strings. An Idempotency-Key "
                    "header makes a retried batch store once. id, root_id, function_path and "
                    "created_at never change between versions of a run (409 otherwise). "
                    f"States: {', '.join(STATES)}."
                ),
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 256},
                    }
                ],
                "requestBody": {"required": True, **openapi.schema_ref("RunsBody")},
                "responses": openapi.answers("RunsResponse", 400, 401, 403, 409, 413, 415, 503),
            }
        },
        "/api/v1/pipelines": {
            "get": {
                "summary": "Every pipeline: run count, success rate, average run time, last run time",
                "responses": openapi.answers("PipelineList", 401),
            }
        },
        "/api/v1/pipelines/{function_path}/metrics": {
            "get": {
                "summary": "One pipeline's figures over the root runs created in [from_time, to_time)",
                "parameters": [
                    {"name": "function_path", "in": "path", "required": True, "schema": {"type": "string"}},
                    *openapi.WINDOW_PARAMS,
                ],
                "responses": openapi.answers("PipelineMetricsResponse", 400, 401, 404),
            }
        },
        "/api/v1/runs/{run_id}/metrics": {
            "get": {
                "summary": "Sematic's pipeline panel for the pipeline of the run's root run",
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": openapi.answers("RunPanelResponse", 401, 404),
            }
        },
    }
)
openapi.EXTRA_SCHEMAS.extend(
    [RunsBody, RunsResponse, PipelineList, PipelineMetricsResponse, RunPanelResponse]
)
