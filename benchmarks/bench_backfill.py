"""Tier backfill of a database whose points predate the rollup tiers (issue 13:
"give the time for 100M points").

Creates a database with the schema minus the tiers, loads ``--points`` points
(``--runs`` runs of one metric, one point per second and step, spread over
months so several partitions are pending), then runs ``migrate`` with the full
schema (which records the pending partitions) and times ``_tiers.backfill``.
The time for 100M points is that rate extrapolated: the backfill reads one
partition at a time, so its cost grows with the points.

    .venv/bin/python benchmarks/bench_backfill.py                 # 10M points
    .venv/bin/python benchmarks/bench_backfill.py --points 100000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _data

from sematic_metrics.service import _tiers
from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.points_body import SCHEMA
from sematic_metrics.service.sqlfiles import schema_dir
from sematic_metrics.service.store import Store

TIER_FILES = ("tables/005_metric_tiers.sql", "definitions/020_metric_tiers_mv.sql")
CHUNK = 2_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    steps = args.points // args.runs
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        old = Path(tmp) / "schema"
        shutil.copytree(schema_dir(), old)
        for path in TIER_FILES:
            (old / path).unlink()
        settings = Settings(data_dir=Path(tmp) / "data", read_pool_size=1)
        with Store(settings) as store:
            migrate(store, old)
            loaded, t0 = 0, time.perf_counter()
            for i in range(args.runs):
                # Runs a month apart: one metric_points partition each.
                for start in range(0, steps, CHUNK):
                    run = _data.make_run(
                        i, min(CHUNK, steps - start), 7, start_step=start, start_offset_s=i * 31 * 86400.0
                    )
                    loaded += store.insert_arrow("metric_points", _data.arrow_table([run], SCHEMA))
            print(f"loaded {loaded:,} points in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            migrate(store)
            pending = len(store.rows("SELECT partition FROM tier_backfills"))
            t0 = time.perf_counter()
            points = _tiers.backfill(store)
            seconds = time.perf_counter() - t0
    rate = points / seconds
    print(f"command: {' '.join(sys.argv)}; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"backfill of {points:,} points in {pending} partitions: {seconds:.1f} s ({rate:,.0f} points/s)")
    print(f"100M points at that rate: {100_000_000 / rate / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
