"""The series engine against a direct computation over the raw points.

The property test draws random series (NaN and infinities, late and
out-of-order batches, points far in the past), random ranges, widths (offered
ones and arbitrary ones, whose buckets are served from tier rows with finer
rows at their edges) and groupings, and compares every bucket with the same
aggregation done in Python over the rows of ``metric_points``: counts, min,
max, first and last exactly, sums and averages within 1e-12 of the sum of
the magnitudes they add.
"""

from __future__ import annotations

import itertools
import math
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sematic_metrics.errors import NotFoundError
from sematic_metrics.rules import COUNT, GAUGE
from sematic_metrics.service import _sematic_rollup, _tiers, series
from sematic_metrics.service import series_engine as engine
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.points_body import SCHEMA
from sematic_metrics.service.sqlfiles import q, schema_dir
from sematic_metrics.service.store import Store
from tests._support import SOAK, wait_until

T0_US = 1_700_000_000 * 1_000_000
DAY_US = 1_699_920_000 * 1_000_000  # a whole day since the epoch
Point = tuple[str, int, int | None, float]  # run, time_us, step, value


def insert(
    store: Store, name: str, points: Sequence[Point], metric_type: int = GAUGE, token: str = ""
) -> None:
    """Store points as the writer does (one INSERT with a dedup token)."""
    n = len(points)
    runs = [p[0] for p in points]
    table = pa.table(
        {
            "name": [name] * n,
            "metric_type": pa.array([metric_type] * n, pa.int8()),
            "metric_time": pa.array([p[1] for p in points], pa.int64()).cast(
                SCHEMA.field("metric_time").type
            ),
            "value": pa.array([p[3] for p in points], pa.float64()),
            "step": pa.array([p[2] for p in points], pa.int64()),
            "run_id": runs,
            "root_id": ["root" if r == "a" else r for r in runs],
            "function_path": ["f." + r for r in runs],
            "root_function_path": ["pipe"] * n,
            "scope": ["0"] * n,
            "user_id": [""] * n,
            "labels": pa.array(
                [[("team", "x" if r != "c" else "y")] for r in runs], SCHEMA.field("labels").type
            ),
            "batch_id": [""] * n,
        },
        schema=SCHEMA,
    )
    store.insert_arrow("metric_points", table, {"insert_deduplication_token": token or uuid.uuid4().hex})


# -- the reference: Python over the raw rows ------------------------------------------
def reference(
    points: Sequence[Point], axis: str, group_by: Sequence[str], width: int, lo: int, hi: int, gauge: bool
) -> dict[tuple[str, ...], dict[int, dict[str, Any]]]:
    """group -> bucket start -> expected aggregates (width 0: per distinct x)."""
    out: dict[tuple[str, ...], dict[int, list[tuple[int, int, float]]]] = {}
    for run, t, step, value in points:
        if axis == "step" and step is None:
            continue
        x = t if axis == "time" else step
        assert x is not None
        if not lo <= x < hi:
            continue
        labels = {"run_id": run, "function_path": "f." + run, "root_id": "root" if run == "a" else run}
        key = tuple(labels.get(g, "pipe") for g in group_by)
        start = x - x % width if width else x
        out.setdefault(key, {}).setdefault(start, []).append((x if axis == "step" else 0, t, value))
    result: dict[tuple[str, ...], dict[int, dict[str, Any]]] = {}
    for key, buckets in out.items():
        result[key] = {}
        for start, rows in buckets.items():
            finite = [r for r in rows if math.isfinite(r[2])]
            values = [r[2] for r in finite]
            total = math.fsum(values)
            result[key][start] = {
                "count": len(rows),
                "value": (total / len(values) if gauge else total) if values else None,
                "scale": (math.fsum(abs(v) for v in values) / (len(values) if gauge else 1)) if values else 0,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
                "first": min(finite)[2] if finite else None,
                "last": max(finite)[2] if finite else None,
            }
    return result


def assert_matches(
    series: list[engine.Series],
    expected: dict[tuple[str, ...], dict[int, dict[str, Any]]],
    group_by: Sequence[str],
    axis: str,
) -> None:
    got_keys = [tuple(s.group[g] for g in group_by) for s in series]
    assert got_keys == sorted(expected), "series and their order"
    for s, key in zip(series, got_keys, strict=True):
        starts = [round(x * 1_000_000) if axis == "time" else int(x) for x in s.x]
        assert starts == sorted(expected[key]), f"bucket starts of {key}"
        for i, start in enumerate(starts):
            want = expected[key][start]
            where = f"{key} bucket {start}"
            assert s.count[i] == want["count"], where
            for field in ("min", "max", "first", "last"):
                assert getattr(s, field)[i] == want[field], f"{field} of {where}"
            if want["value"] is None:
                assert s.value[i] is None, where
            else:
                value = s.value[i]
                assert value is not None, where
                assert abs(value - want["value"]) <= 1e-12 * max(want["scale"], abs(want["value"])), where


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared(engine_dir: Path) -> Iterator[tuple[Store, Catalog]]:
    """One database for every example of the property test (distinct metric names)."""
    settings_ = Settings(data_dir=engine_dir, database=f"t_{uuid.uuid4().hex[:12]}", read_pool_size=2)
    with Store(settings_) as store:
        migrate(store)
        catalog = Catalog(store)
        yield store, catalog
        store.command(f"DROP DATABASE IF EXISTS `{settings_.database}` SYNC")


@pytest.fixture
def catalog(store: Store) -> Catalog:
    return Catalog(store)


_names = itertools.count()
BASES = [T0_US, -630_000_000 * 1_000_000, 0]  # 2023, 1950 (far in the past), the epoch
values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.5]),
)


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.sampled_from(BASES))
    spread = draw(st.sampled_from([10**6, 300 * 10**6, 2 * 86400 * 10**6, 40 * 86400 * 10**6]))
    step_spread = draw(st.sampled_from([50, 5000, 3_000_000]))
    point = st.tuples(
        st.sampled_from("abc"),
        st.integers(0, spread).map(lambda t: base + t),
        st.one_of(st.none(), st.integers(0, step_spread)),
        values,
    )
    batches = draw(st.lists(st.lists(point, min_size=1, max_size=40), min_size=1, max_size=3))
    return {
        "batches": batches,
        "type": draw(st.sampled_from([GAUGE, COUNT])),
        "axis": draw(st.sampled_from(_tiers.AXES)),
        "group_by": draw(st.lists(st.sampled_from(engine.GROUP_BY_OPTIONS), unique=True, max_size=2)),
        "buckets": draw(st.integers(1, 60)),
        "cut": draw(st.tuples(st.floats(0, 1), st.floats(0, 1))),
        "ranged": draw(st.booleans()),
        "probes": draw(st.lists(probes(), min_size=PROBES, max_size=PROBES)),
    }


@st.composite
def probes(draw: st.DrawFn) -> dict[str, Any]:
    """One more read of a dataset: a grouping, a range and any width."""
    return {
        "group_by": draw(st.lists(st.sampled_from(engine.GROUP_BY_OPTIONS), unique=True, max_size=2)),
        "cut": draw(st.tuples(st.floats(0, 1), st.floats(0, 1))),
        "ranged": draw(st.booleans()),
        "width": draw(st.integers(1, 10**6)),
        "width_scale": draw(st.sampled_from([1, 1_000, 1_000_000])),
        "parts": draw(st.one_of(st.none(), st.integers(1, 40))),
    }


# CI runs EXAMPLES datasets, each read once through ``read`` (the width the
# engine picks) and PROBES times more through ``buckets_at`` (any grouping,
# range and width): 50 x 41 = 2,050 cases. A soak run (SEMATIC_METRICS_SOAK=1)
# draws 1,000 datasets (41,000 cases).
EXAMPLES = 1000 if SOAK else 50
PROBES = 40


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_engine_equals_raw_computation(shared: tuple[Store, Catalog], data: dict[str, Any]) -> None:
    store, catalog = shared
    name = f"m{next(_names)}"
    for batch in data["batches"]:  # batches in any time order: late and out-of-order points
        insert(store, name, batch, data["type"])
    points = [p for batch in data["batches"] for p in batch]
    axis, group_by, buckets = data["axis"], tuple(data["group_by"]), data["buckets"]
    xs = sorted(p[1] if axis == "time" else p[2] for p in points if axis == "time" or p[2] is not None)
    lo = hi = None
    if data["ranged"] and xs:
        a, b = sorted(xs[0] + int(c * (xs[-1] + 1 - xs[0])) for c in data["cut"])
        lo, hi = a, max(b, a + 1)
    gauge = data["type"] == GAUGE
    query = engine.SeriesQuery(name, group_by=group_by, axis=axis, from_x=lo, to_x=hi, buckets=buckets)
    answer = engine.read(store, catalog, query)
    inside = [x for x in xs if (lo is None or x >= lo) and (hi is None or x < hi)]
    if not inside:
        assert answer.series == []
        return
    first, last = (lo if lo is not None else inside[0]), (hi if hi is not None else inside[-1] + 1)
    unit = 1_000_000 if axis == "time" else 1
    width = round(answer.width * unit)
    per_series = reference(points, axis, group_by, 0, first, last, gauge)
    spans = [(min(b), max(b)) for b in per_series.values()]
    raw = all(len(b) <= buckets for b in per_series.values()) and all(
        sum(v["count"] for v in b.values()) <= engine.DISTINCT_CHECK_FACTOR * buckets
        for b in per_series.values()
    )
    if raw:
        assert width == 0
    else:
        assert width == _tiers.choose_width(axis, spans, buckets)
        smaller = [w for w in _tiers.WIDTHS[axis] if w < width]
        assert not smaller or any(_tiers.bucket_count(smaller[-1], f, la) > buckets for f, la in spans)
    assert_matches(
        answer.series, reference(points, axis, group_by, width, first, last, gauge), group_by, axis
    )
    # Any grouping, range and width, offered or not: whole tier rows inside
    # each bucket, finer rows at its edges.
    for probe in data["probes"]:
        group_by = tuple(probe["group_by"])
        first, last = xs[0], xs[-1] + 1
        if probe["ranged"]:
            a, b = sorted(xs[0] + int(c * (xs[-1] + 1 - xs[0])) for c in probe["cut"])
            first, last = a, max(b, a + 1)
        other = probe["width"] * (probe["width_scale"] if axis == "time" else 1)
        if probe["parts"]:  # a width of a fraction of the range: edges near the data
            other = max(1, (last - first) // probe["parts"] + 1)
        # At most MAX_BUCKETS buckets, as every caller of buckets_at keeps it.
        other = max(other, (last - first) // engine.MAX_BUCKETS + 1)
        per_series = reference(points, axis, group_by, 0, first, last, gauge)
        spans = [(min(b), max(b)) for b in per_series.values()]
        probed = engine.SeriesQuery(name, group_by=group_by, axis=axis)
        got = engine.buckets_at(store, probed, gauge, other, first, last, spans)
        want = reference(points, axis, group_by, other, first, last, gauge)
        assert_matches(got, want, group_by, axis)


# -- rules ----------------------------------------------------------------------------
def test_buckets_are_right_as_soon_as_the_insert_returns(store: Store, catalog: Catalog) -> None:
    points = [("a", DAY_US + i * 1_000_000, i, float(i)) for i in range(0, 7200)]
    insert(store, "loss", points[:3600])
    insert(store, "loss", points[3600:])
    answer = engine.read(store, catalog, engine.SeriesQuery("loss", buckets=2))
    (series,) = answer.series
    assert answer.width == 3600.0
    assert series.count == [3600, 3600]
    assert series.first == [0.0, 3600.0] and series.last == [3599.0, 7199.0]
    assert series.value == [1799.5, 5399.5]


def test_a_deduplicated_insert_adds_nothing_to_the_tiers(store: Store, catalog: Catalog) -> None:
    points = [("a", T0_US + i * 1_000_000, i, 1.0) for i in range(500)]
    insert(store, "hits", points, COUNT, token="same")
    insert(store, "hits", points, COUNT, token="same")  # a retried INSERT: deduplicated
    tiers = store.rows(
        "SELECT width, sum(points) AS points FROM metric_tiers WHERE axis = 'time' GROUP BY width"
    )
    assert {int(r["width"]): int(r["points"]) for r in tiers} == dict.fromkeys(_tiers.TIERS["time"], 500)
    answer = engine.read(store, catalog, engine.SeriesQuery("hits", buckets=1))
    assert answer.series[0].value == [500.0] and answer.series[0].count == [500]


def test_a_bucket_of_nan_and_infinities_has_nulls_and_counts_them(store: Store, catalog: Catalog) -> None:
    insert(
        store, "loss", [("a", T0_US, 1, math.nan), ("a", T0_US + 1, 1, math.inf), ("a", T0_US + 2, 2, 2.0)]
    )
    answer = engine.read(store, catalog, engine.SeriesQuery("loss", axis="step"))
    (series,) = answer.series
    assert answer.width == 0
    assert series.x == [1, 2]
    assert series.count == [2, 1]
    assert series.value == [None, 2.0] and series.min == [None, 2.0] and series.first == [None, 2.0]


def test_raw_points_sharing_an_x_are_aggregated_like_a_bucket(store: Store, catalog: Catalog) -> None:
    insert(store, "hits", [("a", T0_US, 5, 1.0), ("b", T0_US + 9, 5, 2.0), ("c", T0_US + 3, 6, 4.0)], COUNT)
    answer = engine.read(store, catalog, engine.SeriesQuery("hits", axis="step", buckets=2))
    (series,) = answer.series
    assert (answer.width, series.x, series.value, series.count) == (0, [5, 6], [3.0, 4.0], [2, 1])
    assert (series.first, series.last) == ([1.0, 4.0], [2.0, 4.0])


def test_first_and_last_follow_x_then_time(store: Store, catalog: Catalog) -> None:
    # Step axis: the order is (step, metric_time), whatever the insertion order.
    insert(store, "loss", [("a", T0_US + 50, 3, 30.0), ("a", T0_US + 10, 3, 31.0), ("a", T0_US, 9, 90.0)])
    insert(store, "loss", [("a", T0_US + 99, 1, 10.0)])
    answer = engine.read(store, catalog, engine.SeriesQuery("loss", axis="step", buckets=1))
    (series,) = answer.series
    assert answer.width == 10
    assert (series.first, series.last) == ([10.0], [90.0])


def test_a_metric_without_steps_has_no_step_series(store: Store, catalog: Catalog) -> None:
    insert(store, "loss", [("a", T0_US, None, 1.0)])
    assert engine.read(store, catalog, engine.SeriesQuery("loss", axis="step")).series == []


@pytest.mark.parametrize(
    ("filters", "root", "runs"),
    [
        ({"run_id": "b"}, -1, "b"),
        ({"team": "y"}, -1, "c"),
        ({"team": "x", "root_id": "root"}, -1, "a"),
        ({"function_path": "f.a", "__scope__": "0", "user_id": ""}, -1, "a"),
        ({"missing": ""}, -1, "abc"),
        ({"missing": "v"}, -1, ""),
        ({"root_function_path": "pipe"}, 1, "bc"),
        ({}, 0, "a"),
    ],
    ids=["run", "label", "label-and-column", "columns", "missing-empty", "missing-value", "roots", "nested"],
)
@pytest.mark.parametrize("ranged", [False, True], ids=["whole", "ranged"])
def test_label_filters_select_the_series_of_their_labels(
    store: Store, catalog: Catalog, filters: dict[str, str], root: int, runs: str, ranged: bool
) -> None:
    # Three hours a run: whole tier rows, and raw points at a range's edges.
    points = [
        (r, DAY_US + i * 7_000_000 + k, i, float(i % 97)) for k, r in enumerate("abc") for i in range(1600)
    ]
    insert(store, "loss", points)
    lo, hi = (DAY_US + 1_234_567_890, DAY_US + 9_876_543_210) if ranged else (None, None)
    for buckets in (7, 10_000):
        query = engine.SeriesQuery("loss", filters, root, ("run_id",), "time", lo, hi, buckets)
        answer = engine.read(store, catalog, query)
        kept = [p for p in points if p[0] in runs]
        first = lo if lo is not None else min(p[1] for p in points)
        last = hi if hi is not None else max(p[1] for p in points) + 1
        width = round(answer.width * 1_000_000)
        expected = reference(kept, "time", ("run_id",), width, first, last, True)
        assert_matches(answer.series, expected, ("run_id",), "time")
        assert [s.group["run_id"] for s in answer.series] == list(runs)
    # The metric_series view, with fragments/label_filter.sql, selects the same runs.
    window = {"from_us": first, "to_us": last, "width_us": 0, "gauge": True}
    arrays = {"filter_keys": list(filters), "filter_values": list(filters.values())}
    view = store.columns(q("series"), {**query.params(), **window, **arrays})
    assert sorted(view["g_run_id"]) == list(runs)


def test_an_unknown_metric_is_not_found(store: Store, catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="'nope' not found"):
        engine.read(store, catalog, engine.SeriesQuery("nope"))


def test_long_series_are_read_from_the_tiers(store: Store, catalog: Catalog) -> None:
    # 10 days of one point a minute: 1000 buckets of 15 min come from the 1-min tier only.
    points = [("a", DAY_US + i * 60_000_000, i, float(i % 7)) for i in range(14_400)]
    insert(store, "loss", points)
    query = engine.SeriesQuery("loss", buckets=1000)
    answer = engine.read(store, catalog, query)
    assert answer.width == 900.0
    found = engine.extents(store, query, *_tiers.X_RANGE["time"])
    spans = [(e["min_x"], e["max_x"]) for e in found.values()]
    plan = _tiers.plan("time", 900_000_000, DAY_US, DAY_US + 14_400 * 60_000_000, spans)
    assert plan.use == (True, False, False) and not plan.use_raw
    assert sum(answer.series[0].count) == 14_400


def test_the_tier_widths_are_those_of_the_view() -> None:
    text = (schema_dir() / "fragments" / "tier_rollup_tail.sql").read_text()
    for axis, widths in _tiers.TIERS.items():
        for width in widths:
            assert f"({_tiers.AXIS_CODES[axis]}, {width})" in text


@pytest.mark.parametrize(
    ("width", "from_x", "to_x"),
    [(33_334 * 1_000_000, T0_US + 7, T0_US + 10**12), (90 * 1_000_000, T0_US, T0_US + 3 * 10**11)],
    ids=["sematic-auto-width", "ninety-seconds"],
)
def test_a_plan_counts_every_point_once(width: int, from_x: int, to_x: int) -> None:
    """Walk the plan in Python: each microsecond-aligned point is covered by one level."""
    plan = _tiers.plan("time", width, from_x, to_x, [(from_x, to_x - 1)])
    tiers, offset = _tiers.TIERS["time"], _tiers.OFFSETS["time"]
    sets = [set(plan.sets[0]), set(plan.sets[1])]
    for x in range(from_x, to_x, 997_000_003):
        levels = []
        if plan.use_raw and (plan.top_raw or (x + offset) // tiers[0] in set(plan.set_raw)):
            levels.append("raw")
        for i, tier in enumerate(tiers):
            if not plan.use[i]:
                continue
            start = x - x % tier
            inside = from_x <= start and start + tier <= to_x and start % width + tier <= width
            parent_ok = plan.top[i] or (start + offset) // tiers[i + 1] in sets[i]
            if inside and parent_ok:
                levels.append(str(tier))
        assert len(levels) == 1, (x, levels)


def test_an_existing_database_gets_its_tiers_backfilled_once(settings: Settings, tmp_path: Path) -> None:
    old = tmp_path / "schema"
    shutil.copytree(schema_dir(), old)
    for path in (
        "tables/005_metric_tiers.sql",
        "definitions/020_metric_tiers_mv.sql",
    ):
        (old / path).unlink()
    before: list[Point] = [("a", T0_US + i * 1_000_000, i, float(i)) for i in range(3000)]
    before += [
        ("b", -630_000_000 * 1_000_000 + i * 7_000_000, None, 1.0) for i in range(50)
    ]  # another partition
    after = [("a", T0_US + 2_000_000_000 + i * 1_000_000, 3000 + i, 2.0) for i in range(500)]
    with Store(settings) as store:
        migrate(store, old)
        insert(store, "loss", before[:1000])
        insert(store, "loss", before[1000:])
        migrate(store)  # creates the tiers: the points so far are to be backfilled
        assert not _tiers.ready(store)
        pending = store.rows("SELECT partition, max_block FROM tier_backfills ORDER BY partition")
        assert [r["partition"] for r in pending] == ["195001", "202311"]
        insert(store, "loss", after)  # stored while the backfill waits: through the views
        catalog = Catalog(store)
        query = engine.SeriesQuery("loss", axis="time", group_by=("run_id",), buckets=20)
        while_pending = engine.read(store, catalog, query)  # raw points until it is done
        # An interrupted attempt at one partition left rows behind: cleared first.
        store.command(
            "INSERT INTO tier_backfills (partition, max_block, state, points) "
            "VALUES ('202311', {b:UInt64}, 'started', 0)",
            {"b": int(pending[1]["max_block"])},
        )
        store.command(
            "INSERT INTO metric_tiers (name, axis, width, bucket, origin, points, finite) "
            "VALUES ('loss', 'time', 60000000, 0, 202311, 5, 5)"
        )
        assert _tiers.backfill(store) == len(before)
        assert _tiers.ready(store)
        counts = store.rows(
            "SELECT axis, width, sum(points) AS points FROM metric_tiers "
            "GROUP BY axis, width ORDER BY axis, width"
        )
        stepped = sum(1 for p in before + after if p[2] is not None)
        assert [(str(r["axis"]), int(r["points"])) for r in counts] == [
            ("time", len(before) + len(after))
        ] * 3 + [("step", stepped)] * 3
        assert engine.read(store, catalog, query) == while_pending
        points = before + after
        lo, hi = min(p[1] for p in points), max(p[1] for p in points) + 1
        answer = engine.read(store, catalog, query)
        width = round(answer.width * 1_000_000)
        assert_matches(
            answer.series, reference(points, "time", ("run_id",), width, lo, hi, True), ("run_id",), "time"
        )
        assert _tiers.backfill(store) == 0  # done: nothing twice
        store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


def test_delete_removes_points_from_the_tiers(store: Store, catalog: Catalog) -> None:
    points = [("a", DAY_US + i * 10_000_000, i, float(i)) for i in range(2000)]
    points += [("b", DAY_US + i * 10_000_000, i, 1.0) for i in range(2000)]
    insert(store, "loss", points)
    lo, hi = DAY_US + 5_000_000_000, DAY_US + 9_000_000_000
    params: dict[str, Any] = {
        "name": "loss",
        "from_us": lo,
        "to_us": hi,
        "filter_keys": ["run_id"],
        "filter_values": ["a"],
        "root": -1,
    }
    store.command(
        "DELETE FROM metric_points WHERE name = 'loss' AND run_id = 'a' AND metric_time >= "
        "fromUnixTimestamp64Micro({from_us:Int64}, 'UTC') "
        "AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')",
        params,
    )
    _tiers.repair_after_delete(store, params)
    kept = [p for p in points if not (p[0] == "a" and lo <= p[1] < hi)]
    for axis in _tiers.AXES:
        query = engine.SeriesQuery("loss", axis=axis, group_by=("run_id",), buckets=7)
        answer = engine.read(store, catalog, query)
        unit = 1_000_000 if axis == "time" else 1
        xs = [p[1] if axis == "time" else int(p[2] or 0) for p in kept]
        expected = reference(kept, axis, ("run_id",), round(answer.width * unit), min(xs), max(xs) + 1, True)
        assert_matches(answer.series, expected, ("run_id",), axis)


@pytest.mark.parametrize(
    ("rollup", "group_by", "metric_type", "count", "spacing_us", "times"),
    [
        ("auto", (), GAUGE, 250, 1_000_000, 0),
        ("auto", ("run_id",), GAUGE, 5000, 7_300_000, 0),
        ("auto", (), COUNT, 3000, 2_000_000, 150),
        (60, ("run_id", "root_id"), GAUGE, 4000, 3_100_000, 0),
        ("auto", ("function_path",), COUNT, 9000, 33_334_567, 0),
        ("auto", (), GAUGE, 25_000, 1_300_000, 0),
        ("auto", (), COUNT, 40_000, 61_000_000, 0),
        ("auto", ("run_id",), GAUGE, 60_000, 7_000_000, 200),
        ("auto", (), COUNT, 25_000, 1_100_000, 500),
    ],
    ids=[
        "auto-raw-seconds",
        "auto-bucketed",
        "auto-few-times-in-seconds",
        "rollup-60",
        "auto-long",
        "auto-large-from-tiers",
        "auto-large-hours-from-tiers",
        "auto-large-few-times-in-seconds",
        "auto-large-dense-minutes",
    ],
)
def test_sematic_rollups_from_the_tiers_equal_the_view(
    store: Store,
    catalog: Catalog,
    rollup: series.Rollup,
    group_by: tuple[str, ...],
    metric_type: int,
    count: int,
    spacing_us: int,
    times: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``times``: that many distinct times shared by the points (0: every
    # point its own time). The large cases pass the size where the tiers
    # answer (lowered here from millions of points), and a lower bound of the
    # distinct times from minute rows that does (1.3 s apart) or does not
    # (500 times in 10 minutes) settle it.
    monkeypatch.setattr(_sematic_rollup, "LARGE", 19_000)
    points: list[Point] = []
    for i in range(count):
        value = math.nan if i % 97 == 0 else (i % 13) * 0.1
        at = T0_US + (i % times) * spacing_us if times else T0_US + i * spacing_us + i % 5
        points.append(("abc"[i % 3], at, None, value))
    insert(store, "loss", points, metric_type)
    flt = series.MetricsFilter(from_us=0, to_us=T0_US * 2, filters={"root_function_path": "pipe"})
    sql = (q("series"), q("series_extents"))
    assert rollup is not None
    type_name = "GAUGE" if metric_type == GAUGE else "COUNT"
    view = series.run_series(store, sql, {"name": "loss"}, type_name, "loss", flt, list(group_by), rollup)
    tiers, _ = series.series(store, catalog, "loss", flt, list(group_by), rollup, {})
    assert tiers["columns"] == view["columns"] and tiers["metric_type"] == type_name
    assert [row[1] for row in tiers["series"]] == [row[1] for row in view["series"]]
    for (got, _), (want, _) in zip(tiers["series"], view["series"], strict=True):
        assert got == pytest.approx(want, rel=1e-12, nan_ok=True)
    # Shared times: whole seconds (one row per time and group) up to 300, else buckets.
    if 0 < times <= _sematic_rollup.MAX_SERIES_POINTS:
        assert len(tiers["series"]) == times * (3 if group_by else 1)
    elif times:
        assert len(tiers["series"]) <= _sematic_rollup.MAX_SERIES_POINTS


# This test's own database: other tests' databases have a metric_tiers too.
TIERS_DDL = (
    "SELECT create_table_query FROM system.tables "
    "WHERE database = currentDatabase() AND name = 'metric_tiers'"
)


def test_the_retention_ttl_applies_to_the_tiers(store: Store, catalog: Catalog) -> None:
    old = [("a", -630_000_000 * 1_000_000 + i * 1_000_000, 1000 + i, 1.0) for i in range(100)]
    recent = [("a", T0_US + i * 1_000_000, i, 2.0) for i in range(100)]
    insert(store, "loss", old + recent)
    _tiers.apply_ttl(store, 30)
    _tiers.apply_ttl(store, 30)  # unchanged: nothing to do
    # A row expires with its newest point: the step rows holding both old and
    # recent points (widths 10^4 and 10^6) stay until the recent ones expire.
    expected = [*[("time", 100)] * 3, ("step", 100), ("step", 200), ("step", 200)]

    def left() -> list[tuple[str, int]]:
        store.command("OPTIMIZE TABLE metric_tiers FINAL")  # applies the TTL (after its ALTER's mutation)
        rows = store.rows(
            "SELECT axis, width, sum(points) AS points FROM metric_tiers GROUP BY ALL ORDER BY axis, width"
        )
        return [(str(r["axis"]), int(r["points"])) for r in rows]

    wait_until(lambda: left() == expected, what="expired tier rows removed")
    assert left() == expected
    ddl = store.rows(TIERS_DDL)
    assert "TTL" in str(ddl[0]["create_table_query"]).split("SETTINGS")[0]
    _tiers.apply_ttl(store, None)
    ddl = store.rows(TIERS_DDL)
    assert " TTL " not in str(ddl[0]["create_table_query"])
