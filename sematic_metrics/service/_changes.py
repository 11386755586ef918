"""Write versions of the databases of the embedded engine, for the series
cache (``_series_cache``): the stores of one process share them per database,
and only the embedded engine's one process sees every write."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path


class Changes:
    """Write generations of one embedded database, shared by the stores of this
    process: every metric_points INSERT bumps the names it wrote, any other
    statement bumps everything. A read that saw version ``v`` of a name is
    current while the version is still ``v`` (the series cache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._everything = 0
        self._names: dict[str, int] = {}

    def touch(self, names: Iterable[str] | None = None) -> None:
        with self._lock:
            self._counter += 1
            if names is None:
                self._everything = self._counter
            else:
                for name in names:
                    self._names[name] = self._counter

    def version(self, name: str) -> tuple[int, int]:
        return self._everything, self._names.get(name, 0)


_CHANGES: dict[tuple[Path, str], Changes] = {}
_CHANGES_LOCK = threading.Lock()


def changes_of(data_path: Path, database: str) -> Changes:
    """The one Changes of a database of an embedded data directory in this process."""
    with _CHANGES_LOCK:
        return _CHANGES.setdefault((data_path, database), Changes())
