"""The catalog: one type per metric name, the same on every read path, even
when two types were stored for a name (two processes racing on a new name)."""

from __future__ import annotations

import pytest

from sematic_metrics.rules import TYPE_CODES
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.store import Store

INSERT = (
    "INSERT INTO metric_points (name, metric_type, metric_time, value, inserted_at) VALUES "
    "({name:String}, {type:String}, toDateTime64({t:String}, 6, 'UTC'), 1, toDateTime({at:String}, 'UTC'))"
)


def store_point(store: Store, name: str, type_name: str, metric_time: str, inserted_at: str) -> None:
    store.command(INSERT, {"name": name, "type": type_name, "t": metric_time, "at": inserted_at})


def read_paths(store: Store, name: str, just_stored: str) -> dict[str, int | None]:
    """The type of ``name`` as each way into the catalog finds it."""
    loaded = Catalog(store)
    loaded.load()
    missed = Catalog(store)  # a miss reads the store
    remembered = Catalog(store)  # the writer remembers the type it just stored
    remembered.remember({name: TYPE_CODES[just_stored]})
    return {
        "load": loaded.type_of(name),
        "miss": missed.type_of(name),
        "remember": remembered.type_of(name),
    }


@pytest.mark.parametrize(
    ("first", "second"), [("GAUGE", "COUNT"), ("COUNT", "GAUGE")], ids=["gauge", "count"]
)
@pytest.mark.backends
def test_the_type_stored_first_wins_on_every_path(store: Store, first: str, second: str) -> None:
    # The second type's point was measured earlier but stored later: storage order decides.
    store_point(store, "raced", first, "2024-06-01 00:00:00", "2024-07-01 00:00:00")
    store_point(store, "raced", second, "2023-01-01 00:00:00", "2024-07-01 00:00:09")
    assert read_paths(store, "raced", second) == dict.fromkeys(
        ("load", "miss", "remember"), TYPE_CODES[first]
    )


@pytest.mark.parametrize(
    ("first", "second"), [("GAUGE", "COUNT"), ("COUNT", "GAUGE")], ids=["gauge", "count"]
)
@pytest.mark.backends
def test_stored_in_the_same_second_the_earlier_measured_point_wins(
    store: Store, first: str, second: str
) -> None:
    store_point(store, "tied", second, "2024-06-01 00:00:01", "2024-07-01 00:00:00")
    store_point(store, "tied", first, "2024-06-01 00:00:00", "2024-07-01 00:00:00")
    assert read_paths(store, "tied", second) == dict.fromkeys(("load", "miss", "remember"), TYPE_CODES[first])


def test_one_stored_type_is_the_type(store: Store) -> None:
    store_point(store, "plain", "GAUGE", "2024-06-01 00:00:00", "2024-07-01 00:00:00")
    assert read_paths(store, "plain", "GAUGE") == dict.fromkeys(
        ("load", "miss", "remember"), TYPE_CODES["GAUGE"]
    )
    assert Catalog(store).type_of("never-stored") is None
