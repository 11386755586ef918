"""Group commit: concurrent ingest requests are coalesced into few INSERTs.

Each request is answered only after the INSERT carrying its points returned,
so an acknowledged point is a stored point. Requests with an Idempotency-Key
that was already stored are answered as duplicates and not written again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from sematic_metrics.errors import SematicMetricsError, StoreError, TypeConflictError
from sematic_metrics.service._tier_repair import TierRepairs
from sematic_metrics.service.catalog import TYPE_NAMES, Catalog
from sematic_metrics.service.points_body import type_field
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store
from sematic_metrics.wire import IngestResult

log = logging.getLogger(__name__)
_KNOWN_KEYS = 200_000
_RECONCILE_HOURS = 24


@dataclass
class _Pending:
    table: pa.Table
    key: str
    future: asyncio.Future[IngestResult]
    result: IngestResult | SematicMetricsError | None = None
    types: dict[str, int] = field(default_factory=dict)


def batch_types(table: pa.Table) -> dict[str, int]:
    """name -> type of a batch; a name sent with two types is a conflict."""
    pairs = table.select(["name", "metric_type"]).group_by(["name", "metric_type"]).aggregate([])
    types: dict[str, int] = {}
    for name, code in zip(pairs["name"].to_pylist(), pairs["metric_type"].to_pylist(), strict=True):
        if types.setdefault(name, code) != code:
            first = _first_index(table, name, code)
            raise TypeConflictError(
                f"{type_field(table, first)}: metric {name!r} appears in this batch as both "
                "COUNT and GAUGE; a metric name has one type"
            )
    return types


def _first_index(table: pa.Table, name: str, code: int) -> int:
    mask = pc.and_(pc.equal(table["name"], name), pc.equal(table["metric_type"], code))
    return int(pc.indices_nonzero(mask.combine_chunks())[0].as_py())


class Writer:
    """Owns the single INSERT path of a server process."""

    def __init__(self, store: Store, catalog: Catalog, max_points: int = 1_000_000) -> None:
        self._store = store
        self._catalog = catalog
        self._max_points = max_points
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sematic-metrics-writer")
        self._task: asyncio.Task[None] | None = None
        self._known: collections.OrderedDict[str, int] = collections.OrderedDict()
        # Keys of requests whose INSERT failed: metric_points may hold their
        # points all the same (a view refused its part after the table took its).
        self._suspect: set[str] = set()
        self.tier_repairs = TierRepairs(store)
        self.inserts = 0
        # Called on the event loop with each stored table (live updates).
        self.listeners: list[Callable[[pa.Table], None]] = []

    async def submit(self, table: pa.Table, key: str = "") -> IngestResult:
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(table, key, future))
        return await asyncio.shield(future)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._executor.shutdown(wait=True)
        self.tier_repairs.stop()
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._reconcile)
        except StoreError as exc:
            log.warning("recent batches not reconciled with ingest_batches: %s", exc)
        while True:
            group = [await self._queue.get()]
            rows = group[0].table.num_rows
            while rows < self._max_points and not self._queue.empty():
                item = self._queue.get_nowait()
                group.append(item)
                rows += item.table.num_rows
            try:
                await loop.run_in_executor(self._executor, self._commit, group)
            except Exception as exc:  # a bug, not a store failure: never hang a client
                log.exception("group commit failed")
                for item in group:
                    if item.result is None:
                        item.result = StoreError(f"internal error while storing the batch: {exc}")
            self._notify(group)
            for item in group:
                if not item.future.done():
                    if isinstance(item.result, IngestResult):
                        item.future.set_result(item.result)
                    else:
                        item.future.set_exception(item.result or StoreError("batch not stored"))
                self._queue.task_done()

    def _notify(self, group: list[_Pending]) -> None:
        stored = [i.table for i in group if isinstance(i.result, IngestResult) and not i.result.duplicate]
        if not stored:
            return
        for listener in self.listeners:
            try:
                listener(pa.concat_tables(stored))
            except Exception:
                log.exception("ingest listener failed")

    # -- runs on the writer thread ------------------------------------------
    def _commit(self, group: list[_Pending]) -> None:
        leaders = self._dedup(group)
        accepted = self._check_types(leaders)
        if accepted:
            table = pa.concat_tables([item.table for item in accepted])
            keys = sorted(item.key for item in accepted if item.key)
            # Always a token: without one ClickHouse would dedup an insert whose
            # block merely equals an earlier one, and drop acknowledged points.
            if len(keys) == len(accepted):
                token = hashlib.sha256("\n".join(keys).encode()).hexdigest()
            else:
                token = uuid.uuid4().hex
            settings = {"insert_deduplication_token": token}
            try:
                self._store.insert_arrow("metric_points", table, settings)
            except StoreError as exc:
                for item in accepted:
                    item.result = exc
                    if item.key and len(self._suspect) < _KNOWN_KEYS:
                        self._suspect.add(item.key)
            else:
                self.inserts += 1
                for item in accepted:
                    item.result = IngestResult(item.table.num_rows)
                    if item.key:
                        self._remember_key(item.key, item.table.num_rows)
                    self._catalog.remember(item.types)
        followers = [item for item in group if item.result is None]
        for item in followers:
            stored = self._known.get(item.key)
            if stored is not None:
                item.result = IngestResult(stored, duplicate=True)
            else:  # its leader failed: fail the same way
                leader = next(x for x in group if x.key == item.key and x.result is not None)
                item.result = leader.result

    def _dedup(self, group: list[_Pending]) -> list[_Pending]:
        """Answer already-stored keys; keep one leader per key in the group."""
        unknown = {item.key for item in group if item.key and item.key not in self._known}
        if unknown:
            try:
                rows = self._store.rows(q("known_batches"), {"batch_ids": sorted(unknown)})
            except StoreError as exc:
                for item in group:
                    item.result = exc
                return []
            for row in rows:
                self._remember_key(str(row["batch_id"]), int(row["points"]))
            suspects = sorted((unknown - self._known.keys()) & self._suspect)
            if suspects:
                try:
                    self._settle_suspects(suspects, group)
                except StoreError as exc:
                    for item in group:
                        item.result = exc
                    return []
        leaders: list[_Pending] = []
        seen: set[str] = set()
        for item in group:
            if item.key and item.key in self._known:
                item.result = IngestResult(self._known[item.key], duplicate=True)
            elif item.key and item.key in seen:
                continue  # a concurrent retry: answered after its leader
            else:
                if item.key:
                    seen.add(item.key)
                leaders.append(item)
        return leaders

    def _reconcile(self) -> None:
        """Record the keys of recent batches metric_points holds but ingest_batches
        does not (the process died between the two parts of an INSERT)."""
        self._store.command(q("reconcile_batches"), {"hours": _RECONCILE_HOURS})

    def _settle_suspects(self, keys: list[str], group: list[_Pending]) -> None:
        """Look up in metric_points itself the keys of earlier failed INSERTs:
        a whole batch found there is a duplicate (and ingest_batches learns
        it), a partial one is removed so the retry stores it whole."""
        sizes = {item.key: item.table.num_rows for item in group if item.key in keys}
        stored = self._store.rows(q("stored_batches"), {"batch_ids": keys})
        found = {str(row["batch_id"]): int(row["points"]) for row in stored}
        whole = [k for k, n in found.items() if n == sizes.get(k)]
        partial = [k for k, n in found.items() if n != sizes.get(k)]
        if partial:
            self._store.command(q("delete_batches"), {"batch_ids": partial})
        # Their tier rows may be missing or partial (each view writes its own part).
        for item in group:
            if item.key in found:
                self.tier_repairs.schedule(item.table)
        if whole:
            self._store.command(q("repair_catalog"), {"batch_ids": whole})
            self._store.command(q("repair_batches"), {"batch_ids": whole})
            for key in whole:
                self._remember_key(key, found[key])
            for item in group:
                if item.key in whole:
                    self._catalog.remember(batch_types(item.table))
        self._suspect.difference_update(keys)

    def _check_types(self, items: list[_Pending]) -> list[_Pending]:
        """Reject, per request, points whose type differs from the stored one."""
        for item in items:
            try:
                item.types = batch_types(item.table)
            except TypeConflictError as exc:
                item.result = exc
        candidates = [item for item in items if item.result is None]
        try:
            stored = self._catalog.types({n for item in candidates for n in item.types})
        except StoreError as exc:
            for item in candidates:
                item.result = exc
            return []
        accepted = []
        for item in candidates:
            conflict = next((n for n, code in item.types.items() if stored.get(n, code) != code), None)
            if conflict is None:
                stored.update(item.types)
                accepted.append(item)
                continue
            index = _first_index(item.table, conflict, item.types[conflict])
            item.result = TypeConflictError(
                f"{type_field(item.table, index)}: metric {conflict!r} is stored as "
                f"{TYPE_NAMES[stored[conflict]]} and cannot take "
                f"{TYPE_NAMES[item.types[conflict]]} points; log it under another name"
            )
        return accepted

    def _remember_key(self, key: str, points: int) -> None:
        self._known[key] = points
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_KEYS:
            self._known.popitem(last=False)
