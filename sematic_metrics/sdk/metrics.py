"""The SDK: ``log_metric`` validates and enqueues; a background thread delivers.

Nothing is read at import. At the first ``log_metric`` (or the first recorded
run) the client reads ``SEMATIC_METRICS_URL`` and ``SEMATIC_METRICS_API_KEY``
(``configure()`` overrides both and the buffer settings), starts its sender
thread and installs its exit hooks: ``atexit``, a SIGTERM handler chained to
the previous one (from the main thread only) and a fork hook that gives a
child its own sender and an empty buffer. At exit and on SIGTERM the runs
still open are recorded CANCELED before the last delivery.
"""

from __future__ import annotations

import atexit
import math
import numbers
import os
import signal
import sys
import threading
import time
from dataclasses import fields, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from sematic_metrics.errors import InvalidInputError, NotInRunError, TypeConflictError
from sematic_metrics.rules import MAX_NAME, MAX_STEP, MAX_TIME, MIN_TIME
from sematic_metrics.sdk import _runs, context
from sematic_metrics.wire import MetricScope, MetricType

if TYPE_CHECKING:
    from sematic_metrics.sdk._sender import Client, Config, Stats

ENV_URL = "SEMATIC_METRICS_URL"
ENV_API_KEY = "SEMATIC_METRICS_API_KEY"
_MAX_NAMES = 100_000

_client: Client | None = None
# An RLock: the SIGTERM handler may start a client (to record runs CANCELED)
# while the main thread it interrupted holds the lock.
_lock = threading.RLock()
_overrides: dict[str, Any] = {}
_hooks_installed = False
_previous_sigterm: Any = None
# name -> metric type code of names already validated in this process.
_names: dict[str, int] = {}

# Hot-path aliases: log_metric reads module globals, not attributes, so each
# call saves the attribute lookups (measured in benchmarks/bench_sdk.py).
_RUN, _PIPELINE = MetricScope.RUN, MetricScope.PIPELINE
_GAUGE, _COUNT = MetricType.GAUGE, MetricType.COUNT
_current = context._current.get
_current_run = context.current_run
_now = time.time


def log_metric(
    name: str,
    value: float,
    scope: MetricScope = MetricScope.RUN,
    metric_type: MetricType = MetricType.GAUGE,
    *,
    step: int | None = None,
    timestamp: float | None = None,
) -> None:
    """Record one point of metric ``name`` for the current run; returns at once.

    ``metric_type`` GAUGE points are averaged per time bucket, COUNT points
    summed; ``scope`` PIPELINE shows the metric on the pipeline's panel.
    ``step`` (a non-negative integer) places the point on the step axis;
    ``timestamp`` (epoch seconds) backdates it, else it is now.
    Raises NotInRunError outside a run, InvalidInputError for an empty name,
    a value that is not a real number, a bad step or timestamp, or an unknown
    type or scope, and TypeConflictError for a name already logged here with
    the other type. Delivery failures are never raised: see ``stats()``.
    """
    if type(name) is not str:
        name = _name_type(name)
    code = 1 if metric_type is _GAUGE else 0 if metric_type is _COUNT else _type_code(metric_type)
    if _names.get(name) != code:
        _check_name(name, code)
    if type(value) is not float:
        value = _real(value)
    index = 0 if scope is _RUN else 1 if scope is _PIPELINE else _scope_index(scope)
    if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
        step = _step(step)
    at = _now() if timestamp is None else _timestamp(timestamp)
    run = _current() or _current_run()
    if run is None:
        raise NotInRunError(
            "log_metric must be called inside a run: use `with sematic_metrics.run(...)`, "
            "decorate the function with `@sematic_metrics.run`, set SEMATIC_METRICS_RUN_ID, "
            "or call it from a Sematic function"
        )
    client = _client or _start()
    buffer = client.buffer
    size = len(buffer)
    if size < client.reject_at:
        buffer.append((run.label_sets[index], name, value, code, at, step))
    next(client.counter)
    if size + 1 == client.batch_size:
        client.wake.set()


def _step(step: object) -> int:
    # bool is an int subclass: True is not step 1.
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise InvalidInputError(f"step: must be a non-negative integer, got {type(step).__name__}")
    if isinstance(step, numbers.Integral):
        whole = int(step)
    elif math.isfinite(float(step)) and float(step).is_integer():
        whole = int(float(step))
    else:
        raise InvalidInputError(f"step: must be a non-negative integer, got {step!r}")
    if not 0 <= whole <= MAX_STEP:
        raise InvalidInputError(f"step: {whole} is outside 0 to {MAX_STEP}")
    return whole


def _timestamp(timestamp: object) -> float:
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real):
        raise InvalidInputError(f"timestamp: must be epoch seconds, got {type(timestamp).__name__}")
    at = float(timestamp)
    if not MIN_TIME <= at < MAX_TIME:
        raise InvalidInputError(f"timestamp: {timestamp!r} is outside the years 1900 to 2299 (epoch seconds)")
    return at


def _name_type(name: object) -> str:
    if isinstance(name, str):
        return str(name)
    raise InvalidInputError(f"name: must be a string, got {type(name).__name__}")


def _check_name(name: str, code: int) -> None:
    known = _names.get(name)
    if known is not None:
        raise TypeConflictError(
            f"metric_type: metric {name!r} was logged as {MetricType(known).name} and cannot take "
            f"{MetricType(code).name} points; a metric name has one type, log it under another name"
        )
    if not name.strip():
        raise InvalidInputError("name: metric name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"name: {len(name)} characters; the limit is {MAX_NAME}")
    if len(_names) >= _MAX_NAMES:
        _names.clear()
    _names[name] = code


def _real(value: object) -> float:
    kind = type(value)
    if isinstance(value, bool) or kind.__name__ in ("bool_", "bool"):
        raise InvalidInputError(f"value: {value!r} is a boolean; log a number (e.g. int(flag))")
    if isinstance(value, str | bytes) or not (isinstance(value, numbers.Real) or hasattr(kind, "__float__")):
        raise InvalidInputError(f"value: {kind.__name__} {str(value)[:40]!r} is not a real number")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"value: {kind.__name__} is not a real number ({exc})") from None


def _type_code(metric_type: object) -> int:
    if isinstance(metric_type, bool):
        raise InvalidInputError(f"metric_type: {metric_type!r} is not a MetricType")
    if isinstance(metric_type, int) and metric_type in (0, 1):
        return int(metric_type)
    name = getattr(metric_type, "name", None)  # another library's enum, e.g. Sematic's
    if name in ("COUNT", "GAUGE"):
        return 0 if name == "COUNT" else 1
    raise InvalidInputError(
        f"metric_type: {metric_type!r} is not a metric type; use MetricType.GAUGE or MetricType.COUNT"
    )


def _scope_index(scope: object) -> int:
    raw = getattr(scope, "value", scope)  # Sematic's MetricScope is an enum of "0" / "1"
    if not isinstance(raw, bool) and isinstance(raw, str | int) and str(raw) in context.SCOPE_VALUES:
        return int(raw)
    raise InvalidInputError(f"scope: {scope!r} is not a scope; use MetricScope.RUN or MetricScope.PIPELINE")


# -- configuration and the client ---------------------------------------------
def configure(**settings: Any) -> Config:
    """Override settings, from now on, for this process's client; returns them all.

    ``url`` (else SEMATIC_METRICS_URL, else http://127.0.0.1:8000), ``api_key``
    (else SEMATIC_METRICS_API_KEY; sent as X-API-KEY), ``max_buffer`` (points
    waiting to be sent, default 500000), ``drop_policy`` ("oldest" or
    "newest": which points or run records a full buffer drops), ``batch_size``
    (points per request, default 50000), ``max_age_s`` (send points and run
    records at most this old, default 1), ``timeout_s`` (per request),
    ``exit_timeout_s`` (delivery deadline at exit and SIGTERM, default 5),
    ``backoff_s`` and ``max_backoff_s`` (retry delays), ``max_runs`` (runs
    whose record waits to be sent, default 10000), ``record_runs`` (False: no
    run records from this process). A value of None restores the default.
    """
    from sematic_metrics.sdk._sender import Config

    known = {f.name for f in fields(Config)}
    unknown = set(settings) - known
    if unknown:
        raise InvalidInputError(f"configure: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    with _lock:
        merged = {**_overrides, **settings}
        config = _config(merged)  # validates before anything changes
        _overrides.clear()
        _overrides.update({k: v for k, v in merged.items() if v is not None})
        if _client is not None:
            _client.apply(config)
    return config


def _config(overrides: dict[str, Any]) -> Config:
    from sematic_metrics.sdk._sender import Config

    base = Config(
        url=os.environ.get(ENV_URL, "").strip() or Config.url,
        api_key=os.environ.get(ENV_API_KEY, "").strip() or None,
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _start() -> Client:
    global _client
    with _lock:
        if _client is None:
            from sematic_metrics.sdk._sender import Client

            _client = Client(_config(_overrides))
            _install_hooks()
        return _client


def client() -> Client:
    """This process's client, started if need be."""
    return _client or _start()


def run_client() -> Client | None:
    """The client that records runs, started if need be; None when runs are not recorded."""
    client = _client
    if client is None:
        if not _config(_overrides).record_runs:
            return None
        client = _start()
    return client if client.config.record_runs else None


def flush(timeout: float | None = None) -> bool:
    """Block until every buffered point and run record is delivered (or rejected); False on timeout."""
    client = _client
    return True if client is None else client.flush(timeout)


def stats() -> Stats:
    """Counts of this process's points (logged, sent, retried, dropped, rejected, failed,
    pending) and run records (runs_logged, runs_sent, ...)."""
    from sematic_metrics.sdk._sender import Stats

    client = _client
    return Stats() if client is None else client.stats()


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout``, then stop the sender; the next log_metric starts a new one."""
    global _client
    client = _client
    if client is None:
        return True
    delivered = client.flush(timeout)
    with _lock:
        if _client is client:
            _client = None
    client.close()
    return delivered


# -- exit, SIGTERM and fork -----------------------------------------------------
def _install_hooks() -> None:
    global _hooks_installed, _previous_sigterm
    if "multiprocessing.util" in sys.modules:
        # A multiprocessing child started by fork ends with os._exit: no atexit.
        sys.modules["multiprocessing.util"].Finalize(None, _at_exit, exitpriority=100)
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        try:
            _previous_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not the main interpreter, or no SIGTERM here
            _previous_sigterm = None


def _at_exit() -> None:
    _runs.cancel_open()  # runs of daemon threads, killed with the process
    _deliver_at_exit()


def _deliver_at_exit() -> None:
    client = _client
    if client is None:
        return
    if not client.flush(client.config.exit_timeout_s):
        stats = client.stats()
        sys.stderr.write(
            f"sematic-metrics: {stats.pending} points and {stats.runs_pending} run records not "
            f"delivered to {client.config.url} within {client.config.exit_timeout_s:g} s at exit\n"
        )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous_sigterm
    if previous != signal.SIG_IGN:  # the process is going: its open runs end CANCELED
        _runs.cancel_open()
    _deliver_at_exit()
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: terminate by the signal
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    global _client, _lock
    _lock = threading.RLock()
    _runs.after_fork_in_child()
    client, _client = _client, None
    if client is not None:
        client.abandon()
