"""Query latency: ``rollup=auto`` of one run's metric, with big neighbours.

The data goes in through the raw path (``insert_arrow`` in an engine child
process, into the server's default database), then a ``sematic-metrics
serve`` process is started on that data directory and the series of each
target run is read over HTTP, as Sematic's dashboard asks for it
(``from_time`` absent, ``labels={"run_id": ...}``, ``rollup=auto``).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import _data
import _engine
import _load
import _server

OTHERS_SEED = 4000
TARGET_SEED = 4001
DATABASE = "sematic_metrics"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The least a scan can do: one pass over the run's points with the width known.
DIRECT = """
SELECT intDiv(toUnixTimestamp64Micro(metric_time), {width_us:Int64}) AS bucket, avgIf(value, isFinite(value))
FROM metric_points
WHERE name = {name:String} AND run_id = {run_id:String}
GROUP BY bucket ORDER BY bucket
"""


def in_process(engine: _engine.Engine, run_id: str, points: int, reps: int) -> dict[str, Any]:
    """The same series in-process: the metric_series view's two passes (extents
    and distinct times, then the buckets), and a bare scan."""
    from sematic_metrics.service.sqlfiles import q

    width_us = -(-points // 300) * 1_000_000  # points are 1 s apart
    params = {
        "name": _data.METRIC, "from_us": 0, "to_us": 2**62, "filter_keys": ["run_id"],
        "filter_values": [run_id], "root": -1, "gauge": True, "by_run_id": False,
        "by_function_path": False, "by_root_id": False, "by_root_function_path": False,
    }  # fmt: skip
    passes = [
        engine.call("timed", database=DATABASE, sql=q(name), params={**params, "width_us": w}, reps=reps)
        for name, w in (("series_extents", 0), ("series", width_us))
    ]
    direct = engine.call(
        "timed",
        database=DATABASE,
        sql=DIRECT,
        params={"name": _data.METRIC, "run_id": run_id, "width_us": width_us},
        reps=reps,
    )
    return {
        "series_pass1_s": passes[0]["p50_s"],
        "series_pass2_s": passes[1]["p50_s"],
        "direct_scan_s": direct["p50_s"],
    }


def measure(
    workdir: Path, other_runs: int, other_steps: int, targets: list[int], reps: int, chunk: int = 2_000_000
) -> dict[str, Any]:
    data_dir = workdir / "query" / "data"
    out: dict[str, Any] = {"other_points": other_runs * other_steps, "targets": {}}
    t0 = time.perf_counter()
    with _engine.Engine(data_dir) as engine:
        log(f"  loading {other_runs:,} other runs x {other_steps:,} points through insert_arrow...")
        out["load_others"] = engine.call(
            "load", database=DATABASE, runs=other_runs, steps=other_steps, seed=OTHERS_SEED, chunk=chunk,
            label="other runs",
        )  # fmt: skip
        for i, points in enumerate(targets):
            log(f"  loading the target run with {points:,} points...")
            out["targets"][points] = {
                "load": engine.call(
                    "load",
                    database=DATABASE,
                    runs=1,
                    steps=points,
                    seed=TARGET_SEED + i,
                    chunk=chunk,
                    label=f"target run {i + 1}",
                ),
                "run_id": _data.run_ids(0, TARGET_SEED + i)[0],
            }
        for points, target in out["targets"].items():
            target["in_process"] = in_process(engine, target["run_id"], points, max(3, reps // 3))
        out["table"] = engine.call(
            "query",
            database=DATABASE,
            sql="SELECT sum(rows), sum(bytes_on_disk), count() FROM system.parts "
            "WHERE database = currentDatabase() AND table = 'metric_points' AND active",
        )[0]
    out["load_seconds"] = time.perf_counter() - t0
    out["total_points"] = int(out["table"][0])
    log(f"  {out['total_points']:,} points loaded in {out['load_seconds']:.0f} s; serving...")
    # Every read computed (the series cache off), then repeated reads with it on.
    for env, prefix in ((_server.COMPUTED, ""), (None, "kept_")):
        with _server.ours(data_dir, workdir / "query" / f"{prefix}server.log", env) as port:
            for points, target in out["targets"].items():
                labels = urllib.parse.quote(json.dumps({"run_id": target["run_id"]}))
                path = f"/api/v1/metrics/{_data.METRIC}?labels={labels}&rollup=auto"
                times: list[float] = []
                series = 0
                for i in range(reps + 2):
                    status, body, seconds = _load.get(port, path)
                    if status != 200:
                        raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
                    series = len(json.loads(body)["content"]["series"])
                    if i >= 2:  # two warm-up reads
                        times.append(seconds)
                target.update(
                    {
                        f"{prefix}p50_s": _load.percentile(times, 50),
                        f"{prefix}p95_s": _load.percentile(times, 95),
                        "reps": reps,
                        "series_points": series,
                    }
                )
                log(
                    f"  run with {points:,} points{', repeated' if prefix else ''}: p50 "
                    f"{target[prefix + 'p50_s'] * 1000:.0f} ms, p95 {target[prefix + 'p95_s'] * 1000:.0f} ms "
                    f"({series} points returned)"
                )
    return out
