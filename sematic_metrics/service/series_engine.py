"""The series engine: a metric as buckets (value, min, max, first, last,
count) per series, on the time or the step axis, read from the rollup tiers.

A read takes three steps, all aggregation in ClickHouse
(schema/queries/series_engine.sql):

1. extents: per series its point count and x extent inside the range, from
   the coarsest tier rows that fit the range and finer rows at its ends;
2. the width: raw points (width 0) when every series has at most ``buckets``
   distinct x values, else the smallest offered width keeping every series
   within ``buckets`` (``_tiers.choose_width``); small series count their
   distinct x values in the same query as their buckets;
3. the buckets, each made of whole tier rows inside it, coarsest first, with
   finer rows and raw points only at its edges (``_tiers.plan``).

Every answer equals the one computed from the raw points: counts, min, max,
first and last exactly, sums and averages up to rounding (compensated sums).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sematic_metrics.errors import InvalidInputError, NotFoundError
from sematic_metrics.rules import TYPE_NAMES, WELL_KNOWN_LABELS
from sematic_metrics.service import _tiers
from sematic_metrics.service._tiers import Axis
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

GROUP_BY_OPTIONS = ("run_id", "function_path", "root_id", "root_function_path")
DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 10_000
# A series with more points than this many times ``buckets`` is bucketed
# without counting its distinct x values (a scan of every point).
DISTINCT_CHECK_FACTOR = 64
_US = 1_000_000


@dataclass(frozen=True)
class SeriesQuery:
    """What to read: one metric, a label filter, a grouping, an axis and range."""

    name: str
    filters: dict[str, str] = field(default_factory=dict)
    root: int = -1
    group_by: tuple[str, ...] = ()
    axis: Axis = "time"
    from_x: int | None = None
    to_x: int | None = None
    buckets: int = DEFAULT_BUCKETS

    def key(self) -> Hashable:
        """The query as a hashable value (the series cache's key)."""
        return (
            self.name,
            tuple(self.filters.items()),
            self.root,
            self.group_by,
            self.axis,
            self.from_x,
            self.to_x,
            self.buckets,
        )

    def params(self) -> dict[str, Any]:
        """The parameters of the engine's queries (with the label filter of
        fragments/series_label_filter.sql)."""
        others = {k: v for k, v in self.filters.items() if k not in WELL_KNOWN_LABELS}
        return {
            "name": self.name,
            **{f"has_{c}": label in self.filters for label, c in WELL_KNOWN_LABELS.items()},
            **{f"f_{c}": self.filters.get(label, "") for label, c in WELL_KNOWN_LABELS.items()},
            "label_keys": list(others),
            "label_values": list(others.values()),
            "root": self.root,
            **{f"by_{g}": g in self.group_by for g in GROUP_BY_OPTIONS},
        }


class Series(msgspec.Struct):
    """One series of an answer: parallel arrays in x order."""

    group: dict[str, str]
    x: list[float] = msgspec.field(default_factory=list)
    value: list[float | None] = msgspec.field(default_factory=list)
    min: list[float | None] = msgspec.field(default_factory=list)
    max: list[float | None] = msgspec.field(default_factory=list)
    first: list[float | None] = msgspec.field(default_factory=list)
    last: list[float | None] = msgspec.field(default_factory=list)
    count: list[int] = msgspec.field(default_factory=list)


class SeriesContent(msgspec.Struct):
    """The ``content`` of ``GET /api/v1/series``: ``width`` 0 means raw points."""

    metric_name: str
    metric_type: str
    x: str
    width: float
    series: list[Series]


def _key(row: Mapping[str, Any], group_by: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(row[f"g_{g}"]) for g in group_by)


def extents(store: Store, query: SeriesQuery, lo: int, hi: int) -> dict[tuple[str, ...], dict[str, int]]:
    """Per series: points, min_x, max_x inside [lo, hi)."""
    plan = _tiers.plan(query.axis, hi - lo, lo, hi, single=True, raw_only=not _tiers.ready(store))
    rows = store.rows(q(plan.query("series_spans")), {**query.params(), **plan.params()})
    return {
        _key(row, query.group_by): {
            "points": int(row["points"]),
            "min_x": int(row["min_x"]),
            "max_x": int(row["max_x"]),
        }
        for row in rows
        if int(row["points"]) > 0
    }


def distinct_fits(
    store: Store, query: SeriesQuery, found: Mapping[tuple[str, ...], Mapping[str, int]], limit: int
) -> bool:
    """Whether every series has at most ``limit`` distinct x values (a scan of
    the points of the series with more points than that)."""
    big = [e for e in found.values() if e["points"] > limit]
    if not big:
        return True
    lo = min(e["min_x"] for e in big)
    hi = max(e["max_x"] for e in big) + 1
    rows = store.rows(
        q("series_distinct"),
        {**query.params(), "axis": _tiers.AXIS_CODES[query.axis], "from_x": lo, "to_x": hi},
    )
    return all(int(row["distinct_x"]) <= limit for row in rows)


def raw_buckets(
    store: Store, query: SeriesQuery, gauge: bool, width: int, from_x: int, to_x: int
) -> tuple[list[Series], dict[int, int]]:
    """Buckets of ``width`` from the raw points, and each series' distinct x
    values (by group hash) counted by the same query: buckets split x, so the
    per-bucket counts add up."""
    plan = _tiers.plan(query.axis, width, from_x, to_x, raw_only=True)
    columns = store.columns(q(plan.query()), {**query.params(), **plan.params(), "gauge": gauge})
    distinct: dict[int, int] = {}
    for key, n in zip(columns.get("g_hash", ()), columns.get("distinct_x", ()), strict=True):
        distinct[key] = distinct.get(key, 0) + int(n)
    return _sorted(_shape(columns, query), query), distinct


def read(store: Store, catalog: Catalog, query: SeriesQuery) -> SeriesContent:
    """The answer of ``GET /api/v1/series`` for ``query``."""
    code = catalog.type_of(query.name)
    if code is None:
        raise NotFoundError(
            f"name: metric {query.name!r} not found: no point was ever stored under that name"
        )
    type_name = TYPE_NAMES[code]
    lo_limit, hi_limit = _tiers.X_RANGE[query.axis]
    lo = lo_limit if query.from_x is None else max(query.from_x, lo_limit)
    hi = hi_limit if query.to_x is None else min(query.to_x, hi_limit)
    empty = SeriesContent(query.name, type_name, query.axis, 0, [])
    if lo >= hi:
        return empty
    found = extents(store, query, lo, hi)
    if not found:
        return empty
    from_x = lo if query.from_x is not None else min(e["min_x"] for e in found.values())
    to_x = hi if query.to_x is not None else max(e["max_x"] for e in found.values()) + 1
    spans = [(e["min_x"], e["max_x"]) for e in found.values()]
    gauge = type_name == "GAUGE"
    raw = SeriesContent(query.name, type_name, query.axis, 0, [])
    if all(e["points"] <= query.buckets for e in found.values()):
        raw.series = buckets_at(store, query, gauge, 0, from_x, to_x, spans)
        return raw
    width = _tiers.choose_width(query.axis, spans, query.buckets)
    shown: float | int = width / _US if query.axis == "time" else width
    if any(e["points"] > DISTINCT_CHECK_FACTOR * query.buckets for e in found.values()):
        # An end the client left open moves out to a multiple of the width (no
        # point lies beyond it): such an end needs no finer rows, and a read
        # without any raw point has the cheaper query (series_buckets_tiers).
        if query.from_x is None:
            from_x = max(lo, from_x // width * width)
        if query.to_x is None:
            to_x = min(hi, -(-to_x // width) * width)
        series = buckets_at(store, query, gauge, width, from_x, to_x, spans)
        return SeriesContent(query.name, type_name, query.axis, shown, series)
    # Small series: their buckets from the raw points, counting each series'
    # distinct x values; only when every series has at most ``buckets`` of
    # them is the answer the raw points after all, read by a second query.
    series, distinct = raw_buckets(store, query, gauge, width, from_x, to_x)
    if all(n <= query.buckets for n in distinct.values()):
        raw.series = buckets_at(store, query, gauge, 0, from_x, to_x, spans)
        return raw
    return SeriesContent(query.name, type_name, query.axis, shown, series)


def buckets_at(
    store: Store,
    query: SeriesQuery,
    gauge: bool,
    width: int,
    from_x: int,
    to_x: int,
    spans: Sequence[tuple[int, int]],
) -> list[Series]:
    """The series of ``query`` as buckets of ``width`` x units (any width;
    0 for one entry per distinct x) over [from_x, to_x). ``spans`` are the
    series' (first x, last x): edges outside them are not planned."""
    if width:
        # Until the backfill is done the tiers lack older points: read the raw ones.
        plan = _tiers.plan(query.axis, width, from_x, to_x, spans, raw_only=not _tiers.ready(store))
    else:
        plan = _tiers.plan(query.axis, 1, from_x, to_x, raw_only=True)
    columns = store.columns(q(plan.query()), {**query.params(), **plan.params(), "gauge": gauge})
    return _sorted(_shape(columns, query), query)


def _sorted(series: list[Series], query: SeriesQuery) -> list[Series]:
    series.sort(key=lambda s: tuple(s.group[g] for g in query.group_by))
    return series


def _shape(columns: Mapping[str, Sequence[Any]], query: SeriesQuery) -> list[Series]:
    """Rows ordered by group, then bucket, as one Series per group (list slices:
    no work per value)."""
    hashes = columns.get("g_hash", ())
    if not hashes:
        return []
    ends = [i for i in range(1, len(hashes)) if hashes[i] != hashes[i - 1]]
    ends.append(len(hashes))
    xs = columns["x_seconds"] if query.axis == "time" else columns["bucket_x"]
    groups = [columns[f"g_{g}"] for g in query.group_by]
    out: list[Series] = []
    start = 0
    for end in ends:
        out.append(
            Series(
                group={g: str(values[start]) for g, values in zip(query.group_by, groups, strict=True)},
                x=list(xs[start:end]),
                value=list(columns["v_value"][start:end]),
                min=list(columns["v_min"][start:end]),
                max=list(columns["v_max"][start:end]),
                first=list(columns["v_first"][start:end]),
                last=list(columns["v_last"][start:end]),
                count=list(columns["points"][start:end]),
            )
        )
        start = end
    return out


def time_param(raw: str, name: str) -> int:
    """Epoch seconds as written (microsecond precision) as microseconds, floored."""
    try:
        value = decimal.Decimal(raw.strip())
    except decimal.InvalidOperation:
        raise InvalidInputError(f"{name}: {raw[:40]!r} is not a number of epoch seconds") from None
    if not value.is_finite():
        raise InvalidInputError(f"{name}: {raw[:40]!r} is not a finite time")
    lo, hi = _tiers.X_RANGE["time"]
    return min(max(math.floor(value * _US), lo), hi)


def step_param(raw: str, name: str) -> int:
    """A step: an integer."""
    text = raw.strip()
    if not text.lstrip("-").isdigit() or len(text) > 20:
        raise InvalidInputError(f"{name}: {raw[:40]!r} is not an integer step")
    lo, hi = _tiers.X_RANGE["step"]
    return min(max(int(text), lo), hi)
