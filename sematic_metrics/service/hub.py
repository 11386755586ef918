"""The live-stream hub behind ``GET /api/v1/stream?run_id=...`` (stream.py).

The hub listens to the ingest Writer. For every watched run it keeps each
metric's time extent, so it knows the bucket width that
``GET /api/v1/metrics/{name}?labels={"run_id": ...}&rollup=auto`` would use;
after each commit it asks the store for the full aggregate of every bucket
the new points touched (average for gauges, sum for counts, with the min,
max, first and last finite value and the point count, as GET /api/v1/series
gives them) and publishes one event to the run's subscribers. When a
metric's width changes, or a metric is new, the event carries that metric's
whole series at the new width.

Events have ids; a bounded per-run buffer lets a client that reconnects with
Last-Event-ID resume without gaps. A client whose id is too old is told to
reload (``ready`` with ``resumed: false``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sematic_metrics.errors import SematicMetricsError, StoreError
from sematic_metrics.rules import MAX_TIME_US
from sematic_metrics.rules import US_PER_S as _US
from sematic_metrics.service import _stream_extents
from sematic_metrics.service._sematic_rollup import MAX_SERIES_POINTS, bucket_width_s
from sematic_metrics.service._sse import Server, Subscriber, sse
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

__all__ = ["Hub", "Server"]  # Server: uvicorn.Server that ends open streams first
log = logging.getLogger(__name__)


@dataclass
class Extent:
    """What the stream knows of one metric of one run."""

    first_us: int
    last_us: int
    times: set[int] | None  # distinct times while there are at most 300, else None
    width_us: int = 0  # the width of the last published buckets

    def auto_width_us(self) -> int:
        """rollup=auto: raw timestamps up to 300 distinct times, else buckets."""
        if self.times is not None and len(self.times) <= MAX_SERIES_POINTS:
            return 1
        return bucket_width_s([(self.first_us, self.last_us)], 1) * _US

    def add(self, first_us: int, last_us: int, times: list[int] | None) -> None:
        self.first_us = min(self.first_us, first_us)
        self.last_us = max(self.last_us, last_us)
        if self.times is not None:
            if times is None:
                self.times = None
            else:
                self.times.update(times)
                if len(self.times) > MAX_SERIES_POINTS:
                    self.times = None


@dataclass
class Run:
    run_id: str
    floor: int  # every event of this run with a larger seq is in the buffer
    ready: bool = False
    extents: dict[str, Extent] = field(default_factory=dict)
    subscribers: set[Subscriber] = field(default_factory=set)
    buffer: collections.deque[tuple[int, bytes]] = field(default_factory=collections.deque)
    pending: list[pa.Table] = field(default_factory=list)
    idle_since: float | None = None


class Hub:
    """Fans the Writer's stored tables out to the subscribers of each run."""

    def __init__(
        self,
        store: Store,
        *,
        keepalive_s: float = 15.0,
        replay_events: int = 1000,
        idle_ttl_s: float = 60.0,
        max_stream_s: float = 600.0,
        max_subscribers: int = 1000,
        max_queued: int = 2000,
    ) -> None:
        self.store = store
        self.keepalive_s = keepalive_s
        self.replay_events = replay_events
        self.idle_ttl_s = idle_ttl_s
        self.max_stream_s = max_stream_s
        self.max_subscribers = max_subscribers
        self.max_queued = max_queued
        self.epoch = uuid.uuid4().hex[:8]
        self.runs: dict[str, Run] = {}
        self.published = 0
        self._seq = 0
        self._pending: list[pa.Table] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._flusher(), name="stream-hub")

    def close(self) -> None:
        """End every open stream (clients reconnect to the next server)."""
        self._closed = True
        for run in self.runs.values():
            for sub in run.subscribers:
                sub.close()

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the Writer's listener (event loop) -----------------------------------
    def on_table(self, table: pa.Table) -> None:
        if not self.runs:
            return
        watched = pa.array(list(self.runs), pa.string())
        mask = pc.is_in(table["run_id"], value_set=watched)
        if not pc.any(mask).as_py():
            return
        self._pending.append(table.filter(mask).select(["run_id", "name", "metric_time"]))
        self._wake.set()

    # -- subscriptions (event loop) -------------------------------------------
    def subscribe(self, run_id: str, last_event_id: str | None) -> Subscriber:
        if self._closed:
            raise StoreError("the server is shutting down; reconnect in a moment")
        if sum(len(r.subscribers) for r in self.runs.values()) >= self.max_subscribers:
            raise StoreError(f"too many open streams (limit {self.max_subscribers}); retry later")
        sub = Subscriber(run_id, self.max_queued)
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = Run(run_id, floor=self._seq)
            self._wake.set()  # the flusher loads the run's extents, then sends ready
        run.subscribers.add(sub)
        run.idle_since = None
        last = self._parse_id(last_event_id)
        if run.ready and last is not None and last >= run.floor:
            sub.push(sse("ready", {"run_id": run_id, "resumed": True}))
            for seq, chunk in run.buffer:
                if seq > last:
                    sub.push(chunk)
            sub.active = True
        elif run.ready:
            self._activate(run, sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        run = self.runs.get(sub.run_id)
        if run is not None:
            run.subscribers.discard(sub)
            if not run.subscribers:
                run.idle_since = time.monotonic()

    def _parse_id(self, raw: str | None) -> int | None:
        epoch, _, seq = (raw or "").strip().partition("-")
        if epoch != self.epoch or not seq.isdigit():
            return None
        return int(seq)

    def _activate(self, run: Run, sub: Subscriber) -> None:
        sub.push(sse("ready", {"run_id": run.run_id, "resumed": False}, f"{self.epoch}-{self._seq}"))
        sub.active = True

    def _publish(self, run: Run, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        self.published += 1
        chunk = sse(event, data, f"{self.epoch}-{self._seq}")
        run.buffer.append((self._seq, chunk))
        while len(run.buffer) > self.replay_events:
            run.floor = run.buffer.popleft()[0]
        for sub in run.subscribers:
            if sub.active:
                sub.push(chunk)

    # -- the flusher task -----------------------------------------------------
    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 5.0)
            self._wake.clear()
            self._sweep()
            self._route_pending()
            todo = [run for run in self.runs.values() if not run.ready or run.pending]
            if not todo:
                continue
            work = [(run, run.pending) for run in todo]
            for run in todo:
                run.pending = []
            results = await asyncio.to_thread(self._compute, work)
            for run, outcome in results:
                self._finish(run, outcome)

    def _route_pending(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending = []
        for run_id in pc.unique(table["run_id"]).to_pylist():
            run = self.runs.get(run_id)
            if run is not None:
                run.pending.append(table.filter(pc.equal(table["run_id"], run_id)))

    def _sweep(self) -> None:
        now = time.monotonic()
        for run_id, run in list(self.runs.items()):
            if run.idle_since is not None and now - run.idle_since > self.idle_ttl_s:
                del self.runs[run_id]

    def _finish(self, run: Run, outcome: dict[str, Any] | SematicMetricsError | None) -> None:
        if self.runs.get(run.run_id) is not run:
            return  # swept meanwhile
        if isinstance(outcome, SematicMetricsError):
            log.warning("live stream of run %s: %s", run.run_id, outcome)
            if not run.ready:
                asyncio.get_running_loop().call_later(1.0, self._wake.set)  # retry the load
                return
            # Points were missed: clients reload, and resuming from before is refused.
            self._publish(run, "ready", {"run_id": run.run_id, "resumed": False})
            run.floor = self._seq
            run.buffer.clear()
            return
        if not run.ready:
            run.ready = True
            for sub in run.subscribers:
                if not sub.active:
                    self._activate(run, sub)
        if outcome:
            self._publish(run, "buckets", outcome)

    # -- runs on a worker thread; only the flusher touches extents ------------
    def _compute(
        self, work: list[tuple[Run, list[pa.Table]]]
    ) -> list[tuple[Run, dict[str, Any] | SematicMetricsError | None]]:
        results: list[tuple[Run, dict[str, Any] | SematicMetricsError | None]] = []
        for run, tables in work:
            try:
                if not run.ready:
                    self._load(run)
                results.append((run, self._buckets(run, tables) if tables else None))
            except Exception as exc:
                if not isinstance(exc, SematicMetricsError):
                    log.exception("live stream of run %s failed", run.run_id)
                    exc = StoreError(f"internal error: {exc}")
                if not run.ready:
                    run.pending = tables + run.pending
                results.append((run, exc))
        return results

    def _load(self, run: Run) -> None:
        extents: dict[str, Extent] = {}
        for row in _stream_extents.load(self.store, run.run_id):
            ext = Extent(row["first_us"], row["last_us"], row["times"])
            ext.width_us = ext.auto_width_us()
            extents[str(row["name"])] = ext
        run.extents = extents

    def _buckets(self, run: Run, tables: list[pa.Table]) -> dict[str, Any] | None:
        table = pa.concat_tables(tables)
        t_us = pc.cast(table["metric_time"], pa.int64())
        # The dashboard's charts load rollup=auto series, which Sematic's
        # dashboard asks from from_time=0: points before 1970 are outside every
        # window a viewer has loaded, so they are not pushed either.
        points = pa.table({"name": table["name"], "t": t_us}).filter(pc.greater_equal(t_us, 0))
        if points.num_rows == 0:
            return None
        agg = points.group_by("name").aggregate([("t", "min"), ("t", "max"), ("t", "count_distinct")])
        names: list[str] = agg["name"].to_pylist()
        lows, highs, counts = (agg[c].to_pylist() for c in ("t_min", "t_max", "t_count_distinct"))
        small = [
            n
            for n, k in zip(names, counts, strict=True)
            if k <= MAX_SERIES_POINTS and (n not in run.extents or run.extents[n].times is not None)
        ]
        new_times: dict[str, list[int]] = {}
        if small:
            pairs = points.filter(pc.is_in(points["name"], pa.array(small, pa.string())))
            pairs = pairs.group_by(["name", "t"]).aggregate([])
            for n, t in zip(pairs["name"].to_pylist(), pairs["t"].to_pylist(), strict=True):
                new_times.setdefault(n, []).append(t)
        widths: list[int] = []
        froms: list[int] = []
        tos: list[int] = []
        resets: set[str] = set()
        for name, lo, hi in zip(names, lows, highs, strict=True):
            ext = run.extents.get(name)
            if ext is None:
                ext = run.extents[name] = Extent(lo, hi, set(new_times.get(name, ())))
                if name not in new_times:
                    ext.times = None
            else:
                ext.add(lo, hi, new_times.get(name))
            width = ext.auto_width_us()
            if width != ext.width_us:
                resets.add(name)
                ext.width_us = width
            widths.append(width)
            if name in resets:
                froms.append(0)
                tos.append(MAX_TIME_US)
            else:
                froms.append(lo - lo % width)
                tos.append(hi - hi % width + width)
        params = {
            "run_id": run.run_id,
            "names": names,
            "widths_us": widths,
            "from_us": froms,
            "to_us": tos,
            "lo_us": min(froms),
            "hi_us": max(tos),
        }
        metrics: dict[str, dict[str, Any]] = {}
        found = self.store.columns(q("stream_buckets"), params)
        stats = ("min_value", "max_value", "first_value", "last_value", "point_count")
        columns = (found[c] for c in ("name", "bucket_us", "gauge", "avg_value", "sum_value", *stats))
        for name, bucket_us, gauge, avg_value, sum_value, *row in zip(*columns, strict=True):
            entry = metrics.get(name)
            if entry is None:
                width = widths[names.index(name)]
                entry = metrics[name] = {
                    "name": name,
                    "metric_type": "GAUGE" if gauge else "COUNT",
                    "width_s": 0 if width == 1 else width // _US,
                    "reset": name in resets,
                    "points": [],
                    # Parallel to points: each bucket's statistics over finite values, and its point count.
                    "min": [],
                    "max": [],
                    "first": [],
                    "last": [],
                    "count": [],
                }
            entry["points"].append([int(bucket_us) / _US, avg_value if gauge else sum_value])
            for key, value in zip(("min", "max", "first", "last", "count"), row, strict=True):
                entry[key].append(int(value) if key == "count" else value)
        if not metrics:
            return None
        return {"run_id": run.run_id, "metrics": list(metrics.values())}
