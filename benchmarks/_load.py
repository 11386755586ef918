"""HTTP load: concurrent keep-alive clients posting pre-encoded bodies.

A point counts once the request carrying it got a 2xx; the service answers
only after the points are stored.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    points: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    exhausted: bool = True  # every body was sent

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


def post_all(
    port: int,
    path: str,
    bodies: Sequence[tuple[bytes, int]],
    clients: int,
    headers: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "POST",
    budget_s: float | None = None,
) -> LoadResult:
    """Send every body once over ``clients`` keep-alive connections; with
    ``budget_s``, no request starts after that many seconds."""
    work: queue.Queue[tuple[bytes, int]] = queue.Queue()
    for item in bodies:
        work.put(item)
    result = LoadResult()
    lock = threading.Lock()
    total = sum(n for _, n in bodies)
    base_headers = {"Content-Type": "application/json", **(headers or {})}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            while budget_s is None or time.perf_counter() - start < budget_s:
                try:
                    body, n = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=base_headers)
                    response = conn.getresponse()
                    text = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - t0
                with lock:
                    result.requests += 1
                    result.latencies.append(elapsed)
                    if 200 <= response.status < 300:
                        result.points += n
                        done = result.points
                    else:
                        result.errors.append(f"{response.status}: {text[:200]!r}")
                        done = -1
                if progress is not None and done >= 0:
                    progress(done, total)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - start
    result.exhausted = work.empty()
    return result


def get(port: int, path: str, timeout_s: float = 120) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - t0
    finally:
        conn.close()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def call_json(port: int, method: str, path: str, payload: object | None = None) -> tuple[int, Any]:
    """One JSON request; returns (status, decoded body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None
    finally:
        conn.close()
