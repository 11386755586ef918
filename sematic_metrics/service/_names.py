"""Names of the metrics with a point matching a filter (``GET /api/v1/metrics``).

Read from the coarsest time tier of the rollup tiers when they hold every
point (``_tiers.ready``): a row per series and day instead of every point.
A name is settled by a matching tier row whose points all lie inside the
window and whose newest point is out of the retention TTL's reach; names whose
rows only reach over an edge of the window (or may count only expired points)
are checked on their points (queries names_from_tiers, names_among). Until a
backfill completes, the points answer alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sematic_metrics.service import _tiers
from sematic_metrics.service.series import MetricsFilter, SystemMetric
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store


def stored_names(store: Store, flt: MetricsFilter) -> list[str]:
    """Stored metric names with at least one point matching ``flt``, sorted."""
    params: dict[str, Any] = flt.params()
    if not _tiers.ready(store):
        return [str(n) for n in store.columns(q("names_matching"), params)["g_name"]]
    tiers = store.columns(
        q("names_from_tiers"),
        {**params, "width": _tiers.TIERS["time"][-1], "expire_us": _tiers.expire_us(store.settings.ttl_days)},
    )
    found: list[str] = []
    candidates: list[str] = []
    for name, settled in zip(tiers["g_name"], tiers["settled"], strict=True):
        (found if settled else candidates).append(str(name))
    if candidates:
        among = store.columns(q("names_among"), {**params, "names": candidates})["g_name"]
        found += [str(n) for n in among]
    return sorted(found)


def names(store: Store, flt: MetricsFilter, system: Mapping[str, SystemMetric]) -> list[str]:
    """The ``content`` of ``GET /api/v1/metrics``: stored and system metric names."""
    found = stored_names(store, flt)
    present: dict[Any, frozenset[str]] = {}
    for system_name, provider in system.items():
        if provider.present not in present:  # one call per function, shared by its metrics
            present[provider.present] = provider.present(store, flt)
        if system_name in present[provider.present]:
            found.append(system_name)
    return sorted(set(found))
