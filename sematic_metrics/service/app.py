"""The HTTP service: Sematic's metrics API plus our own endpoints."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import SematicMetricsError
from sematic_metrics.service import dashboard, pipelines, sqlapi, stream
from sematic_metrics.service import series as queries
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.config import Settings
from sematic_metrics.service.http import (
    JSON,
    AuthMiddleware,
    error_response,
    idempotency_key,
    read_body,
    require_json,
    user_of,
)
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.openapi import openapi_document
from sematic_metrics.service.points_body import decode, to_table
from sematic_metrics.service.points_writer import Writer
from sematic_metrics.service.store import Store

log = logging.getLogger(__name__)
SEMATIC_SERVER_VERSION = [0, 41, 0]
MIN_CLIENT_SUPPORTED = [0, 30, 0]


class Service:
    """Everything a request handler needs, built once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.catalog = Catalog(self.store)
        self.writer = Writer(self.store, self.catalog, settings.commit_max_points)
        self.hub = stream.Hub(self.store)
        self.writer.listeners.append(self.hub.on_table)

    async def start(self) -> None:
        await run_in_threadpool(self.store.open)
        try:
            await run_in_threadpool(migrate, self.store)
            await run_in_threadpool(self.catalog.load)
        except Exception:
            self.store.close()
            raise
        self.writer.start()
        self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        await self.writer.stop()
        self.store.close()


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def healthz(request: Request) -> Response:
    ok = await run_in_threadpool(service(request).store.ping)
    if ok:
        return JSON({"status": "ok"})
    return JSON({"status": "unavailable", "error": "the ClickHouse store is not answering"}, 503)


async def versions(request: Request) -> Response:
    return JSON({"server": SEMATIC_SERVER_VERSION, "min_client_supported": MIN_CLIENT_SUPPORTED})


async def metrics_update_event(request: Request) -> Response:
    # Sematic's client posts its saved points here to notify dashboards; the
    # points were already stored by POST /api/v1/metrics.
    await read_body(
        request, service(request).settings.max_body_bytes, service(request).settings.body_timeout_s
    )
    return JSON({})


async def post_metrics(request: Request) -> Response:
    svc = service(request)
    require_json(request)
    key = idempotency_key(request)
    body = await read_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout_s)
    decoded = decode(body)
    table = to_table(decoded, key, user_of(request))
    result = await svc.writer.submit(table, key)
    return JSON({"content": {"stored": result.stored, "duplicate": result.duplicate}})


async def list_metrics(request: Request) -> Response:
    svc = service(request)
    flt = queries.parse_filter(request.query_params)
    names = await run_in_threadpool(queries.names, svc.store, flt)
    return JSON({"content": names})


async def get_metric(request: Request) -> Response:
    svc = service(request)
    params = request.query_params
    flt = queries.parse_filter(params)
    group_by = queries.parse_group_by(params.get("group_by"))
    rollup = queries.parse_rollup(params.get("rollup"))
    name = request.path_params["name"]
    content = await run_in_threadpool(queries.series, svc.store, svc.catalog, name, flt, group_by, rollup)
    return JSON({"content": content})


async def delete_metric(request: Request) -> Response:
    svc = service(request)
    flt = queries.parse_filter(request.query_params)
    name = request.path_params["name"]
    deleted = await run_in_threadpool(queries.delete, svc.store, svc.catalog, name, flt)
    return JSON({"content": {"deleted": deleted}})


async def openapi(request: Request) -> Response:
    return JSON(openapi_document())


async def handle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SematicMetricsError)
    if exc.status_code >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(exc)


ROUTES: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/meta/versions", versions, methods=["GET"]),
    Route("/api/v1/events/metrics/update", metrics_update_event, methods=["POST"]),
    Route("/api/v1/metrics", post_metrics, methods=["POST"]),
    Route("/api/v1/metrics", list_metrics, methods=["GET"]),
    Route("/api/v1/metrics/{name:path}", get_metric, methods=["GET"]),
    Route("/api/v1/metrics/{name:path}", delete_metric, methods=["DELETE"]),
    *sqlapi.ROUTES,
    *pipelines.ROUTES,
]


def create_app(settings: Settings | None = None, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    svc = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await svc.start()
        try:
            yield {}
        finally:
            await svc.stop()

    app = Starlette(
        routes=[*ROUTES, *dashboard.ROUTES, *stream.ROUTES, *(extra_routes or [])],
        middleware=[Middleware(AuthMiddleware, keys=settings.api_keys)],
        exception_handlers={SematicMetricsError: handle_error},
        lifespan=lifespan,
    )
    app.state.service = svc
    return app
