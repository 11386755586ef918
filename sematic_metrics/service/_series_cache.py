"""Encoded answers of ``GET /api/v1/series`` (and of Sematic's series
reads, ``service/metrics.py``), kept while their metric is unchanged.

A dashboard asks for the same charts again and again (every page load,
every open tab, every refresh) while most of its metrics no longer change.
An answer is kept with the write version of its metric taken *before* the
read (``Store.version``), and served only while that version is current: an
INSERT of the metric, or any other statement, makes it stale before the
writer acknowledges, so a point is in every answer once it is acknowledged.
Only the embedded engine gives versions (its one process sees every write);
with a ClickHouse server nothing is kept. Entries also expire after
``MAX_AGE_S``, which bounds what the retention TTL's background deletes can
leave behind. Least recently used answers go first past ``max_bytes``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Hashable

MAX_AGE_S = 60.0


class SeriesCache:
    """An LRU map of request key -> (version, encoded answer), bounded in bytes."""

    def __init__(self, max_bytes: int, max_age_s: float = MAX_AGE_S) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._entries: collections.OrderedDict[Hashable, tuple[object, float, bytes]] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: object) -> bytes | None:
        """The answer kept for ``key`` if it was read at ``version`` and is fresh."""
        if version is None or not self.max_bytes:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version or time.monotonic() - entry[1] > self.max_age_s:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[2]

    def put(self, key: Hashable, version: object, body: bytes) -> None:
        """Keep ``body``, read at ``version`` (taken before the read began)."""
        if version is None or len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._entries[key] = (version, time.monotonic(), body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped[2])
