"""``create_app``: the service assembled explicitly.

The Service (core.py) owns everything with state. Each resource module
exposes ``ROUTES``, ``OPENAPI_PATHS`` and ``OPENAPI_SCHEMAS``; this module puts
them together with the auth middleware and the error handlers. Nothing
registers itself at import time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from sematic_metrics.errors import SematicMetricsError
from sematic_metrics.service import (
    dashboard,
    meta,
    metrics,
    openapi,
    pipelines,
    runs,
    series_api,
    sqlapi,
    stream,
    upstream,
)
from sematic_metrics.service.auth import AuthMiddleware
from sematic_metrics.service.config import Settings
from sematic_metrics.service.core import Service
from sematic_metrics.service.responses import JSON, error_response

log = logging.getLogger(__name__)
RESOURCES: tuple[ModuleType, ...] = (meta, metrics, series_api, runs, pipelines, sqlapi, stream, dashboard)


async def handle_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SematicMetricsError)
    if exc.status_code >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 in the API's error shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"{request.url.path}: no such endpoint; the API is listed at /openapi.json"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json"
    else:
        message = str(exc.detail)
    return JSON({"error": message, "type": "HTTPException"}, exc.status_code, exc.headers)


def create_app(settings: Settings | None = None, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    svc = Service(settings, system_metrics=pipelines.system_metrics())
    svc.openapi = openapi_document()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await svc.start()
        try:
            yield {}
        finally:
            await svc.stop()

    routes: list[BaseRoute] = [route for resource in RESOURCES for route in resource.ROUTES]
    routes += extra_routes or []
    middleware = [Middleware(AuthMiddleware, keys=settings.api_keys)]
    if svc.upstream is None:
        routes += dashboard.ROOT_ROUTES
    else:
        # Upstream mode: requests no route of ours answers (and Sematic's own
        # paths) go to the Sematic server, before our API keys are checked.
        routes += upstream.ROUTES
        svc.openapi["paths"].update(upstream.OPENAPI_PATHS)
        middleware.insert(0, Middleware(upstream.UpstreamFront, upstream=svc.upstream, routes=routes))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={SematicMetricsError: handle_error, HTTPException: handle_http_error},
        lifespan=lifespan,
    )
    app.state.service = svc
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of every resource's paths and schemas."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: list[type] = []
    for resource in RESOURCES:
        paths.update(resource.OPENAPI_PATHS)
        schemas += resource.OPENAPI_SCHEMAS
    return openapi.document(paths, schemas)
