"""The SDK: the code that runs inside the user's pipeline process.

It imports msgspec, the standard library and the modules shared with the
service (``errors``, ``wire``, ``rules``), never anything from
``sematic_metrics.service``. ``metrics`` holds ``log_metric`` and the sender's
life cycle, ``context`` the run context, ``_runs`` the records of the runs
``run()`` opens, ``_sender`` the background delivery thread.
"""

from __future__ import annotations

from sematic_metrics.sdk._runs import log_run
from sematic_metrics.sdk.context import run
from sematic_metrics.sdk.metrics import configure, flush, log_metric, shutdown, stats

__all__ = ["configure", "flush", "log_metric", "log_run", "run", "shutdown", "stats"]
