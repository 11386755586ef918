"""Error hierarchy shared by the SDK and the server.

Every error carries an HTTP status so the service can map it to a response,
and every message says what was wrong and what to do about it.
"""

from __future__ import annotations


class SematicMetricsError(Exception):
    """Root of every error raised by sematic-metrics."""

    status_code: int = 500


class ConfigError(SematicMetricsError):
    """A setting is missing or malformed."""


class InvalidInputError(SematicMetricsError, ValueError):
    """A request or an SDK call carried bad input; nothing was written."""

    status_code = 400


class PayloadTooLargeError(InvalidInputError):
    """A request body is over the configured limit."""

    status_code = 413


class TypeConflictError(SematicMetricsError):
    """A metric name was sent with a type other than the one stored for it."""

    status_code = 409


class RunConflictError(SematicMetricsError):
    """A run record changes a field that never changes between versions of a run."""

    status_code = 409


class NotFoundError(SematicMetricsError, LookupError):
    """The requested metric, run or pipeline does not exist."""

    status_code = 404


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body is not declared as JSON."""

    status_code = 415


class RequestTimeoutError(InvalidInputError):
    """A request body did not arrive within the configured time."""

    status_code = 408


class AuthError(SematicMetricsError):
    """A request carried no API key, or one that is not configured."""

    status_code = 401


class ForbiddenError(AuthError):
    """The API key is valid but its scope does not allow the request."""

    status_code = 403


class StoreError(SematicMetricsError):
    """The ClickHouse store failed or cannot be reached."""

    status_code = 503


class StoreLockedError(StoreError):
    """The embedded data directory is held by another process."""


class NotInRunError(SematicMetricsError, RuntimeError):
    """log_metric was called outside a run context."""
