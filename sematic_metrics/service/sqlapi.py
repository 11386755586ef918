"""Read-only SQL for analysts: ``POST /api/v1/sql`` and ``GET /api/v1/sql?sql=``.

The statement runs on the store's read-only clients (``readonly=1``, set once
when each client is made), which is what enforces read-only. Before that, a
lexical check refuses anything but one read statement, so a write is answered
403 without reaching ClickHouse, and it refuses ``INTO OUTFILE``, which the
embedded engine executes even in read-only mode (it writes a file).
Results come back in ClickHouse's own output formats, produced inside the
engine: JSON, CSV, a text table, Arrow (IPC file, readable by
``pyarrow.ipc.open_file`` and ``pandas.read_feather``) or Parquet.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import ForbiddenError, InvalidInputError
from sematic_metrics.service.http import read_body, require_json
from sematic_metrics.service.openapi import EXTRA_PATHS, EXTRA_SCHEMAS
from sematic_metrics.service.store import Store

# format -> (ClickHouse output format, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("JSON", "application/json"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8"),
    "table": ("PrettyCompactMonoBlock", "text/plain; charset=utf-8"),
    "arrow": ("Arrow", "application/vnd.apache.arrow.file"),
    "parquet": ("Parquet", "application/vnd.apache.parquet"),
}
READ_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN")
MAX_SQL_CHARS = 256 * 1024
_HEREDOC = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class SqlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/v1/sql."""

    sql: str
    format: str = "json"
    params: dict[str, Any] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(SqlRequest)


def code_of(sql: str) -> str:
    """The statement with strings, quoted names and comments blanked out."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        end = i
        if ch in "'\"`":
            end = i + 1
            while end < n and sql[end] != ch:
                end += 2 if sql[end] == "\\" else 1
            end += 1
        elif sql.startswith("--", i) or ch == "#":
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            end = n if close < 0 else close + 2
        elif heredoc := _HEREDOC.match(sql, i):
            close = sql.find(heredoc.group(0), heredoc.end())
            end = n if close < 0 else close + len(heredoc.group(0))
        if end > i:
            out.append(" " * (min(end, n) - i))
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def check_read_only(sql: str) -> None:
    """Refuse anything but one read statement (the engine enforces it too)."""
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidInputError(f"sql: {len(sql)} characters is over the {MAX_SQL_CHARS} limit")
    code = code_of(sql)
    statement, _, after = code.strip().partition(";")
    if not statement.strip():
        raise InvalidInputError("sql: empty; send one SELECT statement")
    if after.strip(" \t\r\n;"):
        raise InvalidInputError("sql: one statement per request; remove everything after the first ';'")
    first = re.match(r"\s*(\(|[A-Za-z_]+)", statement)
    keyword = first.group(1).upper() if first else ""
    if keyword != "(" and keyword not in READ_STATEMENTS:
        raise ForbiddenError(
            f"sql: {keyword or statement.strip()[:20]!r} statements are refused: the SQL endpoint is "
            f"read-only; send {', '.join(READ_STATEMENTS)} queries only"
        )
    if re.search(r"\bOUTFILE\b", statement, re.IGNORECASE):
        raise ForbiddenError("sql: INTO OUTFILE is refused: the SQL endpoint is read-only")


def output_format(name: str | None) -> tuple[str, str]:
    try:
        return FORMATS[(name or "json").lower()]
    except KeyError:
        raise InvalidInputError(
            f"format: {(name or '')[:20]!r} is not supported; use one of {', '.join(FORMATS)}"
        ) from None


async def _run(request: Request, sql: str, fmt: str | None, params: dict[str, Any]) -> Response:
    check_read_only(sql)
    engine_format, media_type = output_format(fmt)
    store: Store = request.app.state.service.store
    body = await run_in_threadpool(store.sql, sql, params, engine_format)
    return Response(body, media_type=media_type)


async def post_sql(request: Request) -> Response:
    settings = request.app.state.service.settings
    require_json(request)
    raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    try:
        body = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"body: not valid JSON ({exc})") from None
    return await _run(request, body.sql, body.format, body.params)


async def get_sql(request: Request) -> Response:
    query = request.query_params
    sql = query.get("sql")
    if sql is None:
        raise InvalidInputError("sql: missing; pass the query as ?sql=SELECT...")
    params = {key[6:]: value for key, value in query.items() if key.startswith("param_")}
    return await _run(request, sql, query.get("format"), params)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/sql", post_sql, methods=["POST"]),
    Route("/api/v1/sql", get_sql, methods=["GET"]),
]

_RESULT = {media: {"schema": {"type": "string", "format": "binary"}} for _, media in FORMATS.values()}
_SQL_ERRORS = {
    "400": {"description": "The query is malformed or ClickHouse rejected it"},
    "401": {"description": "API key missing"},
    "403": {"description": "A write or other non-read statement; nothing was run"},
    "503": {"description": "The store is not answering"},
}
_DESCRIPTION = (
    "Runs one read statement (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN) on read-only "
    "ClickHouse clients; writes are refused with 403 and change nothing. Needs the read or admin "
    "scope. format: json (ClickHouse JSON: meta, data, rows), csv (with a header), table, arrow "
    "(Arrow IPC file), parquet. Bind values as {name:Type} placeholders with params (POST) or "
    "param_<name> query parameters (GET)."
)
EXTRA_PATHS["/api/v1/sql"] = {
    "post": {
        "summary": "Run a read-only SQL query",
        "description": _DESCRIPTION,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SqlRequest"}}},
        },
        "responses": {"200": {"description": "The result", "content": _RESULT}, **_SQL_ERRORS},
    },
    "get": {
        "summary": "Run a read-only SQL query",
        "description": _DESCRIPTION,
        "parameters": [
            {"name": "sql", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS)}},
        ],
        "responses": {"200": {"description": "The result", "content": _RESULT}, **_SQL_ERRORS},
    },
}
EXTRA_SCHEMAS.append(SqlRequest)
