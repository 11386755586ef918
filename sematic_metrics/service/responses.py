"""JSON responses: the one encoder of the service, and the error shape.

Every answer of the API is encoded here: orjson for speed (it writes numpy
arrays of series natively), msgspec structs through ``msgspec.to_builtins``.
Every error is ``{"error": message, "type": class name}``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from starlette.responses import Response

from sematic_metrics.errors import SematicMetricsError

RETRY_AFTER_S = 2


def _default(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def error_response(exc: SematicMetricsError) -> JSON:
    headers = {}
    if exc.status_code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    elif exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sematic-metrics"'
    return JSON({"error": str(exc), "type": type(exc).__name__}, exc.status_code, headers)
