from __future__ import annotations

import json

import pytest

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.service import series as queries

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
    width = queries.bucket_width_s([(int(first * US), int(last * US))], minimum)
    assert width == expected
    assert buckets(width, first, last) <= 300
    if width > minimum:
        assert buckets(width - 1, first, last) > 300


def test_bucket_width_checks_every_series() -> None:
    short = (0, 10 * US)
    long = (5 * US, 905 * US)
    width = queries.bucket_width_s([short, long], 1)
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
