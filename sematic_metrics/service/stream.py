"""Live updates: ``GET /api/v1/stream?run_id=...`` as Server-Sent Events,
served from the Service's hub (hub.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.service._sse import EventStream
from sematic_metrics.service.core import service_of


async def stream(request: Request) -> Response:
    hub = service_of(request).hub
    run_id = request.query_params.get("run_id", "").strip()
    if not run_id:
        raise InvalidInputError("run_id: missing; open /api/v1/stream?run_id=<run id>")
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    return EventStream(hub, hub.subscribe(run_id, last))


ROUTES: list[BaseRoute] = [Route("/api/v1/stream", stream, methods=["GET"])]

OPENAPI_SCHEMAS: list[type] = []
OPENAPI_PATHS: dict[str, dict[str, Any]] = {}
OPENAPI_PATHS["/api/v1/stream"] = {
    "get": {
        "summary": "Live buckets of one run (Server-Sent Events)",
        "description": (
            "A text/event-stream. Events: `ready` {run_id, resumed} first on every connection "
            '(resumed false: load the series from GET /api/v1/metrics/{name}?labels={"run_id": ...}'
            "&rollup=auto now); `buckets` {run_id, metrics: [{name, metric_type, width_s, reset, "
            "points: [[bucket start epoch seconds, value], ...], min, max, first, last, count: "
            "[...] parallel to points}]} with the full aggregate of every new or updated bucket "
            "(gauges: average, counts: sum; min, max, first and last over finite values, count of "
            "every point; width_s 0 means raw timestamps; "
            "reset true: the metric is new or its width changed and points is its whole series). "
            "Comment lines are keep-alives. Reconnect with Last-Event-ID to resume without gaps; "
            "if that id is too old the server answers `ready` with resumed false. When API keys are "
            "configured, EventSource clients may pass the key as the api_key query parameter."
        ),
        "parameters": [
            {"name": "run_id", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
            {"name": "api_key", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "The event stream", "content": {"text/event-stream": {}}},
            "400": {"description": "run_id missing"},
            "401": {"description": "API key missing or not recognised"},
            "503": {"description": "Too many open streams, or shutting down"},
        },
    }
}
