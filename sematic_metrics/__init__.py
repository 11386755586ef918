"""sematic-metrics: log metrics from ML pipelines into ClickHouse.

Importing the package loads the SDK only (``sematic_metrics.sdk``: msgspec and
the standard library). The service lives in ``sematic_metrics.service`` and is
imported by ``sematic-metrics serve``; ``errors`` and ``wire`` are shared by both.
"""

from __future__ import annotations

from sematic_metrics.errors import (
    AuthError,
    ConfigError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    NotInRunError,
    PayloadTooLargeError,
    SematicMetricsError,
    StoreError,
    StoreLockedError,
    TypeConflictError,
)
from sematic_metrics.sdk import configure, flush, log_metric, log_run, run, stats
from sematic_metrics.wire import MetricScope, MetricType

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "ForbiddenError",
    "InvalidInputError",
    "MetricScope",
    "MetricType",
    "NotFoundError",
    "NotInRunError",
    "PayloadTooLargeError",
    "SematicMetricsError",
    "StoreError",
    "StoreLockedError",
    "TypeConflictError",
    "__version__",
    "configure",
    "flush",
    "log_metric",
    "log_run",
    "run",
    "stats",
]
