"""Sematic upstream mode: the service as a drop-in front for a Sematic server.

With ``SEMATIC_METRICS_SEMATIC_UPSTREAM`` set, the service answers its own
paths (the metrics API, Sematic's pipeline panel ``GET /api/v1/runs/{id}/metrics``
and every endpoint that Sematic does not have) and forwards every other
request to the Sematic server, streamed both ways: Sematic's API, its
dashboard pages and static files, socket.io's long-polling transport. Sematic
users change only ``SEMATIC_SERVER_ADDRESS``.

Forwarded calls that change runs (``PUT /api/v1/graph``,
``POST /api/v1/runs/future_states``, ``PUT /api/v1/resolutions/{id}/cancel``)
are copied into ``runs`` once Sematic answered 2xx (_run_copies.py).
``/api/v1/meta/versions`` and ``POST /api/v1/events/metrics/update`` go to
Sematic: the client talks to Sematic's real version, and the event reaches
Sematic's socket.io so its dashboard updates live.

Websocket upgrades are refused (socket.io stays on long polling); when the
Sematic server is down, forwarded calls get a 502 that names it, while
ingest and queries of metrics keep working.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sematic_metrics.errors import NotFoundError, SematicMetricsError
from sematic_metrics.service._run_copies import AUTH_HEADERS, CopyJob, RunCopier, records_of
from sematic_metrics.service.config import Settings
from sematic_metrics.service.responses import JSON, error_response
from sematic_metrics.service.runs_writer import RunsWriter

log = logging.getLogger(__name__)
STATUS_PATH = "/api/v1/upstream"
# Paths the service also serves that belong to Sematic in upstream mode.
FORWARDED_PATHS = frozenset({"/", "/api/v1/meta/versions", "/api/v1/events/metrics/update"})
# Everything else the app routes is the service's own (UpstreamFront.owns):
# the metrics API, the pipeline panel, POST /api/v1/runs and the paths Sematic
# does not have (/api/v1/runs/{id}/record, /api/v1/pipelines..., /api/v1/sql,
# /api/v1/stream, /dashboard..., /healthz, /openapi.json, STATUS_PATH).
# RFC 9110 7.6.1 connection-specific headers, never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_HOP_BACK = frozenset(h.encode() for h in HOP_BY_HOP)
_FUTURE_STATES = "/api/v1/runs/future_states"
_CANCEL = re.compile(r"^/api/v1/resolutions/([^/]+)/cancel$")
_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)


class UpstreamError(SematicMetricsError):
    """The Sematic server did not answer a forwarded request."""

    status_code = 502


class UpstreamTimeoutError(UpstreamError):
    status_code = 504


class Upstream:
    """The client of the Sematic server, the forwarder and the run copies."""

    def __init__(self, settings: Settings, runs_writer: RunsWriter) -> None:
        if not settings.sematic_upstream:
            raise ValueError("Upstream needs settings.sematic_upstream")
        self.url = settings.sematic_upstream.rstrip("/")
        self.max_copy_bytes = settings.max_body_bytes
        self.client = httpx.AsyncClient(
            timeout=_TIMEOUT,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            trust_env=False,
        )
        self.copies = RunCopier(self.url, runs_writer, self.client)
        self.forwarded = 0
        self.failed = 0

    @property
    def backlog(self) -> int:
        """Run copies not stored yet."""
        return self.copies.backlog

    async def start(self) -> None:
        # httpx logs every request at INFO: the access log already has them.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:
            httpx_log.setLevel(logging.WARNING)
        self.copies.start()

    async def stop(self) -> None:
        await self.copies.stop()
        await self.client.aclose()

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: where requests go and how the run copies are doing."""
        return {
            "upstream": {
                "url": self.url,
                "forwarded": self.forwarded,
                "unanswered": self.failed,
                "run_copies": self.copies.stats(),
            }
        }

    # -- forwarding ----------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Refused before accept (HTTP 403): socket.io keeps long polling.
            await send({"type": "websocket.close", "code": 1008, "reason": "not proxied; use polling"})
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        # Other upgrades (h2c) are optional: the header is dropped, the request forwarded.
        if "websocket" in request.headers.get("upgrade", "").lower():
            message = (
                f"websocket upgrades are not forwarded to the Sematic server at {self.url}; "
                "socket.io keeps its long-polling transport"
            )
            await JSON({"error": message, "type": "UpgradeRefused"}, 400)(scope, receive, send)
            return
        try:
            await self._forward(request, send)
        except UpstreamError as exc:
            self.failed += 1
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            await error_response(exc)(scope, receive, send)

    async def _forward(self, request: Request, send: Send) -> None:
        method, path = request.method, request.url.path
        # The body of a call whose runs are copied is kept too, up to the body limit.
        tee = _Tee(self.max_copy_bytes) if _copies(method, path) else None
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                if tee is not None:
                    tee.add(chunk)
                yield chunk

        raw_path = request.scope.get("raw_path") or path.encode()
        query = request.scope.get("query_string", b"")
        target = self.url + raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        outgoing = self.client.build_request(
            method, target, headers=_request_headers(request), content=body() if has_body else None
        )
        try:
            response = await self.client.send(outgoing, stream=True)
        except ClientDisconnect:
            log.info("%s %s: the caller left before sending its whole body", method, path)
            return
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"the Sematic server at {self.url} did not answer {method} {path} in time ({exc!r})"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the Sematic server at {self.url} is not reachable ({exc!r}); "
                "its API and dashboard are unavailable, metrics ingest and queries still work"
            ) from None
        self.forwarded += 1
        try:
            if tee is not None and 200 <= response.status_code < 300:
                self._queue_copy(request, path, tee)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BACK],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:  # the status is already sent: cut the response short
            log.warning("%s %s: the Sematic server broke off its answer: %r", method, path, exc)
        finally:
            await response.aclose()

    # -- run copies ------------------------------------------------------------
    def _queue_copy(self, request: Request, path: str, tee: _Tee) -> None:
        headers = [(k, v) for k, v in request.headers.items() if k in AUTH_HEADERS]
        if tee.size > tee.limit:
            log.error(
                "run copies: %s body of %d bytes is over %d bytes; its runs were not copied",
                path,
                tee.size,
                tee.limit,
            )
            self.copies.rejected += 1
            return
        body = b"".join(tee.chunks)
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            log.error("run copies: %s body is not JSON; its runs were not copied", path)
            return
        if not isinstance(payload, dict):
            return
        if path == "/api/v1/graph":
            graph = payload.get("graph")
            runs = graph.get("runs") if isinstance(graph, dict) else None
            self.copies.enqueue(CopyJob("records", records_of(runs or [])))
        elif path == _FUTURE_STATES:
            ids = [str(i) for i in payload.get("run_ids") or [] if isinstance(i, str | int)]
            self.copies.enqueue(CopyJob("fetch", ids, headers))
        else:
            match = _CANCEL.match(path)
            if match:
                self.copies.enqueue(CopyJob("roots", [match.group(1)], headers))


class _Tee:
    """A copy of a forwarded body, up to ``limit`` bytes; ``size`` counts all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= self.limit:
            self.chunks.append(chunk)


def _copies(method: str, path: str) -> bool:
    if method == "PUT":
        return path == "/api/v1/graph" or bool(_CANCEL.match(path))
    return path == _FUTURE_STATES


def _request_headers(request: Request) -> list[tuple[str, str]]:
    """The caller's headers minus the hop-by-hop ones; Host becomes the Sematic
    server's (set by the client), the caller's host and address go in X-Forwarded-*."""
    listed = {
        token.strip().lower() for token in request.headers.get("connection", "").split(",") if token.strip()
    }
    drop = HOP_BY_HOP | listed | {"host"}
    headers = [(k, v) for k, v in request.headers.items() if k not in drop]
    client = request.client.host if request.client else ""
    prior = request.headers.get("x-forwarded-for")
    headers.append(("x-forwarded-for", f"{prior}, {client}" if prior else client))
    headers.append(("x-forwarded-host", request.headers.get("host", "")))
    headers.append(("x-forwarded-proto", request.url.scheme))
    return headers


# -- assembly ------------------------------------------------------------------
class UpstreamFront:
    """Outermost middleware: a request goes to the service when one of its
    routes answers it and it is not Sematic's, else to the Sematic server, so
    that forwarded calls are authenticated by Sematic, not by our API keys."""

    def __init__(self, app: ASGIApp, upstream: Upstream, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.upstream = upstream
        self.routes = routes

    def owns(self, scope: Scope) -> bool:
        if scope["type"] not in ("http", "websocket"):
            return True
        if scope["path"] in FORWARDED_PATHS:
            return False
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.owns(scope):
            await self.app(scope, receive, send)
        else:
            await self.upstream(scope, receive, send)


async def status(request: Request) -> Response:
    from sematic_metrics.service.core import service_of  # core imports this module

    upstream = service_of(request).upstream
    if upstream is None:
        raise NotFoundError(f"{STATUS_PATH}: the service does not front a Sematic server")
    return JSON(upstream.health()["upstream"])


# The service's own routes in upstream mode (the forwarding is UpstreamFront's).
ROUTES: list[BaseRoute] = [Route(STATUS_PATH, status, methods=["GET"])]
OPENAPI_SCHEMAS: list[type] = []
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    STATUS_PATH: {
        "get": {
            "summary": "Sematic upstream mode: the Sematic server, forwarded calls and run copies",
            "responses": {"200": {"description": "Status"}},
        }
    }
}
