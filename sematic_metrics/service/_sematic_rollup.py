"""Sematic's bucket width rule, and its ``GET /api/v1/metrics/{name}`` with
a rollup read through the series engine's extents and tiers, with the
answer the metric_series view gives.

Sematic's rule: ``rollup=auto`` is whole seconds when every series has at
most 300 distinct times, else (and for an integer rollup) the smallest whole
seconds keeping every series within 300 buckets (``bucket_width_s``); the
value is the average (gauge) or sum (count) of the finite values, rows
ordered by bucket, then group.

A read first takes each series' extent and point count from the coarsest
tier (the whole x range when no point lies outside the window, the cheapest
query to plan), then, in the usual case, one query for the buckets:

- series of at most ``LARGE`` (4.9M) points: the metric_series view's
  aggregation at the width, with each bucket's distinct times (the
  ``sematic_buckets`` query); only when every series has at most 300 of them
  is a second query made, in whole seconds;
- larger: the buckets from the tiers, once the hour or minute tier shows a
  series with more than 300 distinct times (a lower bound, as in
  _stream_extents.py); when neither does, they are counted on the points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sematic_metrics.service import _tiers
from sematic_metrics.service import series_engine as engine
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

MAX_SERIES_POINTS = 300
# Series with more points are bucketed from the tiers. A width of whole
# seconds is not a multiple of the 60 s tier, so every bucket edge takes the
# raw points of one minute, which cost the granule (8,192 rows) holding them:
# below about two granules a bucket, the edges read most of the series anyway
# and the view's one scan is cheaper (crossover measured between 3M and 10M).
LARGE = MAX_SERIES_POINTS * 2 * 8192
_US = 1_000_000


def bucket_width_s(extents: list[tuple[int, int]], minimum_s: int) -> int:
    """Smallest whole seconds >= minimum_s keeping every series at <= 300 buckets.

    ``extents`` are (first_us, last_us) per series; buckets are floor-aligned
    to multiples of the width since the epoch.
    """
    if not extents:
        return max(minimum_s, 1)
    span = max(last - first for first, last in extents)
    width = max(minimum_s, 1, math.ceil(span / (MAX_SERIES_POINTS * _US)))

    def fits(w: int, first: int, last: int) -> bool:
        step = w * _US
        return last // step - first // step + 1 <= MAX_SERIES_POINTS

    while True:
        # A series shorter than 298 widths always fits, whatever its alignment.
        tight = [(f, last) for f, last in extents if last - f >= (MAX_SERIES_POINTS - 2) * width * _US]
        if all(fits(width, f, last) for f, last in tight):
            return width
        width += 1


def timestamp(bucket_us: int) -> str:
    """A bucket's start as Sematic writes it: whole seconds without a fraction."""
    if bucket_us % _US == 0:
        return str(bucket_us // _US)
    return repr(bucket_us / _US)


def content(
    name: str, type_name: str, group_by: Sequence[str], bucketed: bool, rows: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """The ``content`` from a view query's columns (value, bucket_us, g_*)."""
    label_columns = [rows.get(f"g_{g}", ()) for g in group_by]
    if bucketed:
        label_columns.insert(0, [timestamp(int(b)) for b in rows.get("bucket_us", ())])
    out: list[list[Any]] = [
        [value, [str(label) for label in labels]]
        for value, *labels in zip(rows.get("value", ()), *label_columns, strict=True)
    ]
    columns = (["timestamp"] if bucketed else []) + list(group_by)
    return {"metric_name": name, "metric_type": type_name, "series": out, "columns": columns}


def _extents(
    store: Store, query: engine.SeriesQuery, from_us: int, to_us: int
) -> tuple[dict[Any, dict[str, int]], bool]:
    """The series' extents in [from_us, to_us), and whether no point lies at
    or after to_us."""
    found = engine.extents(store, query, *_tiers.X_RANGE["time"])
    closed = all(e["max_x"] < to_us for e in found.values())
    if closed and all(from_us <= e["min_x"] for e in found.values()):
        return found, closed
    return engine.extents(store, query, from_us, to_us), closed


def _many_times(store: Store, query: engine.SeriesQuery, from_us: int, to_us: int, span_us: int) -> bool:
    """Whether some series has more than 300 distinct times, by a lower bound
    from the time tier rows inside [from_us, to_us): hour rows first when the
    longest series spans enough hours to show it (fewer rows to read), else
    or then minute rows. Rows that may count points the retention TTL
    removed are left out, so the bound holds."""
    from_us = max(from_us, _tiers.expire_us(store.settings.ttl_days))
    minute, hour, _ = _tiers.TIERS["time"]
    tiers = [hour, minute] if span_us > MAX_SERIES_POINTS * hour else [minute]
    for tier in tiers:
        plan = _tiers.plan("time", tier, from_us, to_us, single=True)
        only = {"tier_a": tier, "use_a": True, "top_a": True, "use_b": False, "use_c": False}
        rows = store.rows(q("series_times_at_least"), {**query.params(), **plan.params(), **only})
        if max((int(row["times_at_least"]) for row in rows), default=0) > MAX_SERIES_POINTS:
            return True
    return False


def series(
    store: Store,
    name: str,
    type_name: str,
    window: tuple[int, int],
    filters: dict[str, str],
    root: int,
    group_by: Sequence[str],
    rollup: int | str,
) -> tuple[dict[str, Any], bool]:
    """The ``content`` of the Sematic series request with a rollup (see the
    module), and whether no matching point lay at or after the window's end:
    then the answer holds for any later end while the metric is unchanged."""
    from_us, to_us = window
    query = engine.SeriesQuery(name, filters, root, tuple(group_by), "time")
    found, closed = _extents(store, query, from_us, to_us) if from_us < to_us else ({}, False)
    if not found:
        return content(name, type_name, group_by, True, {}), closed
    spans = [(e["min_x"], e["max_x"]) for e in found.values()]
    points = max(e["points"] for e in found.values())
    width = bucket_width_s(spans, 1 if rollup == "auto" else int(rollup)) * _US
    gauge = type_name == "GAUGE"
    if points > LARGE:
        if rollup != "auto" or _many_times(store, query, from_us, to_us, max(last - f for f, last in spans)):
            # The range cut to the series' buckets: edges on multiples of the
            # width need no finer rows there.
            lo = max(from_us, min(f for f, _ in spans) // width * width)
            hi = min(to_us, (max(last for _, last in spans) // width + 1) * width)
            answer = engine.buckets_at(store, query, gauge, width, lo, hi, spans)
            shaped = {
                **content(name, type_name, group_by, True, {}),
                "series": _rows(answer, group_by, gauge),
            }
            return shaped, closed
        if engine.distinct_fits(store, query, found, MAX_SERIES_POINTS):
            width = _US
    params = {**query.params(), "from_us": from_us, "to_us": to_us, "gauge": gauge}
    if rollup == "auto" and points <= MAX_SERIES_POINTS:
        width = _US
    # Distinct times are counted only where they may send the answer to whole seconds.
    count_times = rollup == "auto" and width != _US
    rows = store.columns(q("sematic_buckets"), {**params, "width_us": width, "times": count_times})
    if count_times:
        times: dict[tuple[Any, ...], int] = {}
        keys = zip(*(rows.get(f"g_{g}", ()) for g in engine.GROUP_BY_OPTIONS), strict=True)
        for key, n in zip(keys, rows.get("distinct_times", ()), strict=True):
            times[key] = times.get(key, 0) + int(n)
        # Each bucket's count stops at 301, so a sum up to 300 is exact.
        if max(times.values(), default=0) <= MAX_SERIES_POINTS:
            rows = store.columns(q("sematic_buckets"), {**params, "width_us": _US, "times": False})
    return content(name, type_name, group_by, True, rows), closed


def _rows(answer: list[engine.Series], group_by: Sequence[str], gauge: bool) -> list[list[Any]]:
    """Sematic's rows: [value, [timestamp, *labels]] by bucket, then group."""
    rows: list[tuple[int, tuple[str, ...], tuple[str, ...], float]] = []
    for one in answer:
        labels = tuple(one.group[g] for g in group_by)
        order = tuple(one.group.get(g, "") for g in engine.GROUP_BY_OPTIONS)
        for x, value in zip(one.x, one.value, strict=True):
            # No finite value: NaN (null) for a gauge, an empty sum for a count.
            shown = value if value is not None else (math.nan if gauge else 0.0)
            rows.append((round(x * _US), order, labels, shown))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [[value, [timestamp(bucket), *labels]] for bucket, _order, labels, value in rows]
