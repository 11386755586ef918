"""Read-only SQL for analysts: ``POST /api/v1/sql`` and ``GET /api/v1/sql?sql=``.

The statement runs on the store's read-only clients (``readonly=1``, set once
when each client is made), which is what enforces read-only. Before that, a
lexical check refuses anything but one read statement, so a write is answered
403 without reaching ClickHouse, and it refuses ``INTO OUTFILE``, which the
embedded engine executes even in read-only mode (it writes a file). A
statement that starts with no keyword ClickHouse knows (a typo: ``SELEC 1``)
is parsed by the engine, never run, and its syntax error answered as a 400.
The POST body is JSON whatever its Content-Type says (``curl -d`` sends a
form type).
Results come back in ClickHouse's own output formats, produced inside the
engine: JSON, CSV, a text table, Arrow (IPC file, readable by
``pyarrow.ipc.open_file`` and ``pandas.read_feather``) or Parquet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import ForbiddenError, InvalidInputError
from sematic_metrics.service._body import read_body
from sematic_metrics.service.core import service_of

# format -> (ClickHouse output format, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("JSON", "application/json"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8"),
    "table": ("PrettyCompactMonoBlock", "text/plain; charset=utf-8"),
    "arrow": ("Arrow", "application/vnd.apache.arrow.file"),
    "parquet": ("Parquet", "application/vnd.apache.parquet"),
}
READ_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN")
# The other statement keywords of ClickHouse: refused without asking the engine.
OTHER_STATEMENTS = frozenset(
    {
        "INSERT", "CREATE", "ALTER", "DELETE", "UPDATE", "DROP", "UNDROP", "TRUNCATE", "RENAME",
        "EXCHANGE", "ATTACH", "DETACH", "OPTIMIZE", "SYSTEM", "KILL", "GRANT", "REVOKE", "SET",
        "USE", "CHECK", "WATCH", "MOVE", "BACKUP", "RESTORE", "BEGIN", "COMMIT", "ROLLBACK",
        "REPLACE", "EXECUTE",
    }
)  # fmt: skip
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


def check_read_only(sql: str, parse: Callable[[str], None] | None = None) -> None:
    """Refuse anything but one read statement (the engine enforces it too).

    ``parse`` (the engine's parser, which never runs a statement) is asked
    only about a statement whose first word is no ClickHouse statement
    keyword, so its syntax error is answered instead of a refusal.
    """
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
        if parse is not None and keyword not in OTHER_STATEMENTS:
            end = code.find(";")
            parse(sql if end < 0 else sql[:end])
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
    store = service_of(request).store
    engine_format, media_type = output_format(fmt)

    def run() -> bytes:
        check_read_only(sql, store.check_syntax)
        body = store.sql(sql, params, engine_format)
        if not body and engine_format == FORMATS["table"][0]:
            # The engine's text tables print nothing for no rows.
            return empty_table(store.result_names(sql, params))
        return body

    return Response(await run_in_threadpool(run), media_type=media_type)


def empty_table(names: list[str] | None) -> bytes:
    """A text table of no rows: the header in the engine's style, and "(0 rows)"."""
    if not names:
        return b"(0 rows)\n"
    top = "┌" + "┬".join(f"─{name}─" for name in names) + "┐"
    bottom = "└" + "┴".join("─" * (len(name) + 2) for name in names) + "┘"
    return f"{top}\n{bottom}\n(0 rows)\n".encode()


def decode_request(raw: bytes) -> SqlRequest:
    """The POST body as JSON, whatever the declared Content-Type."""
    if not raw.strip():
        raise InvalidInputError(
            'body: empty; send a JSON object such as {"sql": "SELECT 1"}, or GET /api/v1/sql?sql=...'
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"body: byte {exc.start} is not valid UTF-8; JSON bodies must be UTF-8"
        ) from None
    try:
        return _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInputError(
            f'body: not valid JSON ({exc}); send a JSON object such as {{"sql": "SELECT 1"}}'
        ) from None


async def post_sql(request: Request) -> Response:
    settings = service_of(request).settings
    # json=False: no 415. curl -d declares a form, and users copy curl lines.
    raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s, json=False)
    body = decode_request(raw)
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
    "param_<name> query parameters (GET). The POST body is read as JSON whatever its "
    "Content-Type. A statement that does not parse gets the engine's syntax error (400)."
)
OPENAPI_SCHEMAS: list[type] = [SqlRequest]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {}
OPENAPI_PATHS["/api/v1/sql"] = {
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
