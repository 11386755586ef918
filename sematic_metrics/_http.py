"""HTTP plumbing: JSON responses, bounded body reads, errors and API keys."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sematic_metrics.config import ApiKey
from sematic_metrics.errors import (
    AuthError,
    ForbiddenError,
    InvalidInputError,
    PayloadTooLargeError,
    SematicMetricsError,
)

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/api/v1/meta/versions"})


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(exc: SematicMetricsError) -> JSON:
    return JSON({"error": str(exc), "type": type(exc).__name__}, status_code=exc.status_code)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """Read the body within a size limit and a deadline for the whole upload."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"body: {declared} bytes is over the {limit}-byte limit; send smaller batches"
        )

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"body: over the {limit}-byte limit; send smaller batches")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        raise InvalidInputError(f"body: not received within {timeout_s:g} s") from None


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type not in ("application/json", "", "text/json") and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content-type: {content_type[:80]!r} is not supported; send application/json"
        )


class UnsupportedMediaType(InvalidInputError):
    status_code = 415


Handler = Callable[[Request], Awaitable[Response]]


def scope_for(method: str, path: str) -> str:
    if path.startswith("/api/v1/sql"):
        return "read"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if method == "DELETE" or path.startswith("/api/v1/admin"):
        return "admin"
    return "write"


class AuthMiddleware:
    """API keys from X-API-KEY or Authorization: Bearer, compared in constant time."""

    def __init__(self, app: ASGIApp, keys: tuple[ApiKey, ...]) -> None:
        self.app = app
        self.keys = keys

    def identify(self, presented: str) -> ApiKey | None:
        found = None
        for key in self.keys:  # compare against every key: no early exit
            if hmac.compare_digest(key.key.encode(), presented.encode()):
                found = key
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        presented = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if not presented and auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        key = self.identify(presented) if presented else None
        error: SematicMetricsError | None = None
        if key is None:
            error = AuthError(
                "API key missing or not recognised; send it as X-API-KEY: <key> "
                "or Authorization: Bearer <key>"
            )
        else:
            needed = scope_for(scope["method"], scope["path"])
            if needed not in key.scopes and "admin" not in key.scopes:
                error = ForbiddenError(f"API key {key.name!r} lacks the {needed!r} scope for this request")
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)
