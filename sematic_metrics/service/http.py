"""HTTP plumbing: JSON responses, bounded body reads, errors and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sematic_metrics.errors import (
    AuthError,
    ForbiddenError,
    InvalidInputError,
    PayloadTooLargeError,
    SematicMetricsError,
)
from sematic_metrics.service.config import ApiKey

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/api/v1/meta/versions"})
# The dashboard's HTML shell and static files hold no data; its pages ask for
# a key when an API call answers 401, so they load without one.
_OPEN_PAGES = re.compile(r"^/(?:|pipelines/.*|runs/.*|static/.*)$")
# EventSource cannot set headers: the live stream also takes ?api_key=.
_QUERY_KEY_PATHS = frozenset({"/api/v1/stream"})
_JSON_TYPES = frozenset({"application/json", "text/json", ""})
RETRY_AFTER_S = 2


class UnsupportedMediaType(InvalidInputError):
    status_code = 415


class RequestTimeoutError(InvalidInputError):
    status_code = 408


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(exc: SematicMetricsError) -> JSON:
    headers = {}
    if exc.status_code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    elif exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sematic-metrics"'
    return JSON({"error": str(exc), "type": type(exc).__name__}, exc.status_code, headers)


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (no Content-Type counts as JSON)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content-type: {content_type[:80]!r} is not supported; send application/json"
        )


async def read_body(request: Request, limit: int, timeout_s: float, json: bool = True) -> bytes:
    """Read the body within a size limit and a deadline for the whole upload.

    A declared or streamed size over ``limit`` is a 413, an upload slower than
    ``timeout_s`` a 408, and with ``json`` a non-JSON Content-Type a 415 and
    a body that is not UTF-8 a 400.
    """
    if json:
        require_json(request)
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
        body = await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        raise RequestTimeoutError(
            f"body: not received within {timeout_s:g} s; send the whole request body at once"
        ) from None
    if json:
        # JSON is UTF-8; msgspec raises a bare UnicodeDecodeError on a bad
        # string, so check here, once for every endpoint (~2% of a decode).
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"body: byte {exc.start} is not valid UTF-8; JSON bodies must be UTF-8"
            ) from None
    return body


def scope_for(method: str, path: str) -> str:
    """The scope a request needs: reads need read, ingest write, deletes and admin paths admin."""
    if path.startswith("/api/v1/admin") or method == "DELETE":
        return "admin"
    if method in ("GET", "HEAD", "OPTIONS") or path.startswith("/api/v1/sql"):
        return "read"
    return "write"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class AuthMiddleware:
    """API keys from X-API-KEY or Authorization: Bearer, compared in constant time.

    With no key configured every request passes. Otherwise each request but
    the open paths needs a configured key holding the scope it needs (admin
    holds every scope); the key's name becomes the request's ``api_key``
    state, which ingest stores as the ``user_id`` label.
    """

    def __init__(self, app: ASGIApp, keys: tuple[ApiKey, ...]) -> None:
        self.app = app
        self.keys = keys
        # Equal-length digests: the comparison time depends on neither the
        # presented key's length nor its content.
        self._digests = [(_digest(key.key), key) for key in keys]

    def identify(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found = None
        for expected, key in self._digests:  # every key is compared: no early exit
            if hmac.compare_digest(expected, digest):
                found = key
        return found

    def is_open(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in OPEN_PATHS:
            return True
        return (
            scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and bool(_OPEN_PAGES.match(path))
        )

    def presented_key(self, scope: Scope) -> str:
        presented = ""
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == b"x-api-key":
                presented = value.decode("latin-1").strip()
            elif lowered == b"authorization" and not presented:
                text = value.decode("latin-1").strip()
                if text[:7].lower() == "bearer ":
                    presented = text[7:].strip()
        if not presented and scope["path"] in _QUERY_KEY_PATHS:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            presented = (query.get("api_key") or [""])[-1]
        return presented

    def check(self, scope: Scope) -> tuple[ApiKey | None, SematicMetricsError | None]:
        presented = self.presented_key(scope)
        key = self.identify(presented) if presented else None
        if key is None:
            return None, AuthError(
                "API key missing or not recognised; send it as X-API-KEY: <key> "
                "or Authorization: Bearer <key>"
            )
        needed = scope_for(scope.get("method", "GET"), scope["path"])
        if needed not in key.scopes and "admin" not in key.scopes:
            return None, ForbiddenError(
                f"API key {key.name!r} lacks the {needed!r} scope this request needs; "
                f"it has {', '.join(sorted(key.scopes))}"
            )
        return key, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.keys or self.is_open(scope):
            await self.app(scope, receive, send)
            return
        key, error = self.check(scope)
        if error is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": str(error)[:120]})
            else:
                await error_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


MAX_KEY_LENGTH = 256


def user_of(request: Request) -> str | None:
    key = request.scope.get("state", {}).get("api_key")
    return None if key is None else str(key.name)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"Idempotency-Key: longer than {MAX_KEY_LENGTH} characters")
    return key
