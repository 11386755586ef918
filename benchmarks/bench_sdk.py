"""Per-call cost of log_metric beside a Sematic-style loop, against one real server.

Starts ``sematic-metrics serve`` in a subprocess (own temporary data dir), then
in this one process:
- times ``log_metric`` in batches of calls with ``time.perf_counter_ns``
  (the sender thread runs and delivers meanwhile) and reports the median
  per-call cost and the time until everything was delivered;
- times a Sematic-style loop: one synchronous POST per point in Sematic's
  ``metric_points`` form, waiting for each answer. Sematic 0.41 does
  ``requests.post`` (a new connection) and then a second POST to
  ``/api/v1/events/metrics/update``; the cheapest variant, one POST over a
  kept-alive stdlib connection, is the baseline of the printed ratio.

Run: ``.venv/bin/python benchmarks/bench_sdk.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _server

import sematic_metrics
from sematic_metrics import sdk


def bench_sdk(port: int, calls: int, batch: int) -> dict[str, float]:
    sdk.configure(url=f"http://127.0.0.1:{port}")
    log_metric = sematic_metrics.log_metric
    with sematic_metrics.run(run_id="bench-sdk", function_path="bench.sdk"):
        for _ in range(10_000):  # warm-up: starts the sender, validates the name once
            log_metric("bench_sdk_loss", 0.5)
        sematic_metrics.flush(60)
        per_call: list[float] = []
        value = 0.0
        started = time.perf_counter()
        for _ in range(calls // batch):
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                log_metric("bench_sdk_loss", value)
            per_call.append((time.perf_counter_ns() - t0) / batch)
            value += 0.001
        logged = time.perf_counter() - started
        delivered = sematic_metrics.flush(120)
        total = time.perf_counter() - started
    stats = sematic_metrics.stats()
    if not delivered or stats.sent != stats.logged:
        raise SystemExit(f"SDK did not deliver everything: {stats}")
    per_call.sort()
    return {
        "median_ns": statistics.median(per_call),
        "p90_ns": per_call[int(len(per_call) * 0.9)],
        "calls": float(len(per_call) * batch),
        "log_s": logged,
        "delivered_s": total,
        "retried": float(stats.retried),
    }


def sematic_point(i: int) -> bytes:
    labels = {
        "__scope__": "0",
        "run_id": "bench-sematic",
        "function_path": "bench.sematic",
        "root_id": "bench-sematic",
        "root_function_path": "bench.sematic",
    }
    point = {
        "name": "bench_sematic_loss",
        "value": 0.5 + i * 1e-6,
        "metric_type": 1,
        "labels": labels,
        "metric_time": time.time(),
    }
    return json.dumps({"metric_points": [point]}).encode()


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> None:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"POST {path}: HTTP {response.status}")


def bench_sematic(port: int, points: int, mode: str) -> float:
    """Median seconds per point of one synchronous save per point."""
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    for i in range(points):
        body = sematic_point(i)
        t0 = time.perf_counter_ns()
        if mode == "keepalive":
            post(keep, "/api/v1/metrics", body)
        else:  # requests.post opens a connection per call
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            post(conn, "/api/v1/metrics", body)
            if mode == "sematic-0.41":
                post(conn, "/api/v1/events/metrics/update", body)
            conn.close()
        times.append(time.perf_counter_ns() - t0)
    keep.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=300_000, help="log_metric calls timed")
    parser.add_argument("--batch", type=int, default=1000, help="calls per perf_counter_ns sample")
    parser.add_argument("--sematic-points", type=int, default=300, help="points per Sematic-style variant")
    parser.add_argument("--quick", action="store_true", help="30000 calls, 100 Sematic-style points")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.sematic_points = 30_000, 100
    data_dir = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    server = _server.ServerProcess(data_dir / "data", log_path=data_dir / "server.log").start()
    port = server.port
    try:
        sdk_result = bench_sdk(port, args.calls, args.batch)
        variants: dict[str, Callable[[], float]] = {
            "keepalive": lambda: bench_sematic(port, args.sematic_points, "keepalive"),
            "new-connection": lambda: bench_sematic(port, args.sematic_points, "new-connection"),
            "sematic-0.41": lambda: bench_sematic(port, args.sematic_points, "sematic-0.41"),
        }
        sematic = {name: run() for name, run in variants.items()}
    finally:
        sematic_metrics.sdk.shutdown(10)
        server.stop(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    median = sdk_result["median_ns"]
    calls = int(sdk_result["calls"])
    print(f"log_metric: median {median:.0f} ns/call, p90 {sdk_result['p90_ns']:.0f} ns/call")
    print(
        f"  ({calls} calls in batches of {args.batch}; logged in {sdk_result['log_s']:.2f} s, "
        f"all delivered after {sdk_result['delivered_s']:.2f} s, "
        f"{calls / sdk_result['delivered_s']:,.0f} points/s end to end, {sdk_result['retried']:.0f} retries)"
    )
    print(f"Sematic-style, one synchronous save per point ({args.sematic_points} points each, median):")
    labels = {
        "keepalive": "one POST, kept-alive connection (baseline)",
        "new-connection": "one POST, new connection per point (requests.post)",
        "sematic-0.41": "POST + event POST, new connection (Sematic 0.41)",
    }
    for name, seconds_ns in sematic.items():
        print(f"  {labels[name]:<52} {seconds_ns / 1000:9.1f} us/point  ratio {seconds_ns / median:,.0f}x")
    print(f"ratio: Sematic-style / log_metric = {sematic['keepalive'] / median:,.0f}x")


if __name__ == "__main__":
    main()
