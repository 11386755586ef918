"""Sematic's metrics API: store points (``POST /api/v1/metrics``, Sematic's
form and the compact form), list names, read a series, delete points, and
Sematic's post-save notification ``POST /api/v1/events/metrics/update``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.service import _names, openapi
from sematic_metrics.service import series as queries
from sematic_metrics.service._body import idempotency_key, read_body
from sematic_metrics.service.auth import user_of
from sematic_metrics.service.core import service_of
from sematic_metrics.service.points_body import decode, to_table
from sematic_metrics.service.responses import JSON, encode
from sematic_metrics.wire import IngestBody


async def metrics_update_event(request: Request) -> Response:
    # Sematic's client posts its saved points here to notify dashboards; the
    # points were already stored by POST /api/v1/metrics.
    svc = service_of(request)
    await read_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout_s)
    return JSON({})


async def post_metrics(request: Request) -> Response:
    svc = service_of(request)
    key = idempotency_key(request)
    body = await read_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout_s)
    table = to_table(decode(body), key, user_of(request))
    result = await svc.writer.submit(table, key)
    return JSON({"content": {"stored": result.stored, "duplicate": result.duplicate}})


async def list_metrics(request: Request) -> Response:
    svc = service_of(request)
    flt = queries.parse_filter(request.query_params)
    names = await run_in_threadpool(_names.names, svc.store, flt, svc.system_metrics)
    return JSON({"content": names})


async def get_metric(request: Request) -> Response:
    svc = service_of(request)
    params = request.query_params
    flt = queries.parse_filter(params)
    group_by = queries.parse_group_by(params.get("group_by"))
    rollup = queries.parse_rollup(params.get("rollup"))
    name = request.path_params["name"]
    # Kept like /api/v1/series answers (series cache). Without to_time the
    # window ends now, a new key each time: such an answer is kept without
    # its end, once no matching point lay at or after it (a later point bumps
    # the version before it is acknowledged).
    to_given = bool(params.get("to_time"))
    window = (flt.from_us, flt.to_us if to_given else None)
    key = ("metrics", name, tuple(flt.filters.items()), flt.root, tuple(group_by), rollup, window)
    version = svc.store.version(name) if name not in svc.system_metrics else None
    body = svc.series_cache.get(key, version)
    if body is None:
        content, holds = await run_in_threadpool(
            queries.series, svc.store, svc.catalog, name, flt, group_by, rollup, svc.system_metrics
        )
        body = encode({"content": content})
        if to_given or holds:
            svc.series_cache.put(key, version, body)
    return Response(body, media_type=JSON.media_type)


async def delete_metric(request: Request) -> Response:
    svc = service_of(request)
    flt = queries.parse_filter(request.query_params)
    name = request.path_params["name"]
    deleted = await run_in_threadpool(queries.delete, svc.store, svc.catalog, name, flt, svc.system_metrics)
    return JSON({"content": {"deleted": deleted}})


ROUTES: list[BaseRoute] = [
    Route("/api/v1/events/metrics/update", metrics_update_event, methods=["POST"]),
    Route("/api/v1/metrics", post_metrics, methods=["POST"]),
    Route("/api/v1/metrics", list_metrics, methods=["GET"]),
    Route("/api/v1/metrics/{name:path}", get_metric, methods=["GET"]),
    Route("/api/v1/metrics/{name:path}", delete_metric, methods=["DELETE"]),
]
OPENAPI_SCHEMAS: list[type] = [IngestBody]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/events/metrics/update": {
        "post": {
            "summary": "Sematic's live notification after a save; accepted and ignored",
            "requestBody": {"content": {"application/json": {"schema": openapi.OBJECT}}},
            "responses": {"200": openapi.ok(openapi.OBJECT), **openapi.errors(401, 413)},
        }
    },
    "/api/v1/metrics": {
        "post": {
            "summary": "Store metric points (Sematic's form or the compact form)",
            "description": (
                "All or nothing. An Idempotency-Key header makes a retried batch store once. "
                "Answered after the points are stored. Non-finite values: null, 'NaN', "
                "'Infinity', '-Infinity', or the bare JSON tokens NaN / Infinity."
            ),
            "parameters": [openapi.IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestBody"}}},
            },
            "responses": {
                "200": openapi.ok(openapi.OBJECT, "Stored"),
                **openapi.errors(400, 401, 403, 409, 413, 415, 503),
            },
        },
        "get": {
            "summary": "Names of metrics with at least one point matching the labels",
            "parameters": openapi.FILTER_PARAMS,
            "responses": {"200": openapi.ok(openapi.OBJECT), **openapi.errors(400, 401)},
        },
    },
    "/api/v1/metrics/{name}": {
        "get": {
            "summary": "A metric's aggregated series",
            "parameters": [
                openapi.NAME_PARAM,
                *openapi.FILTER_PARAMS,
                {
                    "name": "group_by",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Comma list of run_id, function_path, root_id, root_function_path",
                },
                {
                    "name": "rollup",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Seconds per bucket (integer) or auto; absent: one value per group",
                },
            ],
            "responses": {"200": openapi.ok(openapi.OBJECT), **openapi.errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Delete the metric's points matching the filter",
            "parameters": [openapi.NAME_PARAM, *openapi.FILTER_PARAMS],
            "responses": {"200": openapi.ok(openapi.OBJECT), **openapi.errors(400, 401, 403, 404)},
        },
    },
}
