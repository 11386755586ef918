"""The OpenAPI document served at /openapi.json."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from sematic_metrics import __version__
from sematic_metrics.wire import IngestBody

ERROR = {
    "description": "Error with a message naming the field",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "type": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
WINDOW_PARAMS: list[dict[str, Any]] = [
    {
        "name": "from_time",
        "in": "query",
        "schema": {"type": "number"},
        "description": "Epoch seconds, inclusive (default 0)",
    },
    {
        "name": "to_time",
        "in": "query",
        "schema": {"type": "number"},
        "description": "Epoch seconds, exclusive (default now)",
    },
]
_FILTER_PARAMS: list[dict[str, Any]] = [
    *WINDOW_PARAMS,
    {
        "name": "labels",
        "in": "query",
        "schema": {"type": "string"},
        "description": (
            'JSON object of label filters; "root": true/false keeps points whose '
            "run_id equals/differs from root_id"
        ),
    },
]
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): ERROR for code in codes}


def schema_ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def answers(ok_schema: str, *codes: int) -> dict[str, Any]:
    """A 200 with the named component schema, and error answers for codes."""
    return {"200": {"description": "OK", **schema_ref(ok_schema)}, **_errors(*codes)}


_OBJECT = {"type": "object"}
_PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "summary": "Health of the service and its store",
            "responses": {"200": _ok(_OBJECT), **_errors(503)},
        }
    },
    "/api/v1/meta/versions": {
        "get": {
            "summary": "Sematic server and minimum client versions",
            "responses": {"200": _ok(_OBJECT)},
        }
    },
    "/api/v1/events/metrics/update": {
        "post": {
            "summary": "Sematic's live notification after a save; accepted and ignored",
            "requestBody": {"content": {"application/json": {"schema": _OBJECT}}},
            "responses": {"200": _ok(_OBJECT), **_errors(401, 413)},
        }
    },
    "/api/v1/metrics": {
        "post": {
            "summary": "Store metric points (Sematic's form or the compact form)",
            "description": (
                "All or nothing. An Idempotency-Key header makes a retried batch store once. "
                "Answered after the points are stored. Non-finite values: null, 'NaN', "
                "'Infinity', '-Infinity', or the bare JSON tokens NaN / Infinity."
            ),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": 256},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestBody"}}},
            },
            "responses": {
                "200": _ok(_OBJECT, "Stored"),
                **_errors(400, 401, 403, 409, 413, 415, 503),
            },
        },
        "get": {
            "summary": "Names of metrics with at least one point matching the labels",
            "parameters": _FILTER_PARAMS,
            "responses": {"200": _ok(_OBJECT), **_errors(400, 401)},
        },
    },
    "/api/v1/metrics/{name}": {
        "get": {
            "summary": "A metric's aggregated series",
            "parameters": [
                _NAME,
                *_FILTER_PARAMS,
                {
                    "name": "group_by",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Comma list of run_id, function_path, root_id, root_function_path",
                },
                {
                    "name": "rollup",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Seconds per bucket (integer) or auto; absent: one value per group",
                },
            ],
            "responses": {"200": _ok(_OBJECT), **_errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Delete the metric's points matching the filter",
            "parameters": [_NAME, *_FILTER_PARAMS],
            "responses": {"200": _ok(_OBJECT), **_errors(400, 401, 403, 404)},
        },
    },
}

# Modules that add endpoints add their paths here.
EXTRA_PATHS: dict[str, dict[str, Any]] = {}
EXTRA_SCHEMAS: list[type] = []


@functools.cache
def openapi_document() -> dict[str, Any]:
    (ingest, *_), components = msgspec.json.schema_components(
        [IngestBody, *EXTRA_SCHEMAS], ref_template="#/components/schemas/{name}"
    )
    del ingest
    return {
        "openapi": "3.1.0",
        "info": {"title": "sematic-metrics", "version": __version__},
        "paths": {**_PATHS, **EXTRA_PATHS},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"apiKey": []}, {"bearer": []}, {}],
    }
