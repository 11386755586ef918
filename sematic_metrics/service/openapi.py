"""The OpenAPI document served at /openapi.json, built by ``create_app`` from
the paths and schemas each resource module declares, plus the shared pieces
(parameters, error answers) those declarations use."""

from __future__ import annotations

from typing import Any

import msgspec

from sematic_metrics import __version__

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
FILTER_PARAMS: list[dict[str, Any]] = [
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
NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
    return {str(code): ERROR for code in codes}


def schema_ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def answers(ok_schema: str, *codes: int) -> dict[str, Any]:
    """A 200 with the named component schema, and error answers for codes."""
    return {"200": {"description": "OK", **schema_ref(ok_schema)}, **errors(*codes)}


OBJECT = {"type": "object"}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 256}}


def document(paths: dict[str, dict[str, Any]], schemas: list[type]) -> dict[str, Any]:
    """The whole document: ``paths`` and the JSON Schemas of the msgspec ``schemas``."""
    _, components = msgspec.json.schema_components(schemas, ref_template="#/components/schemas/{name}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "sematic-metrics", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"apiKey": []}, {"bearer": []}, {}],
    }
