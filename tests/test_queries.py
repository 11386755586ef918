from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.rules import DEFAULT_FROM_US
from sematic_metrics.service import _names, _sematic_rollup
from sematic_metrics.service import series as queries
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store
from tests._support import T0

US = 1_000_000


def buckets(width_s: int, first_s: float, last_s: float) -> int:
    step = width_s * US
    return int(last_s * US) // step - int(first_s * US) // step + 1


@pytest.mark.parametrize(
    ("first", "last", "minimum", "expected"),
    [
        (0, 299, 1, 1),
        (0, 300, 1, 2),  # 301 one-second buckets do not fit
        (0.5, 300.5, 1, 2),
        (1_700_000_000, 1_700_003_600, 1, 13),  # one hour: 3600/300 = 12 would need 301 buckets
        (1_700_000_000, 1_700_000_010, 60, 60),  # an integer rollup is a minimum
        (-100, 200, 1, 2),  # before the epoch, floor alignment still holds
    ],
    ids=["300-points", "301-points", "unaligned", "one-hour", "rollup-minimum", "negative-times"],
)
def test_bucket_width_is_smallest_fitting(first: float, last: float, minimum: int, expected: int) -> None:
    width = _sematic_rollup.bucket_width_s([(int(first * US), int(last * US))], minimum)
    assert width == expected
    assert buckets(width, first, last) <= 300
    if width > minimum:
        assert buckets(width - 1, first, last) > 300


def test_bucket_width_checks_every_series() -> None:
    short = (0, 10 * US)
    long = (5 * US, 905 * US)
    width = _sematic_rollup.bucket_width_s([short, long], 1)
    assert buckets(width, 5, 905) <= 300
    assert buckets(width - 1, 5, 905) > 300


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("auto", "auto"), ("60", 60), ("1", 1)],
    ids=["absent", "auto", "sixty", "one"],
)
def test_parse_rollup(raw: str | None, expected: object) -> None:
    assert queries.parse_rollup(raw) == expected


@pytest.mark.parametrize(
    "raw", ["0", "-5", "1.5", "hourly", ""], ids=["zero", "negative", "float", "word", "empty"]
)
def test_parse_rollup_rejects(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="rollup"):
        queries.parse_rollup(raw)


def test_parse_group_by_names_options() -> None:
    assert queries.parse_group_by("run_id,root_id") == ["run_id", "root_id"]
    with pytest.raises(InvalidInputError) as info:
        queries.parse_group_by("run_id,user_id")
    assert "run_id, function_path, root_id, root_function_path" in str(info.value)


@pytest.mark.parametrize(
    ("labels", "filters", "root"),
    [
        ({"run_id": "a"}, {"run_id": "a"}, -1),
        ({"root": True}, {}, 1),
        ({"root": False, "x": None}, {"x": ""}, 0),
        ({"epoch": 3}, {"epoch": "3"}, -1),
    ],
    ids=["plain", "root-true", "root-false-null", "number"],
)
def test_parse_labels(labels: dict[str, object], filters: dict[str, str], root: int) -> None:
    assert queries.parse_labels(json.dumps(labels)) == (filters, root)


@pytest.mark.parametrize(
    "raw", ['["a"]', "{not json", '{"root": "yes"}', '{"a": {"b": 1}}'], ids=["list", "bad", "root", "nested"]
)
def test_parse_labels_rejects(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="labels"):
        queries.parse_labels(raw)


def test_filter_defaults_are_the_api_defaults() -> None:
    before = math.floor(time.time() * US)
    default = queries.MetricsFilter()
    parsed = queries.parse_filter({})
    after = math.floor(time.time() * US)
    assert default.from_us == parsed.from_us == DEFAULT_FROM_US == 0  # the Unix epoch, not 1900
    assert before <= default.to_us <= after
    assert before <= parsed.to_us <= after


POINT = (
    "INSERT INTO metric_points (name, metric_type, metric_time, value, run_id) VALUES "
    "('loss', 'GAUGE', toDateTime64({t:Int64}, 6, 'UTC'), 1, {run:String})"
)


@pytest.mark.backends
def test_delete_counts_and_deletes_under_the_write_lock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for t, run in [(T0, "a"), (T0 + 1, "a"), (T0 + 2, "b")]:
        store.command(POINT, {"t": t, "run": run})
    held: list[bool] = []
    count_rows = store.rows

    def rows_seen_from_another_thread(
        sql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        def try_lock() -> None:
            got = store._write_lock.acquire(blocking=False)
            if got:
                store._write_lock.release()
            held.append(not got)

        if sql == q("count_matching"):
            other = threading.Thread(target=try_lock)
            other.start()
            other.join()
        return count_rows(sql, params)

    monkeypatch.setattr(store, "rows", rows_seen_from_another_thread)
    flt = queries.MetricsFilter(from_us=0, to_us=(T0 + 10) * US, filters={"run_id": "a"})
    deleted = queries.delete(store, Catalog(store), "loss", flt, {})
    assert held == [True], "the count ran while other threads of this process could write"
    assert deleted == 2
    remaining = store.rows("SELECT run_id, count() AS n FROM metric_points GROUP BY run_id")
    assert remaining == [{"run_id": "b", "n": 1}]


@pytest.mark.backends
def test_series_reads_columns_by_name(store: Store) -> None:
    for t, run in [(T0, "a"), (T0 + 1, "a"), (T0 + 2, "b")]:
        store.command(POINT, {"t": t, "run": run})
    flt = queries.MetricsFilter(from_us=0, to_us=(T0 + 10) * US)
    content, _ = queries.series(store, Catalog(store), "loss", flt, ["run_id"], 1, {})
    assert content["columns"] == ["timestamp", "run_id"]
    assert content["series"] == [[1.0, [str(T0), "a"]], [1.0, [str(T0 + 1), "a"]], [1.0, [str(T0 + 2), "b"]]]
    whole, _ = queries.series(store, Catalog(store), "loss", flt, ["run_id"], None, {})
    assert whole["series"] == [[1.0, ["a"]], [1.0, ["b"]]]
    assert _names.names(store, flt, {}) == ["loss"]
