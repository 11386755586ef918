"""The Service: one object per process that owns everything with state.

Request handlers reach it in one way, ``service_of(request)``. ``create_app``
(app.py) builds it and assembles the resource modules around it.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sematic_metrics.service import _tiers
from sematic_metrics.service._series_cache import SeriesCache
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.config import Settings
from sematic_metrics.service.hub import Hub
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.points_writer import Writer
from sematic_metrics.service.runs_writer import RunsWriter
from sematic_metrics.service.series import SystemMetric
from sematic_metrics.service.store import Store
from sematic_metrics.service.upstream import Upstream


class Service:
    """The store, the metrics and runs writers, the live-stream hub and the
    providers of the computed (system) metrics, started and stopped together."""

    def __init__(self, settings: Settings, system_metrics: dict[str, SystemMetric] | None = None) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.catalog = Catalog(self.store)
        self.writer = Writer(self.store, self.catalog, settings.commit_max_points)
        self.runs_writer = RunsWriter(self.store)
        self.hub = Hub(self.store)
        self.series_cache = SeriesCache(settings.series_cache_mb * 2**20)
        self.writer.listeners.append(self.hub.on_table)
        self.system_metrics: dict[str, SystemMetric] = system_metrics or {}
        self.openapi: dict[str, Any] = {}  # set by create_app from the resources it assembles
        # The Sematic server this service fronts (upstream mode), else None.
        self.upstream = Upstream(settings, self.runs_writer) if settings.sematic_upstream else None
        self.backfill: threading.Thread | None = None

    async def start(self) -> None:
        await run_in_threadpool(self.store.open)
        try:
            await run_in_threadpool(migrate, self.store)
            await run_in_threadpool(self.catalog.load)
            # Points stored before the rollup tiers existed are aggregated into
            # them in the background; reads use raw points until it is done.
            self.backfill = await run_in_threadpool(_tiers.start_backfill, self.store)
        except Exception:
            self.store.close()
            raise
        self.writer.start()
        self.hub.start()
        if self.upstream is not None:
            await self.upstream.start()

    def health(self) -> dict[str, object]:
        """Figures ``/healthz`` reports beside the store's status."""
        return {} if self.upstream is None else self.upstream.health()

    async def stop(self) -> None:
        if self.upstream is not None:
            await self.upstream.stop()
        await self.hub.stop()
        await self.writer.stop()
        self.store.close()


def service_of(request: Request) -> Service:
    """The Service of the app serving ``request``."""
    svc: Service = request.app.state.service
    return svc
