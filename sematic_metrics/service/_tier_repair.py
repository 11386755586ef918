"""Rebuilding, in the background, tier rows a failed INSERT may have left wrong.

An INSERT that failed can still have stored its points (a view after
metric_points refused its part) and, in any mix, its tier rows. The writer
hands the batches its retries find stored (``schedule``) and goes on. Until
every scheduled repair is done ``_tiers.ready`` is false, so reads take the
raw points and stay exact. A repair drops and refeeds the tier rows of the
batch's names and time spans (``_tiers.repair_after_delete``, under the
store's write lock), and only once the data disk has room again: a DELETE on
a full disk waits for space, and would hold the write lock, and so every
INSERT, while it waits.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sematic_metrics.service import _tiers
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 32 << 20
RETRY_S = 2.0
ALL_SERIES: dict[str, Any] = {"filter_keys": [], "filter_values": [], "root": -1}


def spans(table: pa.Table) -> list[dict[str, Any]]:
    """The delete parameters of a batch: each name with its time span."""
    grouped = table.group_by("name").aggregate([("metric_time", "min"), ("metric_time", "max")])
    return [
        {"name": name, "from_us": first, "to_us": last + 1, **ALL_SERIES}
        for name, first, last in zip(
            grouped["name"].to_pylist(),
            pc.cast(grouped["metric_time_min"], pa.int64()).to_pylist(),
            pc.cast(grouped["metric_time_max"], pa.int64()).to_pylist(),
            strict=True,
        )
    ]


class TierRepairs:
    """Scheduled repairs of one store, run one at a time on their own thread."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule(self, table: pa.Table) -> None:
        """Repair the tier rows of ``table``'s names and spans, soon."""
        items = spans(table)
        with self._lock:
            self._pending.extend(items)
            _tiers.hold(self._store, len(items))
            if self._thread is None:  # the thread clears it, under this lock, as it ends
                self._thread = threading.Thread(target=self._run, name="tier-repair", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _room(self) -> bool:
        rows = self._store.rows(q("data_disk_free"))
        return bool(rows) and int(rows[0]["free"]) >= MIN_FREE_BYTES

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._stop.is_set():
                    self._thread = None
                    return
                item = self._pending[0]
            try:
                if not self._room():
                    self._stop.wait(RETRY_S)
                    continue
                _tiers.repair_after_delete(self._store, item)
            except Exception:
                log.exception("tier repair of %r failed; retrying in %.0f s", item["name"], RETRY_S)
                self._stop.wait(RETRY_S)
                continue
            with self._lock:
                self._pending.pop(0)
                _tiers.release(self._store, 1)
