"""Names of the metrics matching a filter (service/_names.py): from the rollup
tiers once they are complete, the same answer as the points give."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sematic_metrics.service import _names, _tiers, pipelines, series
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.points_body import SCHEMA
from sematic_metrics.service.runs_body import decode, to_batch
from sematic_metrics.service.runs_writer import RunsWriter
from sematic_metrics.service.sqlfiles import q, schema_dir
from sematic_metrics.service.store import Store

US = 1_000_000
HOUR = 3600
DAY = 19676 * 86400  # a whole day since the epoch (2023-11-15)
END = (DAY + 10 * 86400) * US

# (name, run_id, root_id, scope, labels, seconds, value)
Point = tuple[str, str, str, str, dict[str, str], float, float]
POINTS: list[Point] = [
    ("loss", "a", "a", "0", {"team": "x"}, DAY + 10 * HOUR, 0.5),
    ("loss", "a", "a", "0", {"team": "x"}, DAY + 10 * HOUR + 1, 0.4),
    ("acc", "b", "a", "1", {"team": "y"}, DAY + 23 * HOUR + 59 * 60, 0.9),
    ("nan_only", "a", "a", "0", {}, DAY + 12 * HOUR, math.nan),
    ("late", "c", "c", "0", {}, DAY + 86400 + 5 * HOUR, 1.0),
    ("early", "a", "a", "0", {}, DAY - 3 * 86400, 2.0),
]
ALL = ["acc", "early", "late", "loss", "nan_only"]


def insert(store: Store, points: Sequence[Point]) -> None:
    n = len(points)
    table = pa.table(
        {
            "name": [p[0] for p in points],
            "metric_type": pa.array([1] * n, pa.int8()),
            "metric_time": pa.array([round(p[5] * US) for p in points], pa.int64()).cast(
                SCHEMA.field("metric_time").type
            ),
            "value": pa.array([p[6] for p in points], pa.float64()),
            "step": pa.array([None] * n, pa.int64()),
            "run_id": [p[1] for p in points],
            "root_id": [p[2] for p in points],
            "function_path": ["f." + p[1] for p in points],
            "root_function_path": ["pipe"] * n,
            "scope": [p[3] for p in points],
            "user_id": [""] * n,
            "labels": pa.array([list(p[4].items()) for p in points], SCHEMA.field("labels").type),
            "batch_id": [""] * n,
        },
        schema=SCHEMA,
    )
    store.insert_arrow("metric_points", table)


def metrics_filter(
    labels: dict[str, Any], from_s: float = 0, to_s: float | None = None
) -> series.MetricsFilter:
    filters, root = series.parse_labels(json.dumps(labels))
    to_us = END if to_s is None else round(to_s * US)
    return series.MetricsFilter(from_us=round(from_s * US), to_us=to_us, filters=filters, root=root)


def from_points(store: Store, flt: series.MetricsFilter) -> list[str]:
    """The answer of the points alone (the query used until the tiers are complete)."""
    return [str(n) for n in store.columns(q("names_matching"), flt.params())["g_name"]]


@pytest.mark.parametrize(
    ("labels", "window", "expected"),
    [
        ({}, None, ALL),
        ({"run_id": "a"}, None, ["early", "loss", "nan_only"]),
        ({"root": False}, None, ["acc"]),
        ({"root": True}, None, ["early", "late", "loss", "nan_only"]),
        ({"__scope__": "1"}, None, ["acc"]),
        ({"__scope__": "0", "run_id": "c"}, None, ["late"]),
        ({"team": "y"}, None, ["acc"]),
        ({"team": None}, None, ["early", "late", "nan_only"]),
        ({"root_function_path": "pipe", "function_path": "f.b"}, None, ["acc"]),
        ({"run_id": "zzz"}, None, []),
        ({}, (DAY + 10 * HOUR + 0.5, DAY + 12 * HOUR), ["loss"]),
        ({}, (DAY + 12 * HOUR, DAY + 12 * HOUR + 1e-6), ["nan_only"]),
        ({}, (DAY + 10 * HOUR + 1 + 1e-6, DAY + 12 * HOUR), []),
        ({}, (DAY + 10 * HOUR + 0.25, DAY + 10 * HOUR + 0.75), []),
        ({}, (DAY + 86400, DAY + 2 * 86400), ["late"]),
        ({"team": "x"}, (DAY + 9 * HOUR, DAY + 10 * HOUR + 1), ["loss"]),
        ({}, (DAY + 2 * 86400, DAY), []),
    ],
    ids=[
        "all",
        "run",
        "not-root",
        "root",
        "pipeline-scope",
        "run-scope-and-run",
        "custom-label",
        "missing-label",
        "paths",
        "no-run",
        "edge-inside-a-day",
        "one-microsecond",
        "after-the-points-of-a-day",
        "between-two-points-of-a-row",
        "whole-day",
        "to-is-exclusive",
        "empty-window",
    ],
)
def test_names_from_tiers_are_those_of_the_points(
    store: Store, labels: dict[str, Any], window: tuple[float, float] | None, expected: list[str]
) -> None:
    insert(store, POINTS)
    assert _tiers.ready(store)
    flt = metrics_filter(labels, *window) if window else metrics_filter(labels)
    assert _names.stored_names(store, flt) == expected
    assert from_points(store, flt) == expected


def test_names_include_system_metrics_with_points(store: Store) -> None:
    insert(store, POINTS)
    flt = metrics_filter({"run_id": "c"})
    system = {
        "sematic.yes": series.SystemMetric(lambda *_: {}, lambda _store, _flt: frozenset({"sematic.yes"})),
        "sematic.no": series.SystemMetric(lambda *_: {}, lambda _store, _flt: frozenset({"sematic.yes"})),
    }
    assert _names.names(store, flt, system) == ["late", "sematic.yes"]


# One point of one system metric, read with that metric's own parameter.
ONE_POINT_OF = """SELECT 1
FROM pipeline_points(
    metric = {metric:String}, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)},
    root = {root:Int8})
LIMIT 1"""


@pytest.mark.parametrize(
    ("labels", "expected", "skipped"),
    [
        ({}, True, False),
        ({"run_id": "r1", "function_path": "p.train"}, True, False),
        ({"run_id": "nested"}, False, False),  # only root runs: the query says so
        ({"root": True}, True, False),
        ({"root": False}, False, True),
        ({"__scope__": ""}, True, False),
        ({"__scope__": "1"}, False, True),
        ({"__scope__": "0", "run_id": "r1"}, False, True),
        ({"team": None}, True, False),
        ({"team": "x"}, False, True),
    ],
    ids=[
        "all",
        "run-and-path",
        "nested-run",
        "root",
        "not-root",
        "empty-scope",
        "pipeline-scope",
        "run-scope",
        "missing-label",
        "custom-label",
    ],
)
def test_system_metrics_skipped_without_a_query_only_when_none_matches(
    store: Store, labels: dict[str, Any], expected: bool, skipped: bool
) -> None:
    """A filter that no point of pipeline_points can match is answered
    without a query: the same answer as the query gives."""
    record = {
        "id": "r1",
        "root_id": "r1",
        "function_path": "p.train",
        "future_state": "RESOLVED",
        "created_at": DAY,
        "started_at": DAY + 1,
        "resolved_at": DAY + 11,
        "ended_at": DAY + 11,
        "updated_at": DAY + 11,
    }
    nested = {**record, "id": "nested", "function_path": "p.step"}
    body = json.dumps({"runs": [record, nested]}).encode()
    RunsWriter(store).write(to_batch(decode(body), "runs-1", None))
    flt = metrics_filter(labels)
    for name, provider in pipelines.system_metrics().items():
        metric = name.removeprefix("sematic.")
        queried = bool(store.rows(ONE_POINT_OF, {"metric": metric, **flt.params()}))
        assert (name in provider.present(store, flt), queried) == (expected, expected), name
    assert pipelines.matches_no_system_point(flt) is skipped


def test_names_while_the_tiers_backfill_is_pending(settings: Settings, tmp_path: Path) -> None:
    """Points stored before the tiers existed are in no tier row until the
    backfill: the points answer meanwhile, and the tiers the same after."""
    old = tmp_path / "schema"
    shutil.copytree(schema_dir(), old)
    for path in ("tables/005_metric_tiers.sql", "definitions/020_metric_tiers_mv.sql"):
        (old / path).unlink()
    with Store(settings) as store:
        migrate(store, old)
        insert(store, [p for p in POINTS if p[0] != "late"])
        migrate(store)  # creates the tiers: the points so far wait for the backfill
        insert(store, [p for p in POINTS if p[0] == "late"])  # through the view
        assert not _tiers.ready(store)
        cases = [metrics_filter({}), metrics_filter({"run_id": "a"}), metrics_filter({"root": False})]
        pending = [_names.stored_names(store, flt) for flt in cases]
        assert pending == [ALL, ["early", "loss", "nan_only"], ["acc"]]
        assert store.rows("SELECT DISTINCT name FROM metric_tiers") == [{"name": "late"}]
        assert _tiers.backfill(store) == len(POINTS) - 1
        assert _tiers.ready(store)
        assert [_names.stored_names(store, flt) for flt in cases] == pending
        store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


def test_a_tier_row_outliving_its_points_names_nothing(store: Store, settings: Settings) -> None:
    """A tier row expires with its newest point: once the TTL removed every
    point it counts, the row may still be there. With a retention configured,
    such a row is checked on the points."""
    now = time.time()
    insert(
        store,
        [
            ("old", "a", "a", "0", {}, now - 40 * 86400, 1.0),
            ("new", "a", "a", "0", {}, now - 86400, 1.0),
        ],
    )
    store.command("DELETE FROM metric_points WHERE name = 'old'")  # what the TTL's merge does
    flt = series.MetricsFilter()
    assert _names.stored_names(store, flt) == ["new", "old"]  # no retention: the row counts
    with Store(dataclasses.replace(settings, ttl_days=30)) as retained:
        assert _names.stored_names(retained, flt) == ["new"]
        assert from_points(retained, flt) == ["new"]


@pytest.mark.parametrize(
    ("ttl_days", "expected"),
    [(None, -(2**63)), (30, (1_700_000_000 + 3600 - 30 * 86400) * US)],
    ids=["no-retention", "thirty-days"],
)
def test_expiry_bound(ttl_days: int | None, expected: int) -> None:
    assert _tiers.expire_us(ttl_days, 1_700_000_000.5) == expected
