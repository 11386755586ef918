"""Each metric's time extent in one run, and its distinct times while there
are at most ``MAX_SERIES_POINTS``: what the live stream needs to bucket a
run's points as ``rollup=auto`` would (hub.py).

The raw query (stream_extents) reads every point of the run: 10M points
cost about 150 ms when a run page opens its stream, beside the page's own
reads. Once the tiers hold every point (``_tiers.ready``) the extents come
from the coarsest time tier, metrics that the finest time tier shows to have
more than 300 distinct times (two a minute bucket whose first and last point
differ, one otherwise) need no times, and only the remaining metrics' points
are read. Metrics the tiers cannot answer exactly go to the raw query too:
points before 1970 (which the stream leaves out), or tier rows that may count
points the retention TTL removed.
"""

from __future__ import annotations

from typing import Any

from sematic_metrics.service import _tiers
from sematic_metrics.service._sematic_rollup import MAX_SERIES_POINTS
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

_MINUTE, _, _DAY = _tiers.TIERS["time"]


def load(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Rows of name, first_us, last_us and times (a set; None: more than
    ``MAX_SERIES_POINTS`` distinct times) of every metric of the run."""
    if not _tiers.ready(store):
        return _raw(store, run_id, None)
    expire_us = max(0, _tiers.expire_us(store.settings.ttl_days))
    out: list[dict[str, Any]] = []
    raw: list[str] = []
    many: dict[str, dict[str, Any]] = {}
    for row in store.rows(q("stream_spans"), {"run_id": run_id, "width": _DAY}):
        name, first_us = str(row["name"]), int(row["first_us"])
        if first_us < expire_us or int(row["points"]) <= MAX_SERIES_POINTS:
            raw.append(name)
        else:
            many[name] = {"name": name, "first_us": first_us, "last_us": int(row["last_us"]), "times": None}
    if many:
        params = {"run_id": run_id, "width": _MINUTE, "names": list(many)}
        for row in store.rows(q("stream_minutes"), params):
            if int(row["times_at_least"]) > MAX_SERIES_POINTS:
                out.append(many.pop(str(row["name"])))
        raw += list(many)
    if raw:
        out += _raw(store, run_id, raw)
    return out


def _raw(store: Store, run_id: str, names: list[str] | None) -> list[dict[str, Any]]:
    params = {"run_id": run_id, "all_names": names is None, "names": names or []}
    rows = store.rows(q("stream_extents"), params)
    return [
        {
            "name": str(row["name"]),
            "first_us": int(row["first_us"]),
            "last_us": int(row["last_us"]),
            "times": None if len(row["times"]) > MAX_SERIES_POINTS else {int(t) for t in row["times"]},
        }
        for row in rows
    ]
