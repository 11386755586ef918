"""Metric names and their types, cached from the metric_catalog table.

A name has one type: the writer refuses points of another type (409). Two
types can still be stored for a name when two server processes store its
first points at the same moment, each before it sees the other's. Then the
type stored first wins, on every process and for good: the type of the
name's earliest stored point, by insertion time (whole seconds), then by
``metric_time`` (query ``first_stored_types``). When no point of the name is
left (all deleted), COUNT wins. A process re-reads the catalog after it
stored a name it did not know, so it learns of a type stored before its own.
What it cannot learn without a restart: another process storing, in the same
second but later, the other type with an earlier ``metric_time``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sematic_metrics.errors import StoreError
from sematic_metrics.rules import COUNT, TYPE_CODES, TYPE_NAMES
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

__all__ = ["TYPE_CODES", "TYPE_NAMES", "Catalog"]


class Catalog:
    """name -> metric type code. Reads fall back to the store on a miss, so
    several server processes sharing one ClickHouse stay consistent."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._types: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        types = self._resolve(self._store.rows(q("catalog")))
        with self._lock:
            self._types = types

    def types(self, names: Iterable[str]) -> dict[str, int]:
        """Known types of the given names (unknown names are left out)."""
        wanted = set(names)
        with self._lock:
            found = {n: self._types[n] for n in wanted if n in self._types}
        missing = wanted - found.keys()
        if missing:
            stored = self._read(missing)
            with self._lock:
                self._types.update(stored)
            found.update(stored)
        return found

    def type_of(self, name: str) -> int | None:
        return self.types([name]).get(name)

    def remember(self, types: Mapping[str, int]) -> None:
        """Record the types of points just stored. Names this process did not
        know are read back from the store, which knows if another process
        stored another type first."""
        with self._lock:
            new = {name: code for name, code in types.items() if name not in self._types}
        if not new:
            return
        try:
            stored = self._read(new.keys())
        except StoreError:  # the points are stored; a later miss reads the store again
            stored = {}
        with self._lock:
            for name, code in new.items():
                self._types[name] = stored.get(name, self._types.get(name, code))

    def _read(self, names: Iterable[str]) -> dict[str, int]:
        return self._resolve(self._store.rows(q("catalog_for_names"), {"names": sorted(names)}))

    def _resolve(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """One type per name from catalog rows; see the module docstring."""
        codes: dict[str, set[int]] = {}
        for row in rows:
            codes.setdefault(str(row["name"]), set()).add(TYPE_CODES[str(row["metric_type"])])
        types = {name: next(iter(found)) for name, found in codes.items() if len(found) == 1}
        both = sorted(name for name, found in codes.items() if len(found) > 1)
        if both:
            for row in self._store.rows(q("first_stored_types"), {"names": both}):
                types[str(row["name"])] = TYPE_CODES[str(row["metric_type"])]
            for name in both:
                types.setdefault(name, COUNT)
        return types
