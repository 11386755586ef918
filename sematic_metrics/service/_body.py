"""Request plumbing shared by the endpoints: bounded body reads, the JSON
content-type check and the Idempotency-Key header."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from sematic_metrics.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)

_JSON_TYPES = frozenset({"application/json", "text/json", ""})
MAX_KEY_LENGTH = 256


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (no Content-Type counts as JSON)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
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


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"Idempotency-Key: longer than {MAX_KEY_LENGTH} characters")
    return key
