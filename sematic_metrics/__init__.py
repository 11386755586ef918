"""sematic-metrics: log metrics from ML pipelines into ClickHouse.

The package itself is the SDK and imports only msgspec and the standard
library; the server lives in modules imported by ``sematic-metrics serve``.
"""

from __future__ import annotations

from sematic_metrics.context import run
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
from sematic_metrics.models import MetricScope, MetricType
from sematic_metrics.sdk import configure, flush, log_metric, stats

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
    "run",
    "stats",
]
