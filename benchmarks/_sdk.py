"""SDK figures, run as a child process against a running server:

    python benchmarks/_sdk.py --port P [--calls N] [--sematic-points M] [--probes K]

- per-call cost of ``log_metric`` beside a Sematic-style synchronous save per
  point, through the functions of ``bench_sdk.py`` when that script is present;
- live latency: a point logged with the SDK until the query API shows it,
  polled every 2 ms, with the SDK's default send age and with a short one.

Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.parse
from typing import Any

import _load

import sematic_metrics
from sematic_metrics import sdk

PROBE = "bench_live_probe"


def per_call(port: int, calls: int, batch: int, sematic_points: int) -> dict[str, Any]:
    try:
        import bench_sdk
    except ImportError as exc:
        return {"skipped": f"benchmarks/bench_sdk.py is not importable here: {exc}"}
    try:
        result: dict[str, Any] = dict(bench_sdk.bench_sdk(port, calls, batch))
        result["sematic_style_ns"] = {
            mode: float(bench_sdk.bench_sematic(port, sematic_points, mode))
            for mode in ("keepalive", "new-connection", "sematic-0.41")
        }
    except (AttributeError, TypeError) as exc:
        return {"skipped": f"bench_sdk.py's bench_sdk/bench_sematic functions changed: {exc}"}
    return result


def visible(port: int, run_id: str) -> bool:
    labels = urllib.parse.quote(json.dumps({"run_id": run_id}))
    status, body, _ = _load.get(port, f"/api/v1/metrics/{PROBE}?labels={labels}")
    return status == 200 and bool(json.loads(body)["content"]["series"])


def live(port: int, probes: int, max_age_s: float | None) -> dict[str, Any]:
    """Seconds from log_metric returning to the point showing in GET /api/v1/metrics/{name}."""
    sdk.configure(url=f"http://127.0.0.1:{port}", max_age_s=max_age_s)
    latencies: list[float] = []
    for i in range(probes):
        run_id = f"live-{max_age_s}-{i}-{random.getrandbits(32):08x}"
        with sematic_metrics.run(run_id=run_id, function_path="bench.live"):
            t0 = time.perf_counter()
            sematic_metrics.log_metric(PROBE, float(i))
        while not visible(port, run_id):
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"point of {run_id} not visible after 30 s: {sdk.stats()}")
            time.sleep(0.002)
        latencies.append(time.perf_counter() - t0)
        time.sleep(random.uniform(0, 0.05))
    return {
        "max_age_s": sdk.configure().max_age_s,
        "probes": probes,
        "p50_s": _load.percentile(latencies, 50),
        "p99_s": _load.percentile(latencies, 99),
        "max_s": max(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--sematic-points", type=int, default=300)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--short-age", type=float, default=0.05)
    args = parser.parse_args()
    out: dict[str, Any] = {"per_call": per_call(args.port, args.calls, args.batch, args.sematic_points)}
    out["live"] = [live(args.port, args.probes, None), live(args.port, args.probes, args.short_age)]
    sdk.shutdown(10)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
