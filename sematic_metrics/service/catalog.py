"""Metric names and their types, cached from the metric_catalog table."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

TYPE_NAMES = {0: "COUNT", 1: "GAUGE"}
TYPE_CODES = {v: k for k, v in TYPE_NAMES.items()}


class Catalog:
    """name -> metric type code. Reads fall back to the store on a miss, so
    several server processes sharing one ClickHouse stay consistent."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._types: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        rows = self._store.query(q("catalog"))
        with self._lock:
            self._types = {}
            for name, metric_type in rows:
                self._types.setdefault(str(name), TYPE_CODES[str(metric_type)])

    def types(self, names: Iterable[str]) -> dict[str, int]:
        """Known types of the given names (unknown names are left out)."""
        wanted = set(names)
        with self._lock:
            found = {n: self._types[n] for n in wanted if n in self._types}
        missing = wanted - found.keys()
        if missing:
            rows = self._store.query(q("catalog_for_names"), {"names": sorted(missing)})
            with self._lock:
                for name, metric_type in rows:
                    code = self._types.setdefault(str(name), TYPE_CODES[str(metric_type)])
                    found[str(name)] = code
        return found

    def type_of(self, name: str) -> int | None:
        return self.types([name]).get(name)

    def remember(self, types: dict[str, int]) -> None:
        with self._lock:
            for name, code in types.items():
                self._types.setdefault(name, code)
