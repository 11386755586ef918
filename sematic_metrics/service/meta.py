"""Service-level endpoints: ``/healthz``, ``/openapi.json`` and Sematic's
``/api/v1/meta/versions`` handshake."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.service import openapi
from sematic_metrics.service.core import service_of
from sematic_metrics.service.responses import JSON

# Sematic's client refuses servers older than itself: answer as Sematic 0.41.
SEMATIC_SERVER_VERSION = [0, 41, 0]
MIN_CLIENT_SUPPORTED = [0, 30, 0]


async def healthz(request: Request) -> Response:
    svc = service_of(request)
    ok = await run_in_threadpool(svc.store.ping)
    if ok:
        return JSON({"status": "ok", **svc.health()})
    return JSON({"status": "unavailable", "error": "the ClickHouse store is not answering"}, 503)


async def versions(request: Request) -> Response:
    return JSON({"server": SEMATIC_SERVER_VERSION, "min_client_supported": MIN_CLIENT_SUPPORTED})


async def openapi_json(request: Request) -> Response:
    return JSON(service_of(request).openapi)


ROUTES: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/api/v1/meta/versions", versions, methods=["GET"]),
]
OPENAPI_SCHEMAS: list[type] = []
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "summary": "Health of the service and its store",
            "responses": {"200": openapi.ok(openapi.OBJECT), **openapi.errors(503)},
        }
    },
    "/api/v1/meta/versions": {
        "get": {
            "summary": "Sematic server and minimum client versions",
            "responses": {"200": openapi.ok(openapi.OBJECT)},
        }
    },
}
