"""API keys: who may call what, from X-API-KEY or Authorization: Bearer."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sematic_metrics.errors import AuthError, ForbiddenError, SematicMetricsError
from sematic_metrics.service.config import ApiKey
from sematic_metrics.service.responses import error_response

OPEN_PATHS = frozenset({"/healthz", "/api/v1/meta/versions"})
# The dashboard's HTML shell and static files hold no data; its pages ask for
# a key when an API call answers 401, so they load without one.
_OPEN_PAGES = re.compile(r"^/(?:|dashboard|dashboard/.*)$")
# EventSource cannot set headers: the live stream also takes ?api_key=.
_QUERY_KEY_PATHS = frozenset({"/api/v1/stream"})


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


def user_of(request: Request) -> str | None:
    key = request.scope.get("state", {}).get("api_key")
    return None if key is None else str(key.name)
