"""``GET /api/v1/series`` (a metric as buckets on the time or step axis, from
the series engine) and ``GET /api/v1/series/points`` (every raw point of the
matching series, streamed as CSV, JSON lines, Parquet or Arrow)."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sematic_metrics.errors import InvalidInputError, NotFoundError
from sematic_metrics.service import _tiers, openapi
from sematic_metrics.service import series_engine as engine
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.core import service_of
from sematic_metrics.service.responses import JSON, encode
from sematic_metrics.service.series import parse_group_by, parse_labels
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
# Points per page of the export: the memory one page takes bounds the service's.
PAGE_POINTS = 50_000
# The export's pages come from malloc, which gives large blocks back at once;
# pyarrow's default pool (mimalloc) kept about 40 MiB more after an export.
_POOL = pa.system_memory_pool()
# Rows per chunk sent: a few MB of CSV at most.
SLICE_ROWS = 16_384
_GROUP_COLUMNS = ("run_id", "function_path", "root_id", "root_function_path")


class SeriesResponse(msgspec.Struct):
    content: engine.SeriesContent


def parse_query(params: Mapping[str, str]) -> engine.SeriesQuery:
    """The series query of a request; InvalidInputError names the bad parameter."""
    name = params.get("name", "")
    if not name:
        raise InvalidInputError("name: required; the metric to read")
    axis = params.get("x") or "time"
    if axis not in _tiers.AXES:
        raise InvalidInputError(f"x: {axis[:40]!r} is not an axis; use time or step")
    raw_buckets = params.get("buckets")
    buckets = engine.DEFAULT_BUCKETS
    if raw_buckets is not None:
        if not raw_buckets.strip().isdigit() or not 1 <= int(raw_buckets) <= engine.MAX_BUCKETS:
            raise InvalidInputError(
                f"buckets: {raw_buckets[:40]!r} is not an integer from 1 to {engine.MAX_BUCKETS:,}"
            )
        buckets = int(raw_buckets)
    parse = engine.time_param if axis == "time" else engine.step_param
    bounds = {}
    for key in ("from", "to"):
        raw = params.get(key)
        bounds[key] = parse(raw, key) if raw not in (None, "") else None
    if bounds["from"] is not None and bounds["to"] is not None and bounds["from"] >= bounds["to"]:
        raise InvalidInputError(f"from: must be less than to (the range is [from, to)); got {bounds}")
    filters, root = parse_labels(params.get("labels"))
    return engine.SeriesQuery(
        name=name,
        filters=filters,
        root=root,
        group_by=tuple(parse_group_by(params.get("group_by"))),
        axis=axis,
        from_x=bounds["from"],
        to_x=bounds["to"],
        buckets=buckets,
    )


async def get_series(request: Request) -> Response:
    svc = service_of(request)
    query = parse_query(request.query_params)
    # Taken before the read: a write during it makes the kept answer stale.
    version = svc.store.version(query.name)
    body = svc.series_cache.get(query.key(), version)
    if body is None:
        content = await run_in_threadpool(engine.read, svc.store, svc.catalog, query)
        body = encode({"content": content})
        svc.series_cache.put(query.key(), version, body)
    return Response(body, media_type=JSON.media_type)


# -- export ---------------------------------------------------------------------
def pages(store: Store, catalog: Catalog, query: engine.SeriesQuery) -> Iterator[tuple[int, int]]:
    """Half-open x ranges of about PAGE_POINTS points each, in x order, from the
    tiers' counts (a range is split further while it holds more)."""
    if catalog.type_of(query.name) is None:
        raise NotFoundError(
            f"name: metric {query.name!r} not found: no point was ever stored under that name"
        )
    lo_limit, hi_limit = _tiers.X_RANGE[query.axis]
    lo = lo_limit if query.from_x is None else query.from_x
    hi = hi_limit if query.to_x is None else query.to_x
    whole = engine.SeriesQuery(query.name, query.filters, query.root, (), query.axis, lo, hi, 1)
    found = engine.extents(store, whole, lo, hi)
    if not found:
        return
    (extent,) = found.values()
    yield from _split(store, whole, extent["min_x"], extent["max_x"] + 1, extent["points"])


def _split(
    store: Store, query: engine.SeriesQuery, lo: int, hi: int, points: int
) -> Iterator[tuple[int, int]]:
    if points <= PAGE_POINTS or hi - lo <= 1:
        yield lo, hi
        return
    buckets = min(engine.MAX_BUCKETS, 4 * math.ceil(points / PAGE_POINTS))
    width = _tiers.choose_width(query.axis, [(lo, hi - 1)], buckets)
    if width >= hi - lo:  # the ladder cannot cut finer: halve the range
        width = max(1, (hi - lo) // 2)
    plan = _tiers.plan(query.axis, width, lo, hi, [(lo, hi - 1)])
    columns = store.columns(q(plan.query()), {**query.params(), **plan.params(), "gauge": False})
    start, held = lo, 0
    for bucket, count in zip(columns.get("bucket_x", ()), columns.get("points", ()), strict=True):
        begin, end, count = max(int(bucket), lo), min(int(bucket) + width, hi), int(count)
        if held and held + count > PAGE_POINTS:
            yield start, begin
            start, held = begin, 0
        if count > PAGE_POINTS and end - begin < hi - lo:
            if begin > start:
                yield start, begin
            yield from _split(store, query, begin, end, count)
            start, held = end, 0
            continue
        held += count
    if start < hi:
        yield start, hi


def _page(store: Store, query: engine.SeriesQuery, lo: int, hi: int) -> pa.Table:
    params = {**query.params(), "axis": _tiers.AXIS_CODES[query.axis], "from_x": lo, "to_x": hi}
    data = store.sql(q("series_points"), params, fmt="ArrowStream")
    table = pa.ipc.open_stream(data, memory_pool=_POOL).read_all() if data else _EMPTY
    if query.axis == "time":
        seconds = pc.divide(pc.cast(table["x"], pa.float64(), memory_pool=_POOL), 1e6, memory_pool=_POOL)
        table = table.set_column(0, "x", seconds)
    stamps = pc.divide(
        pc.cast(table["metric_time_us"], pa.float64(), memory_pool=_POOL), 1e6, memory_pool=_POOL
    )
    return table.set_column(1, "metric_time", stamps)


_EMPTY = pa.table(
    {
        "x": pa.array([], pa.int64()),
        "metric_time_us": pa.array([], pa.int64()),
        "step": pa.array([], pa.int64()),
        "value": pa.array([], pa.float64()),
        **{c: pa.array([], pa.string()) for c in _GROUP_COLUMNS},
    }
)


def _wire(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def export(store: Store, catalog: Catalog, query: engine.SeriesQuery, fmt: str) -> Iterator[bytes]:
    """The export as chunks of bytes, one page in memory at a time (each is
    written, and let go, inside ``_write``).

    Chunks are written SLICE_ROWS rows at a time: a chunk of a whole page
    (tens of MB of CSV) waits in the socket's buffer while the next is made;
    with such chunks a 10M-point export left the process hundreds of MiB
    larger.
    """
    sink = io.BytesIO()
    writer: Any = None
    for lo, hi in pages(store, catalog, query):
        writer = yield from _write(_page(store, query, lo, hi), fmt, sink, writer)
    if writer is None and fmt != "jsonl":  # no point: the header or schema alone
        writer = {"csv": pacsv.CSVWriter, "parquet": pq.ParquetWriter, "arrow": pa.ipc.new_stream}[fmt](
            sink, _page_schema()
        )
    if writer is not None:
        writer.close()
    yield _drain(sink)


def _write(table: pa.Table, fmt: str, sink: io.BytesIO, writer: Any) -> Generator[bytes, None, Any]:
    """One page's chunks; returns the writer (made from the first page's schema)."""
    if fmt == "parquet":  # one row group per page; compressed, so small
        writer = writer or pq.ParquetWriter(sink, table.schema)
        writer.write_table(table)
        yield _drain(sink)
        return writer
    for batch in table.to_batches(max_chunksize=SLICE_ROWS):
        if fmt == "csv":
            writer = writer or pacsv.CSVWriter(sink, table.schema, memory_pool=_POOL)
            writer.write_batch(batch)
        elif fmt == "jsonl":
            names = batch.schema.names
            for row in zip(*(batch.column(c).to_pylist() for c in names), strict=True):
                record = dict(zip(names, row, strict=True))
                record["value"] = _wire(record["value"])
                sink.write(orjson.dumps(record) + b"\n")
        else:
            writer = writer or pa.ipc.new_stream(sink, table.schema)
            writer.write_batch(batch)
        yield _drain(sink)
    return writer


def _page_schema() -> pa.Schema:
    fields = [pa.field(n, t) for n, t in zip(_EMPTY.schema.names, _EMPTY.schema.types, strict=True)]
    fields[0] = pa.field("x", pa.float64())
    fields[1] = pa.field("metric_time", pa.float64())
    return pa.schema(fields)


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data


async def get_points(request: Request) -> Response:
    svc = service_of(request)
    query = parse_query(request.query_params)
    fmt = request.query_params.get("format") or "csv"
    if fmt not in FORMATS:
        raise InvalidInputError(f"format: {fmt[:40]!r} is not an export format; use {', '.join(FORMATS)}")
    chunks = export(svc.store, svc.catalog, query, fmt)
    # The first chunk before the answer starts: an unknown metric is still a 404.
    head = await run_in_threadpool(next, chunks, b"")

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in iterate_in_threadpool(chunks):
            if chunk:
                yield chunk

    filename = f"{query.name.replace('/', '_')[:100]}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(body(), media_type=FORMATS[fmt], headers=headers)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/series", get_series, methods=["GET"]),
    Route("/api/v1/series/points", get_points, methods=["GET"]),
]
OPENAPI_SCHEMAS: list[type] = [SeriesResponse]
_PARAMS: list[dict[str, Any]] = [
    {
        "name": "name",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "description": "The metric",
    },
    {
        "name": "labels",
        "in": "query",
        "schema": {"type": "string"},
        "description": (
            'JSON object of label filters; "root": true/false keeps points whose run_id '
            "equals/differs from root_id"
        ),
    },
    {
        "name": "group_by",
        "in": "query",
        "schema": {"type": "string"},
        "description": (
            "Comma list of run_id, function_path, root_id, root_function_path (default: one series)"
        ),
    },
    {
        "name": "x",
        "in": "query",
        "schema": {"type": "string", "enum": list(_tiers.AXES), "default": "time"},
        "description": "time: epoch seconds; step: training steps (points without a step are left out)",
    },
    {
        "name": "from",
        "in": "query",
        "schema": {"type": "number"},
        "description": "Start of the half-open x range [from, to) (default: the data's first x)",
    },
    {
        "name": "to",
        "in": "query",
        "schema": {"type": "number"},
        "description": "End of the half-open x range, exclusive (default: just after the data's last x)",
    },
]
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/series": {
        "get": {
            "summary": "A metric as buckets (value, min, max, first, last, count) per series",
            "description": (
                "The width is the smallest offered width keeping every series within `buckets`; "
                "width 0: the raw points, one entry per distinct x. value is the average (GAUGE) "
                "or sum (COUNT) of the finite values; null when a bucket has none. count includes "
                "NaN and infinities."
            ),
            "parameters": [
                *_PARAMS,
                {
                    "name": "buckets",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": engine.MAX_BUCKETS,
                        "default": 1000,
                    },
                    "description": "The most buckets any series may have",
                },
            ],
            "responses": openapi.answers("SeriesResponse", 400, 401, 404),
        }
    },
    "/api/v1/series/points": {
        "get": {
            "summary": "Every raw point of the matching series (x, metric_time, step, value, labels)",
            "parameters": [
                *_PARAMS,
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(FORMATS), "default": "csv"},
                    "description": (
                        'csv, jsonl (non-finite values as "NaN", "Infinity", "-Infinity"), '
                        "parquet or arrow (IPC stream); streamed"
                    ),
                },
            ],
            "responses": {
                "200": {
                    "description": "The points in x order",
                    "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                        for media in FORMATS.values()
                    },
                },
                **openapi.errors(400, 401, 404),
            },
        }
    },
}
