"""Stores validated run batches (runs_body.py) in the ``runs`` table."""

from __future__ import annotations

import collections
import hashlib
import threading

from sematic_metrics.errors import RunConflictError
from sematic_metrics.service.runs_body import Identities, RunsBatch, RunsResult, same_identity
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

_KNOWN_KEYS = 100_000


class RunsWriter:
    """Stores run batches one at a time, so the idempotency and identity checks
    of a batch see every batch stored before it (within this process)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._known: collections.OrderedDict[str, int] = collections.OrderedDict()

    def write(self, batch: RunsBatch) -> RunsResult:
        with self._lock:
            if batch.key:
                stored = self._stored_count(batch.key)
                if stored is not None:
                    return RunsResult(stored, duplicate=True)
            self._check_identities(batch.identities)
            settings = {}
            if batch.key:
                settings["insert_deduplication_token"] = hashlib.sha256(batch.key.encode()).hexdigest()
            self._store.insert_arrow("runs", batch.table, settings)
            n = batch.table.num_rows
            if batch.key:
                self._remember(batch.key, n)
            return RunsResult(n)

    def _stored_count(self, key: str) -> int | None:
        if key in self._known:
            return self._known[key]
        rows = self._store.query(q("run_known_batches"), {"batch_ids": [key]})
        if not rows:
            return None
        self._remember(key, int(rows[0][1]))
        return self._known[key]

    def _check_identities(self, identities: Identities) -> None:
        rows = self._store.query(q("run_identities"), {"ids": sorted(identities)})
        for run_id, root_id, path, created in rows:
            first = identities[str(run_id)]
            stored = (0, str(root_id), str(path), int(created))
            same_identity(
                stored, first[1:], str(run_id), f"runs[{first[0]}]", "the stored run", RunConflictError
            )

    def _remember(self, key: str, runs: int) -> None:
        self._known[key] = runs
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_KEYS:
            self._known.popitem(last=False)
