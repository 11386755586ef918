"""Stores validated run batches (runs_body.py) in the ``run_versions`` table.

Every record is stored as a version of its run; the views (schema
definitions/110_runs_latest.sql) pick each run's state from its versions, so
what is counted never depends on which worker stored which version or in what
order. Nothing here has to be serialised for the figures to be right: two
workers, or two processes, may store versions of one run at the same moment.

The identity check (a record must not change a stored run's root_id,
function_path or created_at) answers 409 on a best-effort basis: a record
racing the first version of its run in another worker can slip past it, and
the views then count the run once, with the identity first stored.

Within one process a lock makes requests carrying the same Idempotency-Key
answer one after another, so a concurrent retry is told ``duplicate``; across
processes the engine's insert deduplication token stores such a retry once.
"""

from __future__ import annotations

import collections
import hashlib
import threading

from sematic_metrics.errors import RunConflictError
from sematic_metrics.service.runs_body import Identities, RunsBatch, RunsResult, same_identity
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

_KNOWN_KEYS = 100_000
TABLE = "run_versions"


class RunsWriter:
    """Stores run batches; see the module docstring for what is checked where."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys = threading.Lock()
        self._known: collections.OrderedDict[str, int] = collections.OrderedDict()

    def write(self, batch: RunsBatch) -> RunsResult:
        if not batch.key:
            self._check_identities(batch.identities)
            self._store.insert_arrow(TABLE, batch.table)
            return RunsResult(batch.table.num_rows)
        with self._keys:
            stored = self._stored_count(batch.key)
            if stored is not None:
                return RunsResult(stored, duplicate=True)
            self._check_identities(batch.identities)
            token = hashlib.sha256(batch.key.encode()).hexdigest()
            self._store.insert_arrow(TABLE, batch.table, {"insert_deduplication_token": token})
            n = batch.table.num_rows
            self._remember(batch.key, n)
            return RunsResult(n)

    def _stored_count(self, key: str) -> int | None:
        if key in self._known:
            return self._known[key]
        rows = self._store.rows(q("run_known_batches"), {"batch_ids": [key]})
        if not rows:
            return None
        self._remember(key, int(rows[0]["runs"]))
        return self._known[key]

    def _check_identities(self, identities: Identities) -> None:
        rows = self._store.rows(q("run_identities"), {"ids": sorted(identities)})
        for row in rows:
            run_id = str(row["id"])
            first = identities[run_id]
            stored = (0, str(row["root_id"]), str(row["function_path"]), int(row["created_us"]))
            same_identity(stored, first[1:], run_id, f"runs[{first[0]}]", "the stored run", RunConflictError)

    def _remember(self, key: str, runs: int) -> None:
        self._known[key] = runs
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_KEYS:
            self._known.popitem(last=False)
