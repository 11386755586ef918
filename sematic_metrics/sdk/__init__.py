"""The SDK: the code that runs inside the user's pipeline process.

It imports msgspec, the standard library and the modules shared with the
service (``errors``, ``wire``), never anything from ``sematic_metrics.service``.
``metrics`` holds ``log_metric`` and the sender's life cycle, ``context`` the
run context, ``_sender`` the background delivery thread.
"""

from __future__ import annotations

from sematic_metrics.sdk.context import run
from sematic_metrics.sdk.metrics import configure, flush, log_metric, shutdown, stats

__all__ = ["configure", "flush", "log_metric", "run", "shutdown", "stats"]
