"""The SDK's buffer and background sender.

``log_metric`` appends tuples to ``Client.buffer`` (a deque: appends and
pops are atomic under the GIL). One daemon thread drains it by size and age,
groups points by their LabelSet and posts each group in the compact ingest
form over one kept-alive ``http.client`` connection. Each request has one
Idempotency-Key, kept across its retries, so a retried batch is stored once.
"""

from __future__ import annotations

import collections
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
from sematic_metrics.wire import ENCODER, CompactPoints, IngestBody, WireValue

log = logging.getLogger("sematic_metrics.sdk")

DropPolicy = Literal["oldest", "newest"]
# A buffered point: (labels, name, value, metric_type, epoch seconds).
Item = tuple[LabelSet, str, float, int, float]
_RESPONSE = msgspec.json.Decoder(dict[str, Any])
_RETRY_STATUS = frozenset({408, 425, 429})


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

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url: {self.url!r} is not an http(s):// URL of a sematic-metrics server")
        for name in ("max_buffer", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: {value!r} must be a positive integer")
        for name in ("max_age_s", "timeout_s", "exit_timeout_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name}: {value!r} must be a positive number of seconds")
        if self.drop_policy not in ("oldest", "newest"):
            raise ConfigError(f"drop_policy: {self.drop_policy!r} is not 'oldest' or 'newest'")


@dataclass(frozen=True)
class Stats:
    """Point counts of this process's client since it started.

    ``logged`` = ``sent`` + ``rejected`` + ``dropped`` + ``failed`` + ``pending``.
    ``retried`` counts re-sent requests, not points.
    """

    logged: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0


def _wire(value: float) -> WireValue:
    # msgspec writes NaN and infinities as null; the server takes these strings.
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode(labels: dict[str, str], items: Iterable[Item]) -> bytes:
    names, values, types, times = [], [], [], []
    for _, name, value, metric_type, at in items:
        names.append(name)
        values.append(value if value - value == 0.0 else _wire(value))
        types.append(metric_type)
        times.append(at)
    points = CompactPoints(name=names, value=values, metric_type=types, metric_time=times)
    return ENCODER.encode(IngestBody(labels=dict(labels), points=points))


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

    def stats(self) -> Stats:
        logged = int(repr(self.counter)[6:-1])
        queued, in_flight = len(self.buffer), self._in_flight
        dropped = max(0, logged - self._taken - queued)
        return Stats(logged, self.sent, self.retried, dropped, self.rejected, self.failed, queued + in_flight)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the buffer is delivered (or rejected); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
        try:
            self.wake.set()
            with self._cond:
                while self.buffer or self._in_flight:
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
        self._conn = None

    # -- sender thread --------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self.wake.wait(self._next_wait())
                self.wake.clear()
                while not self._closed.is_set() and self._due():
                    self._send_batch()
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
            self._cond.notify_all()
        self._drop_conn()

    def _next_wait(self) -> float:
        """Until the oldest point is due; a point logged meanwhile is seen within max_age_s / 2."""
        max_age = self.config.max_age_s
        try:
            return min(max_age / 2, max(0.001, self.buffer[0][4] + max_age - time.time()))
        except IndexError:
            return max_age / 2

    def _due(self) -> bool:
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
        body = encode(labels.resolve(), points)
        key = os.urandom(16).hex()
        attempt = 0
        stale_resent = False
        while True:
            outcome, detail, retry_after = self._post(body, key)
            if outcome == "ok":
                self.sent += len(points)
                self._settle(len(points))
                if self._failing:
                    self._failing = False
                    log.info("sematic-metrics: server reachable again at %s", self.config.url)
                return True
            if outcome == "stale" and stale_resent:
                outcome = "retry"
            stale_resent = stale_resent or outcome == "stale"
            if outcome == "too-large" and len(points) > 1:  # the server's body limit: halve and resend
                half = len(points) // 2
                return self._deliver(labels, points[:half]) and self._deliver(labels, points[half:])
            if outcome in ("rejected", "too-large"):
                log.warning("sematic-metrics: server rejected a batch of %d points: %s", len(points), detail)
                self.rejected += len(points)
                self._settle(len(points))
                return True
            if self._closed.is_set():
                return False
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
                return False
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
        return self._conn, parts.path.rstrip("/") + "/api/v1/metrics"

    def _post(self, body: bytes, key: str) -> tuple[str, str, float | None]:
        """("ok" | "rejected" | "too-large" | "retry" | "stale", detail, retry-after seconds)."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": f"sematic-metrics-python/{__version__}",
        }
        if self.config.api_key:
            headers["X-API-KEY"] = self.config.api_key
        reused = self._conn is not None and self._conn_requests > 0
        try:
            conn, path = self._connection()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            stale = reused and isinstance(exc, ConnectionError | http.client.RemoteDisconnected)
            return ("stale" if stale else "retry"), f"{type(exc).__name__}: {exc}", None
        self._conn_requests += 1
        if response.will_close:
            self._drop_conn()
        status = response.status
        if 200 <= status < 300:
            return "ok", "", None
        detail = f"HTTP {status}: {_error_text(data)}"
        if status >= 500 or status in _RETRY_STATUS:
            return "retry", detail, _seconds(response.getheader("Retry-After"))
        return ("too-large" if status == 413 else "rejected"), detail, None


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
