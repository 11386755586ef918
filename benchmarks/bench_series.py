"""Series engine figures (issue 13), printed beside their targets.

The data goes in through the raw path (``insert_arrow`` in an engine child
process, so the tiers fill as at ingest), then ``sematic-metrics serve`` is
started on that data directory and the series are read over HTTP.

    .venv/bin/python benchmarks/bench_series.py              # full scale: a 100M-point table
    .venv/bin/python benchmarks/bench_series.py --scale 0.05 # 5M points, same shape

``--scale`` multiplies every point count (the shape stays: a big run, a
small run, background runs, 100 overlaid runs). Figures at a reduced scale
say so; the targets are for full scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import _data
import _engine
import _load
import _results
import _server

DATABASE = "sematic_metrics"
BIG, SMALL, TINY, OTHERS, OVERLAY, STORAGE = 5101, 5102, 5103, 5104, 5105, 5106
CASES = {"big": BIG, "small": SMALL, "tiny": TINY}
NO_CACHE = _server.COMPUTED


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def p50(port: int, path: str, reps: int) -> tuple[float, bytes]:
    times: list[float] = []
    body = b""
    for i in range(reps + 2):
        status, body, seconds = _load.get(port, path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
        if i >= 2:  # two warm-up reads
            times.append(seconds)
    return statistics.median(times), body


def series_path(run_id: str | None = None, **params: str) -> str:
    query = {"name": _data.METRIC, **params}
    if run_id:
        query["labels"] = json.dumps({"run_id": run_id})
    return "/api/v1/series?" + urllib.parse.urlencode(query)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main_table(workdir: Path, scale: float, reps: int) -> dict[str, Any]:
    data_dir = workdir / "series" / "data"
    big, small, tiny = int(10_000_000 * scale), int(100_000 * scale), 10_000
    others, other_steps = 89, int(1_000_000 * scale)
    out: dict[str, Any] = {"big": big, "small": small}
    with _engine.Engine(data_dir) as engine:
        for seed, runs, steps in (
            (OTHERS, others, other_steps),
            (BIG, 1, big),
            (SMALL, 1, small),
            (TINY, 1, tiny),
        ):
            engine.call("load", database=DATABASE, runs=runs, steps=steps, seed=seed, label=f"seed {seed}")
        out["table_points"] = int(engine.call("count", database=DATABASE)["rows"])
    log(f"  {out['table_points']:,} points loaded; serving...")
    ids = {seed: _data.run_ids(0, seed)[0] for seed in (BIG, SMALL, TINY)}
    # Answers kept by the series cache: every repeated read after the first.
    kept = _server.ServerProcess(data_dir, log_path=workdir / "series" / "kept.log")
    with kept:
        for case in ("big", "small", "tiny"):
            out[f"{case}_kept_p50"], _ = p50(kept.port, series_path(ids[CASES[case]], buckets="1000"), reps)
        big_labels = urllib.parse.quote(json.dumps({"run_id": ids[BIG]}))
        out["sematic_kept_p50"], _ = p50(
            kept.port, f"/api/v1/metrics/{_data.METRIC}?labels={big_labels}&rollup=auto", reps
        )
        kept.stop()
    # Every read computed: the series cache off (what the first read after a write costs).
    server = _server.ServerProcess(data_dir, env=NO_CACHE, log_path=workdir / "series" / "server.log")
    with server:
        out["big_p50"], body = p50(server.port, series_path(ids[BIG], buckets="1000"), reps)
        out["big_buckets"] = len(json.loads(body)["content"]["series"][0]["x"])
        out["small_p50"], _ = p50(server.port, series_path(ids[SMALL], buckets="1000"), reps)
        out["tiny_p50"], _ = p50(server.port, series_path(ids[TINY], buckets="1000"), reps)
        labels = urllib.parse.quote(json.dumps({"run_id": ids[BIG]}))
        out["sematic_p50"], _ = p50(
            server.port, f"/api/v1/metrics/{_data.METRIC}?labels={labels}&rollup=auto", reps
        )
        tiny_labels = urllib.parse.quote(json.dumps({"run_id": ids[TINY]}))
        out["sematic_tiny_p50"], _ = p50(
            server.port, f"/api/v1/metrics/{_data.METRIC}?labels={tiny_labels}&rollup=auto", reps
        )
        assert server.proc is not None
        pid = server.proc.pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before = rss_kib(pid, "VmRSS")
        t0 = time.perf_counter()
        path = series_path(ids[BIG], format="csv").replace("/api/v1/series?", "/api/v1/series/points?")
        status, body, _ = _load.get(server.port, path, timeout_s=3600)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
        out["export_seconds"] = time.perf_counter() - t0
        out["export_rows"] = body.count(b"\n") - 1
        out["export_growth_mib"] = (rss_kib(pid, "VmHWM") - before) / 1024
        server.stop()
    return out


def overlay(workdir: Path, scale: float, reps: int) -> dict[str, Any]:
    data_dir = workdir / "overlay" / "data"
    steps = int(100_000 * scale)
    with _engine.Engine(data_dir) as engine:
        engine.call("load", database=DATABASE, runs=100, steps=steps, seed=OVERLAY, label="overlay")
    path = series_path(None, group_by="run_id", x="step", buckets="1000")
    kept = _server.ServerProcess(data_dir, log_path=workdir / "overlay" / "kept.log")
    with kept:
        kept_seconds, _ = p50(kept.port, path, reps)
        kept.stop()
    server = _server.ServerProcess(data_dir, env=NO_CACHE, log_path=workdir / "overlay" / "server.log")
    with server:
        seconds, body = p50(server.port, path, reps)
        server.stop()
    return {
        "p50": seconds,
        "kept_p50": kept_seconds,
        "series": len(json.loads(body)["content"]["series"]),
        "steps": steps,
    }


def storage_and_ingest(workdir: Path, rounds: int) -> dict[str, Any]:
    """Bytes per point (points + tiers, reference data) and raw insert rates with
    and without the tier views, rounds interleaved."""
    with _engine.Engine(workdir / "ingest" / "data") as engine:
        engine.call("insert", database="storage", runs=100, steps=10_000, seed=STORAGE)
        points = engine.call("storage", database="storage")
        engine.call("query", database="storage", sql="OPTIMIZE TABLE metric_tiers FINAL")
        tiers = engine.call(
            "query",
            database="storage",
            sql="SELECT sum(bytes_on_disk), sum(rows) FROM system.parts "
            "WHERE database = currentDatabase() AND table = 'metric_tiers' AND active",
        )[0]
        rates: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(rounds):
            for kind in ("without", "with"):
                alter = ("DROP VIEW metric_tiers_mv",) if kind == "without" else ()
                result = engine.call(
                    "insert", database=f"ingest_{kind}_{i}", runs=100, steps=10_000, seed=STORAGE + 1 + i,
                    batch=100_000, alter=alter,
                )  # fmt: skip
                rates[kind].append(result["rate"])
    ratio = statistics.median(w / wo for w, wo in zip(rates["with"], rates["without"], strict=True))
    return {
        "points_bytes": points["bytes_on_disk"],
        "tier_bytes": int(tiers[0]),
        "tier_rows": int(tiers[1]),
        "rows": points["rows"],
        "ingest_ratio": ratio,
        "rates": rates,
    }


def row(case: str, figure: str, target: str, met: bool | None) -> str:
    mark = "" if met is None else ("yes" if met else "**no**")
    return f"| {case} | {figure} | {target} | {mark} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every point count (default 1)")
    parser.add_argument("--reps", type=int, default=20, help="reads per case (after two warm-ups)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved ingest rounds")
    parser.add_argument(
        "--write", action="store_true", help=f"also write the table to benchmarks/{_results.SERIES_FILE}"
    )
    args = parser.parse_args()
    full = args.scale >= 1.0
    with tempfile.TemporaryDirectory(prefix="bench-series-") as tmp:
        workdir = Path(tmp)
        log("storage and ingest...")
        store = storage_and_ingest(workdir, args.rounds)
        log(f"  {store}")
        log("main table...")
        main_ = main_table(workdir, args.scale, args.reps)
        log(f"  {main_}")
        log("overlay...")
        over = overlay(workdir, args.scale, args.reps)
    ms = 1000.0
    per_point = (store["points_bytes"] + store["tier_bytes"]) / store["rows"]
    big_ratio = main_["big_p50"] / main_["small_p50"]
    lines = [
        f"command: {' '.join(sys.argv)}",
        f"scale {args.scale:g}: big run {main_['big']:,} points, small run {main_['small']:,}, table "
        f"{main_['table_points']:,} points; overlay 100 runs x {over['steps']:,}; load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        + ("" if full else " (REDUCED SCALE: the targets are for full scale)"),
        "",
        "| case | figure | target | met |",
        "|---|---:|---|:-:|",
        row(
            f"one run of {main_['big']:,} points in a {main_['table_points']:,}-point table, buckets=1000, "
            f"HTTP p50 ({main_['big_buckets']} buckets)",
            f"{main_['big_p50'] * ms:.1f} ms ({big_ratio:.2f}x the {main_['small']:,}-point run: "
            f"{main_['small_p50'] * ms:.1f} ms)",
            "<= 30 ms and <= 2x",
            main_["big_p50"] <= 0.030 and big_ratio <= 2 if full else None,
        ),
        row(
            f"same, a repeated read (answer kept by the series cache; {main_['small']:,}-point run: "
            f"{main_['small_kept_p50'] * ms:.1f} ms)",
            f"{main_['big_kept_p50'] * ms:.1f} ms",
            "<= 30 ms",
            main_["big_kept_p50"] <= 0.030 if full else None,
        ),
        row(
            "a 10k-point run, HTTP p50",
            f"{main_['tiny_p50'] * ms:.1f} ms",
            "<= 5 ms",
            main_["tiny_p50"] <= 0.005,
        ),
        row(
            "same, a repeated read (answer kept by the series cache)",
            f"{main_['tiny_kept_p50'] * ms:.1f} ms",
            "<= 5 ms",
            main_["tiny_kept_p50"] <= 0.005,
        ),
        row(
            f"100 runs x {over['steps']:,} points overlaid (group_by=run_id, x=step), p50",
            f"{over['p50'] * ms:.1f} ms ({over['series']} series)",
            "<= 100 ms",
            over["p50"] <= 0.100 if full else None,
        ),
        row(
            "same, a repeated read (answer kept by the series cache)",
            f"{over['kept_p50'] * ms:.1f} ms",
            "<= 100 ms",
            over["kept_p50"] <= 0.100 if full else None,
        ),
        row(
            f"Sematic endpoint, {main_['big']:,}-point run, rollup=auto, p50",
            f"{main_['sematic_p50'] * ms:.1f} ms",
            "<= 50 ms",
            main_["sematic_p50"] <= 0.050 if full else None,
        ),
        row(
            "same, a repeated read (answer kept by the series cache)",
            f"{main_['sematic_kept_p50'] * ms:.1f} ms",
            "<= 50 ms",
            main_["sematic_kept_p50"] <= 0.050 if full else None,
        ),
        row(
            "Sematic endpoint, 10k-point run, rollup=auto, p50",
            f"{main_['sematic_tiny_p50'] * ms:.1f} ms",
            "<= 35 ms (Sematic 0.41 on SQLite)",
            main_["sematic_tiny_p50"] <= 0.035,
        ),
        row(
            f"bytes per point on disk, points + tiers, reference data ({store['rows']:,} points, "
            f"{store['tier_rows']:,} tier rows)",
            f"{per_point:.2f} (points {store['points_bytes'] / store['rows']:.2f}, tiers "
            f"{store['tier_bytes'] / store['rows']:.2f})",
            "<= 4.5",
            per_point <= 4.5,
        ),
        row(
            "ingest rate with tiers / without (raw insert_arrow, 100k-point inserts, median of rounds)",
            f"{store['ingest_ratio']:.2f}x",
            ">= 0.9x",
            store["ingest_ratio"] >= 0.9,
        ),
        row(
            f"export of the {main_['big']:,}-point run (CSV, {main_['export_rows']:,} rows in "
            f"{main_['export_seconds']:.1f} s), service peak memory growth",
            f"{main_['export_growth_mib']:.0f} MiB",
            "< 100 MiB",
            main_["export_growth_mib"] < 100,
        ),
    ]
    print("\n".join(lines))
    if args.write:
        text = "## 7. Series engine (bench_series.py)\n\n" + "\n".join(lines) + "\n"
        (Path(__file__).parent / _results.SERIES_FILE).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
