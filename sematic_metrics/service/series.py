"""Read paths of the metrics API: bucketed series, names and deletes.

The aggregation runs in ClickHouse: a rollup from the series engine's tiers
(_sematic_rollup.py), one value per group from the metric_series view;
Python only chooses the bucket width and shapes the JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sematic_metrics.errors import InvalidInputError, NotFoundError
from sematic_metrics.rules import DEFAULT_FROM_TIME, DEFAULT_FROM_US, MAX_TIME, MIN_TIME, ROOT_FILTER
from sematic_metrics.rules import US_PER_S as _US
from sematic_metrics.service import _tiers
from sematic_metrics.service._sematic_rollup import MAX_SERIES_POINTS, bucket_width_s, content
from sematic_metrics.service._sematic_rollup import series as sematic_rollup
from sematic_metrics.service.catalog import TYPE_NAMES, Catalog
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

GROUP_BY_OPTIONS = ("run_id", "function_path", "root_id", "root_function_path")
Rollup = int | Literal["auto"] | None


def _now_us() -> int:
    return math.floor(time.time() * _US)


@dataclass(frozen=True)
class MetricsFilter:
    """The label filter and half-open time window shared by reads and deletes.

    The defaults are the API's: from the Unix epoch (rules.DEFAULT_FROM_TIME)
    to now, as a request without from_time and to_time.
    """

    from_us: int = DEFAULT_FROM_US
    to_us: int = field(default_factory=_now_us)
    filters: dict[str, str] = field(default_factory=dict)
    root: int = -1

    def params(self) -> dict[str, Any]:
        return {
            "from_us": self.from_us,
            "to_us": self.to_us,
            "filter_keys": list(self.filters),
            "filter_values": list(self.filters.values()),
            "root": self.root,
        }


def _time_param(raw: str | None, name: str, default: float) -> int:
    if raw is None or raw == "":
        value = default
    else:
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInputError(f"{name}: {raw[:40]!r} is not a number of epoch seconds") from None
        if math.isnan(value):
            raise InvalidInputError(f"{name}: NaN is not a time")
    value = min(max(value, MIN_TIME), MAX_TIME)
    return math.floor(value * _US)


def parse_labels(raw: str | None) -> tuple[dict[str, str], int]:
    """Parse the ``labels`` JSON object into (label filters, root flag)."""
    if not raw:
        return {}, -1
    try:
        labels = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"labels: not a JSON object ({exc})") from None
    if not isinstance(labels, dict):
        raise InvalidInputError("labels: must be a JSON object of label name to value")
    filters: dict[str, str] = {}
    root = -1
    for key, value in labels.items():
        if key == ROOT_FILTER:
            if not isinstance(value, bool):
                raise InvalidInputError("labels.root: must be true or false")
            root = int(value)
        elif value is None:
            filters[key] = ""
        elif isinstance(value, str | int | float):  # numbers and booleans as str() of them
            filters[key] = str(value)
        else:
            raise InvalidInputError(f"labels.{key}: must be a string, a number or null")
    return filters, root


def parse_filter(params: Mapping[str, str]) -> MetricsFilter:
    filters, root = parse_labels(params.get("labels"))
    return MetricsFilter(
        from_us=_time_param(params.get("from_time"), "from_time", DEFAULT_FROM_TIME),
        to_us=_time_param(params.get("to_time"), "to_time", time.time()),
        filters=filters,
        root=root,
    )


def parse_group_by(raw: str | None) -> list[str]:
    group_by = [part.strip() for part in (raw or "").split(",") if part.strip()]
    for part in group_by:
        if part not in GROUP_BY_OPTIONS:
            raise InvalidInputError(
                f"group_by: {part[:60]!r} is not a groupable label; options are {', '.join(GROUP_BY_OPTIONS)}"
            )
    return list(dict.fromkeys(group_by))


def parse_rollup(raw: str | None) -> Rollup:
    if raw is None:
        return None
    if raw == "auto":
        return "auto"
    if raw.isdigit() and 0 < int(raw) <= 10**10:
        return int(raw)
    raise InvalidInputError(f"rollup: {raw[:40]!r} is not valid; use a positive number of seconds or 'auto'")


SeriesFn = Callable[[Store, str, MetricsFilter, list[str], Rollup], dict[str, Any]]


@dataclass(frozen=True)
class SystemMetric:
    """A metric computed from other tables (Sematic's system metrics from runs):
    its series, and ``present``: the names of the system metrics with points
    matching a filter, for this one and the others sharing the function (one
    call answers for all of them). The Service owns the mapping of names to
    providers and passes it to the functions below."""

    series: SeriesFn
    present: Callable[[Store, MetricsFilter], frozenset[str]]


def metric_type_name(catalog: Catalog, name: str) -> str:
    code = catalog.type_of(name)
    if code is None:
        raise NotFoundError(f"metric {name!r} not found: no point was ever stored under that name")
    return TYPE_NAMES[code]


def series(
    store: Store,
    catalog: Catalog,
    name: str,
    flt: MetricsFilter,
    group_by: list[str],
    rollup: Rollup,
    system: Mapping[str, SystemMetric],
) -> tuple[dict[str, Any], bool]:
    """The ``content`` of ``GET /api/v1/metrics/{name}``, and whether it holds
    for any later end of the window while the metric is unchanged (no
    matching point lay at or after it; only rollups of stored metrics tell)."""
    provider = system.get(name)
    if provider is not None:
        return provider.series(store, name, flt, group_by, rollup), False
    type_name = metric_type_name(catalog, name)
    if rollup is None:
        views = (q("series"), q("series_extents"))
        return run_series(store, views, {"name": name}, type_name, name, flt, group_by, rollup), False
    window = (flt.from_us, flt.to_us)
    return sematic_rollup(store, name, type_name, window, flt.filters, flt.root, group_by, rollup)


def run_series(
    store: Store,
    sql: tuple[str, str],
    extra: Mapping[str, Any],
    type_name: str,
    name: str,
    flt: MetricsFilter,
    group_by: list[str],
    rollup: Rollup,
) -> dict[str, Any]:
    """Run metric_series-shaped queries: ``sql`` is (values, extents).

    Without a rollup one pass gives one value per group. With one, a first
    pass reads each series' extent and distinct times to choose the width.
    """
    values_sql, extents_sql = sql
    params: dict[str, Any] = {
        **extra,
        **flt.params(),
        "gauge": type_name == "GAUGE",
        **{f"by_{g}": g in group_by for g in GROUP_BY_OPTIONS},
        "width_us": 0,
    }
    rows: Mapping[str, Sequence[Any]] = {}
    if flt.from_us < flt.to_us:
        if rollup is None:
            rows = store.columns(values_sql, params)
        else:
            extents = store.rows(extents_sql, params)
            if extents:
                if rollup == "auto" and all(r["distinct_times"] <= MAX_SERIES_POINTS for r in extents):
                    # Whole seconds (floor), as Sematic 0.41 answers on SQLite: its
                    # dashboard labels x by second, so two points in one second collide.
                    width_us = _US
                else:
                    minimum = 1 if rollup == "auto" else int(rollup)
                    width_us = bucket_width_s([(r["first_us"], r["last_us"]) for r in extents], minimum) * _US
                rows = store.columns(values_sql, {**params, "width_us": width_us})
    return content(name, type_name, group_by, rollup is not None, rows)


def delete(
    store: Store, catalog: Catalog, name: str, flt: MetricsFilter, system: Mapping[str, SystemMetric]
) -> int:
    if name in system:
        raise InvalidInputError(f"name: {name!r} is computed from runs and cannot be deleted")
    metric_type_name(catalog, name)
    params = {"name": name, **flt.params()}
    # Count and delete under the store's write lock: no INSERT (or other
    # statement) of this process runs between the two, so the count is what
    # was deleted. Embedded, this process is the only writer (the data
    # directory is locked to it). With a server, points that another process
    # stores in the same window meanwhile may be deleted uncounted, and points
    # a TTL expires meanwhile counted undeleted.
    with store.writing():
        rows = store.rows(q("count_matching"), params)
        matched = int(rows[0]["points"] or 0) if rows else 0
        if matched:
            store.command(q("delete_matching"), params)
            _tiers.repair_after_delete(store, params)
    return matched
