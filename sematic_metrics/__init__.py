"""sematic-metrics: log metrics from ML pipelines into ClickHouse."""

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
from sematic_metrics.models import MetricScope, MetricType

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
]
