"""The series cache and the write versions it keys on (Store.version)."""

from __future__ import annotations

import pyarrow as pa

from sematic_metrics.service._series_cache import SeriesCache
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.store import Store


def points(*names: str) -> pa.Table:
    n = len(names)
    return pa.table(
        {
            "name": pa.array(names, pa.string()),
            "value": pa.array([1.0] * n, pa.float64()),
            "metric_time": pa.array([1_700_000_000_000_000] * n, pa.timestamp("us", "UTC")),
            "metric_type": pa.array([1] * n, pa.int8()),
        }
    )


def test_a_points_insert_changes_the_versions_of_its_names_only(store: Store) -> None:
    loss, accuracy = store.version("loss"), store.version("accuracy")
    assert loss is not None and accuracy is not None
    store.insert_arrow("metric_points", points("loss", "loss"))
    assert store.version("loss") != loss
    assert store.version("accuracy") == accuracy
    assert store.query("SELECT count() FROM metric_points WHERE name = 'loss'") == [(2,)]


def test_any_other_statement_changes_every_version(store: Store) -> None:
    before = store.version("loss")
    store.command("ALTER TABLE metric_points DELETE WHERE name = 'nothing' SETTINGS mutations_sync = 1")
    assert store.version("loss") != before


def test_stores_of_one_database_share_versions(store: Store, settings: Settings) -> None:
    with Store(settings) as other:
        migrate(other)
        before = store.version("loss")
        other.insert_arrow("metric_points", points("loss"))
        assert store.version("loss") != before


def test_an_answer_is_served_at_its_version_only(store: Store) -> None:
    cache = SeriesCache(max_bytes=1 << 20)
    version = store.version("loss")
    cache.put("k", version, b"answer")
    assert cache.get("k", store.version("loss")) == b"answer"
    store.insert_arrow("metric_points", points("loss"))
    assert cache.get("k", store.version("loss")) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_least_recently_used_answers_go_past_the_bound(store: Store) -> None:
    cache = SeriesCache(max_bytes=10)
    version = store.version("loss")
    cache.put("a", version, b"aaaa")
    cache.put("b", version, b"bbbb")
    assert cache.get("a", version) == b"aaaa"  # b is now the least recently used
    cache.put("c", version, b"cccc")
    assert cache.get("b", version) is None
    assert cache.get("a", version) == b"aaaa" and cache.get("c", version) == b"cccc"
    cache.put("huge", version, b"x" * 11)
    assert cache.get("huge", version) is None


def test_an_old_answer_expires(store: Store) -> None:
    cache = SeriesCache(max_bytes=1 << 20, max_age_s=0.0)
    version = store.version("loss")
    cache.put("k", version, b"answer")
    assert cache.get("k", version) is None
