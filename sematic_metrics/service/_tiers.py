"""Rollup tiers: their widths, the bucket widths the engine offers, and the
plan that says which tier rows and raw points a bucketed read combines.

The tiers (schema/tables/005_metric_tiers.sql, filled by
definitions/020_metric_tiers_mv.sql, which lists these widths too) are
aligned on multiples of their width, and each width divides the next, so a
bucket of any width is exactly the union of the tier rows inside it, taken
coarsest first, plus raw points at its two edges (see ``plan``).

Widths offered to clients (``WIDTHS``) go 1-2-5 (and seconds, minutes,
hours, days as clocks do): every offered width at least as wide as a tier is
a multiple of every tier no wider, so those reads need finer rows only at the
edges of the requested range.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sematic_metrics.rules import MAX_TIME_US, MIN_TIME_US
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

log = logging.getLogger(__name__)

Axis = Literal["time", "step"]
AXES: tuple[Axis, ...] = ("time", "step")
AXIS_CODES: dict[Axis, int] = {"time": 0, "step": 1}
_US = 1_000_000
# Tier widths in x units (microseconds, steps), finest first.
TIERS: dict[Axis, tuple[int, int, int]] = {
    "time": (60 * _US, 3600 * _US, 86400 * _US),
    "step": (100, 10_000, 1_000_000),
}
# Added to x before intDiv so the parent index is a floor division: a multiple
# of every tier width that makes every stored x non-negative.
OFFSETS: dict[Axis, int] = {"time": -MIN_TIME_US, "step": 10**18}
# The x range a read may cover (steps beyond it are not served).
X_RANGE: dict[Axis, tuple[int, int]] = {
    "time": (MIN_TIME_US, MAX_TIME_US),
    "step": (-(10**18), 8 * 10**18),
}


def _ladder() -> dict[Axis, tuple[int, ...]]:
    decades = [m * 10**k for k in range(19) for m in (1, 2, 5) if m * 10**k <= 8 * 10**18]
    sub_second = [m * 10**k for k in range(6) for m in (1, 2, 5)]  # 1 us .. 500 ms
    seconds = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]
    days = [d * 86400 for d in (m * 10**k for k in range(7) for m in (1, 2, 5))]
    return {"time": tuple(sub_second + [s * _US for s in seconds + days]), "step": tuple(decades)}


WIDTHS: dict[Axis, tuple[int, ...]] = _ladder()


def bucket_count(width: int, first: int, last: int) -> int:
    """Floor-aligned buckets of ``width`` that [first, last] touches."""
    return last // width - first // width + 1


def choose_width(axis: Axis, extents: Iterable[tuple[int, int]], buckets: int) -> int:
    """The smallest offered width that keeps every series within ``buckets``."""
    spans = list(extents)
    for width in WIDTHS[axis]:
        if all(bucket_count(width, first, last) <= buckets for first, last in spans):
            return width
    return WIDTHS[axis][-1]


@dataclass(frozen=True)
class Plan:
    """Which levels a read combines: tier slots a, b, c and the raw points."""

    axis: Axis
    width: int
    single: bool
    from_x: int
    to_x: int
    use: tuple[bool, bool, bool]
    top: tuple[bool, bool, bool]
    sets: tuple[list[int], list[int]]
    top_raw: bool
    set_raw: list[int]

    @property
    def use_raw(self) -> bool:
        return self.top_raw or bool(self.set_raw)

    def query(self, kind: str = "series_buckets") -> str:
        """The named query of ``kind`` (series_buckets, series_spans) reading
        just these levels (an unread part would still cost a scan)."""
        if not any(self.use):
            return f"{kind}_raw"
        if self.use_raw:
            return kind
        if kind == "series_spans" and not any(self.sets):
            return "series_spans_top"  # the top tier alone: the shortest text
        return f"{kind}_tiers"

    def params(self) -> dict[str, Any]:
        tiers = TIERS[self.axis]
        return {
            "axis": AXIS_CODES[self.axis],
            "width": self.width,
            "single": self.single,
            "from_x": self.from_x,
            "to_x": self.to_x,
            "offset": OFFSETS[self.axis],
            "tier_a": tiers[0],
            "tier_b": tiers[1],
            "tier_c": tiers[2],
            "top_width": tiers[self.top.index(True)] if True in self.top else 0,
            "use_a": self.use[0],
            "use_b": self.use[1],
            "use_c": self.use[2],
            "top_a": self.top[0],
            "top_b": self.top[1],
            "set_a": self.sets[0],
            "set_b": self.sets[1],
            "use_raw": self.use_raw,
            "top_raw": self.top_raw,
            "set_raw": self.set_raw,
        }


def boundaries(width: int, from_x: int, to_x: int, extents: Iterable[tuple[int, int]]) -> set[int]:
    """Bucket edges that matter: the range's ends and each multiple of ``width``
    from the start of a series' first bucket to the end of its last one (a
    tier row holding its first or last point may reach over those)."""
    edges = {from_x, to_x}
    for first, last in extents:
        lo, hi = max(first, from_x), min(last, to_x - 1)
        edge = lo // width * width
        while edge <= hi + width:
            edges.add(edge)
            edge += width
    return edges


def plan(
    axis: Axis,
    width: int,
    from_x: int,
    to_x: int,
    extents: Sequence[tuple[int, int]] = (),
    single: bool = False,
    raw_only: bool = False,
) -> Plan:
    """The levels to read for buckets of ``width`` over [from_x, to_x).

    The tiers no wider than the bucket are read (all of them for ``single``,
    one bucket over the whole range); the widest is the top level, read
    wherever its rows fit inside a bucket. A finer level (or the raw points)
    is read only under a parent row that straddles an edge: the parent
    indexes listed in the sets.
    """
    tiers = TIERS[axis]
    if raw_only:
        used = 0
    elif single:
        used = sum(1 for t in tiers if t <= to_x - from_x) or 0
    else:
        used = sum(1 for t in tiers if t <= width)
    use = tuple(i < used for i in range(3))
    top = tuple(i == used - 1 for i in range(3))
    edges = {from_x, to_x} if single else boundaries(width, from_x, to_x, extents)
    offset = OFFSETS[axis]

    def straddling(parent: int) -> list[int]:
        return sorted({(edge + offset) // parent for edge in edges if edge % parent})

    sets = (
        straddling(tiers[1]) if used > 1 else [],
        straddling(tiers[2]) if used > 2 else [],
    )
    set_raw = straddling(tiers[0]) if used else []
    return Plan(
        axis=axis,
        width=max(width, 1),
        single=single,
        from_x=from_x,
        to_x=to_x,
        use=(use[0], use[1], use[2]),
        top=(top[0], top[1], top[2]),
        sets=sets,
        top_raw=used == 0,
        set_raw=set_raw,
    )


# -- upkeep: backfill and repair ---------------------------------------------------
_ready: weakref.WeakKeyDictionary[Store, bool] = weakref.WeakKeyDictionary()
_backfilling = threading.Lock()
# Repairs scheduled after failed INSERTs (_tier_repair) and not yet done.
_held: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()


def hold(store: Store, n: int) -> None:
    _held[store] = _held.get(store, 0) + n


def release(store: Store, n: int) -> None:
    _held[store] = _held.get(store, 0) - n


def ready(store: Store) -> bool:
    """Whether the tiers hold every stored point exactly (no backfill and no
    repair pending); until then reads use the raw points."""
    if _held.get(store):
        return False
    if _ready.get(store):
        return True
    done = not store.rows(q("tier_backfill_pending"))
    if done:
        _ready[store] = True
    return done


def backfill(store: Store) -> int:
    """Aggregate into the tiers the points stored before they existed, one
    metric_points partition at a time, logging progress; ingest goes on.

    The rule: the tables file that created the tiers recorded each partition
    and the highest block number then (tier_backfills). Rows with a higher
    block number went through the views; the backfill reads the others
    (``_block_number``, kept per row through merges). A partition whose
    attempt was interrupted is cleared first (its rows carry the partition as
    ``origin``). Returns the points aggregated."""
    with _backfilling:
        pending = store.rows(q("tier_backfill_pending"))
        total, started = 0, time.monotonic()
        for i, row in enumerate(pending, 1):
            partition, max_block = str(row["partition"]), int(row["max_block"])
            origin = int(partition) if partition.isdigit() else 0
            record = {"partition": partition, "max_block": max_block, "points": 0}
            if str(row["state"]) == "started":
                store.command(q("tier_backfill_forget"), {"origin": origin})
            store.command(q("tier_backfill_record"), {**record, "state": "started"})
            part = {"partition": partition, "max_block": max_block}
            points = int(store.rows(q("tier_backfill_points"), part)[0]["points"])
            store.command(q("tier_backfill_partition"), {**part, "origin": origin})
            store.command(q("tier_backfill_record"), {**record, "state": "done", "points": points})
            total += points
            log.info(
                "tiers backfill: partition %s done (%d/%d), %s points, %s in all, %.0f s",
                partition,
                i,
                len(pending),
                f"{points:,}",
                f"{total:,}",
                time.monotonic() - started,
            )
        _ready[store] = True
        return total


def start_backfill(store: Store) -> threading.Thread | None:
    """Run ``backfill`` on a thread when partitions are pending (at service start)."""
    if ready(store):
        return None

    def run() -> None:
        try:
            backfill(store)
        except Exception:
            log.exception("tiers backfill failed; reads use the raw points until it completes")

    thread = threading.Thread(target=run, name="sematic-metrics-tiers-backfill", daemon=True)
    thread.start()
    return thread


def repair_after_delete(store: Store, params: Mapping[str, Any]) -> None:
    """After points were deleted: drop the tier rows the deleted points were in
    and aggregate the points left in them again. ``params`` are those of the
    delete (name, from_us, to_us, filter_keys, filter_values, root). Runs
    under the store's write lock, so no insert of this process lands between
    the drop and the refeed."""
    backfill(store)  # a pending backfill would count the refed points twice
    coarsest = TIERS["time"][-1]
    window = {
        **params,
        "from_us": int(params["from_us"]) // coarsest * coarsest,
        "to_us": -(-int(params["to_us"]) // coarsest) * coarsest,
    }
    with store.writing():
        store.command(q("tier_delete_time"), window)
        store.command(q("tier_refeed_time"), window)
        store.command(q("tier_delete_step"), params)
        store.command(q("tier_refeed_step"), params)


_NO_EXPIRY = -(2**63)


def expire_us(ttl_days: int | None, now_s: float | None = None) -> int:
    """Points with an earlier metric_time may have been removed by the TTL
    (``toDateTime(metric_time) + days``); an hour's margin covers the clock
    of a server."""
    if not ttl_days:
        return _NO_EXPIRY
    now = time.time() if now_s is None else now_s
    return (int(now) + 3600 - ttl_days * 86400) * _US


_TTL_DAYS = re.compile(r"\bTTL .*toIntervalDay\((?:_CAST\()?(\d+)")


def apply_ttl(store: Store, days: int | None) -> None:
    """The retention TTL on the tiers, set only when it differs: a tier row
    expires once its newest point has (``last_seen``), so until then it still
    counts points the TTL already removed from metric_points."""
    rows = store.rows(q("table_ddl"), {"table": store.local_name("metric_tiers")})
    if not rows:  # a schema directory without the tiers
        return
    ddl = str(rows[0]["create_table_query"])
    match = _TTL_DAYS.search(ddl)
    if (int(match.group(1)) if match else None) == (days or None):
        return
    if days:
        store.command(q("set_tier_ttl"), {"days": days})
    elif " TTL " in ddl:
        store.command(q("remove_tier_ttl"))
