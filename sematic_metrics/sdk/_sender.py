"""The SDK's buffer and background sender.

``log_metric`` appends tuples to ``Client.buffer`` (a deque: appends and
pops are atomic under the GIL). One daemon thread drains it by size and age,
groups points by their LabelSet and posts each group in the compact ingest
form over one kept-alive ``http.client`` connection. Each request has one
Idempotency-Key, kept across its retries, so a retried batch is stored once.

Run records (``add_run``) wait in their own bounded queue, one entry per run:
a newer version of a run replaces the waiting one (each version is a whole
record). The same thread posts them to ``/api/v1/runs`` with the same rules.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import itertools
import logging
import math
import os
import random
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from sematic_metrics import __version__
from sematic_metrics.errors import ConfigError
from sematic_metrics.sdk.context import LabelSet
from sematic_metrics.wire import ENCODER, CompactPoints, IngestBody, RunRecord, RunRecords, WireValue

log = logging.getLogger("sematic_metrics.sdk")

DropPolicy = Literal["oldest", "newest"]
# A buffered point: (labels, name, value, metric_type, epoch seconds).
# (labels, name, value, type code, epoch seconds, step or None)
Item = tuple[LabelSet, str, float, int, float, int | None]
# A waiting run record: (its latest version, versions it stands for, epoch seconds queued).
RunItem = tuple[RunRecord, int, float]
_RESPONSE = msgspec.json.Decoder(dict[str, Any])
_RETRY_STATUS = frozenset({408, 425, 429})
# A rejected batch of run records is halved until the bad record is alone, so
# one bad record (say, a reused run_id: 409) does not take the others with it.
_SPLIT_STATUS = frozenset({400, 409, 413, 422})
_RUNS_PER_REQUEST = 1000
_POINTS_PATH = "/api/v1/metrics"
_RUNS_PATH = "/api/v1/runs"


@dataclass(frozen=True)
class Config:
    """SDK settings; see ``sematic_metrics.sdk.configure``."""

    url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    max_buffer: int = 500_000
    batch_size: int = 50_000
    max_age_s: float = 1.0
    drop_policy: DropPolicy = "oldest"
    timeout_s: float = 10.0
    exit_timeout_s: float = 5.0
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    max_runs: int = 10_000
    record_runs: bool = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url: {self.url!r} is not an http(s):// URL of a sematic-metrics server")
        for name in ("max_buffer", "batch_size", "max_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: {value!r} must be a positive integer")
        for name in ("max_age_s", "timeout_s", "exit_timeout_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name}: {value!r} must be a positive number of seconds")
        if self.drop_policy not in ("oldest", "newest"):
            raise ConfigError(f"drop_policy: {self.drop_policy!r} is not 'oldest' or 'newest'")
        if not isinstance(self.record_runs, bool):
            raise ConfigError(f"record_runs: {self.record_runs!r} must be True or False")


@dataclass(frozen=True)
class Stats:
    """Counts of this process's client since it started.

    Points: ``logged`` = ``sent`` + ``rejected`` + ``dropped`` + ``failed`` + ``pending``.
    Run records (versions of runs): ``runs_logged`` = ``runs_sent`` +
    ``runs_rejected`` + ``runs_dropped`` + ``runs_failed`` + ``runs_pending``; a
    version replaced by a newer one of the same run before it left shares that
    one's fate. ``retried`` counts re-sent requests of both kinds.
    """

    logged: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0
    runs_logged: int = 0
    runs_sent: int = 0
    runs_dropped: int = 0
    runs_rejected: int = 0
    runs_failed: int = 0
    runs_pending: int = 0


def _wire(value: float) -> WireValue:
    # msgspec writes NaN and infinities as null; the server takes these strings.
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode(labels: dict[str, str], items: Iterable[Item]) -> bytes:
    names, values, types, times, steps = [], [], [], [], []
    for _, name, value, metric_type, at, step in items:
        names.append(name)
        # x - x is 0.0 for every finite float and NaN for NaN and infinities:
        # one subtraction instead of a math.isfinite call per point.
        values.append(value if value - value == 0.0 else _wire(value))
        types.append(metric_type)
        times.append(at)
        steps.append(step)
    points = CompactPoints(
        name=names,
        value=values,
        metric_type=types,
        metric_time=times,
        step=steps if any(s is not None for s in steps) else None,
    )
    return ENCODER.encode(IngestBody(labels=dict(labels), points=points))


def encode_runs(items: Iterable[RunItem]) -> bytes:
    return ENCODER.encode(RunRecords(runs=[record for record, _, _ in items]))


class Client:
    """One per process: the buffer ``log_metric`` appends to and its sender thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.counter = itertools.count()  # next() per logged point; atomic under the GIL
        self.buffer: collections.deque[Item] = collections.deque()
        self.reject_at = sys.maxsize
        self.batch_size = config.batch_size
        self.wake = threading.Event()
        self._set_buffer(config)
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._taken = 0
        self._in_flight = 0
        self._flushing = 0
        self._conn: http.client.HTTPConnection | None = None
        self._conn_requests = 0  # requests answered on the current connection
        self._failing = False
        self._conn_reset = False
        self.sent = self.retried = self.rejected = self.failed = 0
        # run id -> its waiting record. An RLock: the SIGTERM handler adds
        # records from the main thread, which it may interrupt inside add_run.
        self._runs: collections.OrderedDict[str, RunItem] = collections.OrderedDict()
        self._runs_lock = threading.RLock()
        self._runs_in_flight = 0
        self.runs_logged = self.runs_sent = self.runs_dropped = self.runs_rejected = self.runs_failed = 0
        self._thread = threading.Thread(target=self._loop, name="sematic-metrics-sender", daemon=True)
        self._thread.start()

    # -- called from user threads -------------------------------------------
    def apply(self, config: Config) -> None:
        """Take new settings; a new buffer cap or policy keeps the buffered points."""
        old = self.config
        self.config = config
        self.batch_size = config.batch_size
        if (old.url, old.api_key) != (config.url, config.api_key):
            self._conn_reset = True
        if (old.max_buffer, old.drop_policy) != (config.max_buffer, config.drop_policy):
            self._set_buffer(config)
        self.wake.set()

    def _set_buffer(self, config: Config) -> None:
        oldest = config.drop_policy == "oldest"
        buffer = collections.deque(self.buffer, maxlen=config.max_buffer if oldest else None)
        self.buffer, self.reject_at = buffer, sys.maxsize if oldest else config.max_buffer

    def add_run(self, record: RunRecord) -> None:
        """Queue a version of a run; it replaces a waiting version of the same run."""
        with self._runs_lock:
            self.runs_logged += 1
            waiting = self._runs.get(record.id)
            if waiting is not None:
                latest = record if record.updated_at >= waiting[0].updated_at else waiting[0]
                self._runs[record.id] = (latest, waiting[1] + 1, waiting[2])
                return
            if len(self._runs) >= self.config.max_runs:
                if self.config.drop_policy == "newest":
                    self.runs_dropped += 1
                    return
                self.runs_dropped += self._runs.popitem(last=False)[1][1]
            self._runs[record.id] = (record, 1, time.time())
            full = len(self._runs) >= _RUNS_PER_REQUEST
        if full:
            self.wake.set()

    def stats(self) -> Stats:
        # itertools.count has no public "current value"; its repr is "count(N)".
        # Reading it does not advance it, unlike next().
        logged = int(repr(self.counter)[6:-1])
        queued, in_flight = len(self.buffer), self._in_flight
        dropped = max(0, logged - self._taken - queued)
        with self._runs_lock:
            runs_pending = sum(versions for _, versions, _ in self._runs.values()) + self._runs_in_flight
        return Stats(
            logged=logged,
            sent=self.sent,
            retried=self.retried,
            dropped=dropped,
            rejected=self.rejected,
            failed=self.failed,
            pending=queued + in_flight,
            runs_logged=self.runs_logged,
            runs_sent=self.runs_sent,
            runs_dropped=self.runs_dropped,
            runs_rejected=self.runs_rejected,
            runs_failed=self.runs_failed,
            runs_pending=runs_pending,
        )

    def _busy(self) -> bool:
        if self.buffer or self._in_flight:
            return True
        with self._runs_lock:
            return bool(self._runs or self._runs_in_flight)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the points and run records are delivered (or rejected); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
        try:
            self.wake.set()
            with self._cond:
                while self._busy():
                    if self._closed.is_set():
                        return False
                    wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                    self._cond.wait(wait)
            return True
        finally:
            with self._cond:
                self._flushing -= 1

    def close(self) -> None:
        """Stop the sender; what is still buffered or in flight counts as failed."""
        self._closed.set()
        self.wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.config.timeout_s + 1)

    def abandon(self) -> None:
        """In a forked child: this copy has no thread; its points stay the parent's.

        Touches no lock: one may have been held by the parent's sender at fork.
        """
        self.buffer.clear()
        self._runs = collections.OrderedDict()
        self._conn = None

    # -- sender thread --------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self.wake.wait(self._next_wait())
                self.wake.clear()
                while not self._closed.is_set() and self._due():
                    if self._points_due():  # points first: live charts wait on them
                        self._send_batch()
                    if self._runs_due():
                        self._send_runs()
            except Exception:  # never let the sender die
                log.exception("sematic-metrics: sender error; continuing")
                time.sleep(0.1)
            with self._cond:
                self._cond.notify_all()
        with self._cond:
            self.failed += len(self.buffer) + self._in_flight
            self._taken += len(self.buffer)
            self.buffer.clear()
            self._in_flight = 0
            with self._runs_lock:
                self.runs_failed += sum(versions for _, versions, _ in self._runs.values())
                self.runs_failed += self._runs_in_flight
                self._runs.clear()
                self._runs_in_flight = 0
            self._cond.notify_all()
        self._drop_conn()

    def _next_wait(self) -> float:
        """Until the oldest point or run record is due; one queued meanwhile is seen within max_age_s / 2."""
        max_age = self.config.max_age_s
        oldest = self._oldest_run()
        with contextlib.suppress(IndexError):
            oldest = min(oldest, self.buffer[0][4])
        return min(max_age / 2, max(0.001, oldest + max_age - time.time()))

    def _oldest_run(self) -> float:
        with self._runs_lock:
            for _, _, queued in self._runs.values():
                return queued
        return math.inf

    def _due(self) -> bool:
        return self._runs_due() or self._points_due()

    def _runs_due(self) -> bool:
        with self._runs_lock:
            waiting = len(self._runs)
        if not waiting:
            return False
        if waiting >= _RUNS_PER_REQUEST or self._flushing:
            return True
        return time.time() - self._oldest_run() >= self.config.max_age_s

    def _points_due(self) -> bool:
        buffer = self.buffer
        if not buffer:
            return False
        if len(buffer) >= self.batch_size or self._flushing:
            return True
        try:
            return time.time() - buffer[0][4] >= self.config.max_age_s
        except IndexError:
            return False

    def _send_batch(self) -> None:
        buffer = self.buffer
        count = min(len(buffer), self.batch_size)
        self._in_flight = count  # before popping, so flush() never sees an empty client early
        items: list[Item] = []
        pop = buffer.popleft
        try:
            for _ in range(count):
                items.append(pop())
        except IndexError:  # the buffer was replaced by apply()
            pass
        self._taken += len(items)
        self._in_flight = len(items)
        groups: dict[LabelSet, list[Item]] = {}
        for item in items:
            groups.setdefault(item[0], []).append(item)
        try:
            for labels, points in groups.items():
                if not self._deliver(labels, points):
                    break
        finally:
            with self._cond:
                self.failed += self._in_flight
                self._in_flight = 0
                self._cond.notify_all()

    def _deliver(self, labels: LabelSet, points: list[Item]) -> bool:
        """Send until stored or rejected (True), or until the client closes (False)."""
        if self._closed.is_set():
            return False
        outcome, _, detail = self._send(_POINTS_PATH, encode(labels.resolve(), points))
        if outcome == "closed":
            return False
        if outcome == "too-large" and len(points) > 1:  # the server's body limit: halve and resend
            half = len(points) // 2
            return self._deliver(labels, points[:half]) and self._deliver(labels, points[half:])
        if outcome == "ok":
            self.sent += len(points)
        else:
            log.warning("sematic-metrics: server rejected a batch of %d points: %s", len(points), detail)
            self.rejected += len(points)
        self._settle(len(points))
        return True

    def _send_runs(self) -> None:
        with self._runs_lock:
            items: list[RunItem] = []
            while self._runs and len(items) < _RUNS_PER_REQUEST:
                items.append(self._runs.popitem(last=False)[1])
            self._runs_in_flight = sum(versions for _, versions, _ in items)
        try:
            self._deliver_runs(items)
        finally:
            with self._cond:
                with self._runs_lock:
                    self.runs_failed += self._runs_in_flight
                    self._runs_in_flight = 0
                self._cond.notify_all()

    def _deliver_runs(self, items: list[RunItem]) -> bool:
        """Like ``_deliver``, for run records; a rejected batch is halved to isolate the bad record."""
        if self._closed.is_set():
            return False
        outcome, status, detail = self._send(_RUNS_PATH, encode_runs(items))
        if outcome == "closed":
            return False
        if outcome != "ok" and len(items) > 1 and status in _SPLIT_STATUS:
            half = len(items) // 2
            return self._deliver_runs(items[:half]) and self._deliver_runs(items[half:])
        versions = sum(count for _, count, _ in items)
        if outcome == "ok":
            self.runs_sent += versions
        else:
            ids = ", ".join(record.id for record, _, _ in items[:3])
            log.warning("sematic-metrics: server rejected %d run records (%s): %s", len(items), ids, detail)
            self.runs_rejected += versions
        with self._cond:
            with self._runs_lock:
                self._runs_in_flight -= versions
            self._cond.notify_all()
        return True

    def _send(self, path: str, body: bytes) -> tuple[str, int, str]:
        """POST until answered 2xx ("ok") or 4xx ("rejected", "too-large"), or the client
        closes ("closed"); returns (outcome, HTTP status, detail). One Idempotency-Key
        for every attempt."""
        key = os.urandom(16).hex()
        attempt = 0
        stale_resent = False
        while True:
            outcome, status, detail, retry_after = self._post(path, body, key)
            if outcome == "ok":
                if self._failing:
                    self._failing = False
                    log.info("sematic-metrics: server reachable again at %s", self.config.url)
                return outcome, status, ""
            if outcome in ("rejected", "too-large"):
                return outcome, status, detail
            if outcome == "stale" and stale_resent:
                outcome = "retry"
            stale_resent = stale_resent or outcome == "stale"
            if self._closed.is_set():
                return "closed", status, detail
            if outcome == "stale":  # a kept-alive connection the server had closed: resend at once
                self.retried += 1
                continue
            if not self._failing:
                self._failing = True
                log.warning("sematic-metrics: sending failed (%s); retrying in the background", detail)
            delay = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
            delay = random.uniform(delay / 2, delay)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.config.max_backoff_s))
            if self._flushing:
                delay = min(delay, 0.5)
            attempt += 1
            if self._closed.wait(delay):
                return "closed", status, detail
            self.retried += 1

    def _settle(self, count: int) -> None:
        with self._cond:
            self._in_flight -= count
            self._cond.notify_all()

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        self._conn_requests = 0
        if conn is not None:
            conn.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(self.config.url)
        if self._conn_reset:
            self._conn_reset = False
            self._drop_conn()
        if self._conn is None:
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(parts.hostname or "", parts.port, timeout=self.config.timeout_s)
        return self._conn, parts.path.rstrip("/")

    def _post(self, path: str, body: bytes, key: str) -> tuple[str, int, str, float | None]:
        """("ok" | "rejected" | "too-large" | "retry" | "stale", HTTP status or 0, detail,
        retry-after seconds)."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": f"sematic-metrics-python/{__version__}",
        }
        if self.config.api_key:
            headers["X-API-KEY"] = self.config.api_key
        reused = self._conn is not None and self._conn_requests > 0
        try:
            conn, prefix = self._connection()
            conn.request("POST", prefix + path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            stale = reused and isinstance(exc, ConnectionError | http.client.RemoteDisconnected)
            return ("stale" if stale else "retry"), 0, f"{type(exc).__name__}: {exc}", None
        self._conn_requests += 1
        if response.will_close:
            self._drop_conn()
        status = response.status
        if 200 <= status < 300:
            return "ok", status, "", None
        detail = f"HTTP {status}: {_error_text(data)}"
        if status >= 500 or status in _RETRY_STATUS:
            return "retry", status, detail, _seconds(response.getheader("Retry-After"))
        return ("too-large" if status == 413 else "rejected"), status, detail, None


def _error_text(data: bytes) -> str:
    try:
        return str(_RESPONSE.decode(data).get("error", ""))[:500]
    except msgspec.DecodeError:
        return data[:200].decode("utf-8", "replace")


def _seconds(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None
