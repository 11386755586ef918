"""Pipeline statistics latency over HTTP with 1M runs across 1,000 pipelines.

Loads root runs through the raw path (``Store.insert_arrow``) into its own
temporary data directory, starts the app under uvicorn in a thread of this
process (the embedded engine allows one per process), and prints p50 / p95
latency of ``GET /api/v1/pipelines`` and of one pipeline's figures
(``GET /api/v1/pipelines/{function_path}/metrics``), target 100 ms or less each,
plus the pipeline panel and a system metric for reference.

The runs are spread over the last 365 days (one partition a month). Runs of
the last 7 days also get an earlier SCHEDULED version, inserted after their
final version (older updates arriving late), so deduplication has work to do.
Latency is measured in three states of the table:

- as loaded: right after the bulk load, every month still in several parts;
- steady: once background merges left one part a month (a month whose parts
  are all a minute old is merged), plus fresh updates (a newer version of
  1,000 recent runs) in the newest month, as on a running server;
- merged: after ``OPTIMIZE TABLE run_versions FINAL``.

    .venv/bin/python benchmarks/bench_pipelines.py           # 1M runs, 1,000 pipelines
    .venv/bin/python benchmarks/bench_pipelines.py --quick   # 100k runs
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _server
import httpx
import numpy as np
import pyarrow as pa

from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.store import Store

US = 1_000_000
DAY_US = 86_400 * US
STATES = ("CREATED", "SCHEDULED", "RAN", "RETRYING", "RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED")
CODE = {state: i for i, state in enumerate(STATES)}
TS = pa.timestamp("us", tz="UTC")


def pipeline_paths(count: int) -> list[str]:
    return [f"team{i % 23}.project{i % 97}.pipelines.pipeline_{i:04d}" for i in range(count)]


def runs_table(n: int, paths: list[str], now_us: int, seed: int) -> pa.Table:
    """n root runs of random pipelines, created over 365 days, oldest first."""
    rng = np.random.default_rng(seed)
    ids = np.char.mod("%016x", rng.integers(0, 2**63 - 1, n, dtype=np.int64))
    ids = np.char.add(ids, np.char.mod("%016x", rng.integers(0, 2**63 - 1, n, dtype=np.int64)))
    path = np.array(paths, dtype=object)[rng.integers(0, len(paths), n)]
    created = np.sort(now_us - rng.integers(0, 365 * DAY_US, n))
    started = created + rng.integers(US, 60 * US, n)
    end = started + rng.integers(10 * US, 3 * 3600 * US, n)
    finals = [CODE[s] for s in ("RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED")]
    state = rng.choice(finals, n, p=[0.8, 0.1, 0.05, 0.05]).astype(np.int8)
    recent = created > now_us - DAY_US  # some of the last day's runs are still running
    running = recent & (rng.random(n) < 0.3)
    state[running] = rng.choice([CODE["SCHEDULED"], CODE["RAN"]], int(running.sum()))
    resolved = state == CODE["RESOLVED"]
    failed = (state == CODE["FAILED"]) | (state == CODE["NESTED_FAILED"])
    ended = resolved | failed | (state == CODE["CANCELED"])
    cloned = rng.random(n) < 0.05
    original = np.where(cloned, np.roll(ids, 1), None)

    def ts(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
        mask = None if present is None else ~present
        return pa.array(values, pa.int64(), mask=mask).cast(TS)

    ids_array = pa.array(ids, pa.string())
    return pa.table(
        {
            "id": ids_array,
            "root_id": ids_array,
            "parent_id": pa.nulls(n, pa.string()),
            "function_path": pa.array(path, pa.string()),
            "name": pa.array([p.rsplit(".", 1)[-1] for p in path], pa.string()),
            "future_state": pa.array(state, pa.int8()),
            "original_run_id": pa.array(original, pa.string()),
            "created_at": ts(created),
            "started_at": ts(started),
            "resolved_at": ts(end, resolved),
            "failed_at": ts(end, failed),
            "ended_at": ts(end, ended),
            "updated_at": ts(np.where(ended, end, started)),
        }
    )


def earlier_versions(table: pa.Table, now_us: int, days: int) -> pa.Table:
    """A SCHEDULED version, older than the stored one, of every run of the last ``days`` days."""
    created = table["created_at"].cast(pa.int64()).to_numpy()
    recent = table.filter(pa.array(created > now_us - days * DAY_US))
    n = recent.num_rows
    return (
        recent.set_column(
            recent.schema.get_field_index("future_state"), "future_state", pa.array(np.full(n, 1, np.int8))
        )
        .set_column(recent.schema.get_field_index("updated_at"), "updated_at", recent["created_at"])
        .drop_columns(["resolved_at", "failed_at", "ended_at"])
    )


def load(store: Store, table: pa.Table, now_us: int) -> dict[str, float]:
    late = earlier_versions(table, now_us, days=7)
    t0 = time.perf_counter()
    chunk = 100_000
    for start in range(0, table.num_rows, chunk):
        store.insert_arrow("run_versions", table.slice(start, chunk))
    store.insert_arrow("run_versions", late)
    seconds = time.perf_counter() - t0
    return {"rows": table.num_rows + late.num_rows, "late_versions": late.num_rows, "seconds": seconds}


def newer_versions(table: pa.Table, count: int) -> pa.Table:
    """The newest ``count`` runs again, canceled a minute after their last update."""
    recent = table.slice(max(0, table.num_rows - count))
    updated = pa.array(recent["updated_at"].cast(pa.int64()).to_numpy() + 60 * US, pa.int64()).cast(TS)
    state = pa.array(np.full(recent.num_rows, CODE["CANCELED"], np.int8))
    return recent.set_column(recent.schema.get_field_index("future_state"), "future_state", state).set_column(
        recent.schema.get_field_index("updated_at"), "updated_at", updated
    )


def settle(store: Store, timeout_s: float = 240) -> float:
    """Wait until every month of runs is one part: background merges, and the
    forced merge of partitions whose parts are all a minute old, have run."""
    sql = (
        "SELECT count(), uniqExact(partition_id) FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'run_versions' AND active"
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        count, partitions = store.query(sql)[0]
        if count == partitions:
            break
        time.sleep(1)
    return time.monotonic() - t0


def parts(store: Store) -> int:
    sql = (
        "SELECT count() FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'run_versions' AND active"
    )
    return int(store.query(sql)[0][0])


def timed(client: httpx.Client, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return times


def post_batches(client: httpx.Client, paths: list[str], batches: int, size: int, seed: int) -> list[float]:
    """POST /api/v1/runs of new runs (validation, identity check against the stored runs, insert)."""
    rng = random.Random(seed)
    now = time.time()
    times = []
    for b in range(batches):
        runs = [
            {
                "id": f"bench-{seed}-{b}-{i}",
                "root_id": f"bench-{seed}-{b}-{i}",
                "function_path": rng.choice(paths),
                "future_state": "RESOLVED",
                "created_at": now - 120,
                "started_at": now - 100,
                "resolved_at": now - 10,
                "ended_at": now - 10,
                "updated_at": now - 10,
            }
            for i in range(size)
        ]
        t0 = time.perf_counter()
        response = client.post("/api/v1/runs", json={"runs": runs})
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return times


def line(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"  {label:<44} p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   "
        f"min {ordered[0]:6.1f}   n={len(ordered)}"
    )


def measure(client: httpx.Client, store: Store, paths: list[str], requests: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    some = [rng.choice(paths) for _ in range(requests)]
    month_ago = int(time.time()) - 30 * 86_400
    run_ids = [
        str(r[0]) for r in store.query("SELECT any(id) FROM runs WHERE is_root GROUP BY function_path")
    ]
    few = max(5, requests // 5)
    endpoints = {
        "GET /api/v1/pipelines": ["/api/v1/pipelines"] * requests,
        "GET /api/v1/pipelines/{fp}/metrics": [f"/api/v1/pipelines/{p}/metrics" for p in some],
        "GET /api/v1/pipelines/{fp}/metrics (30 days)": [
            f"/api/v1/pipelines/{p}/metrics?from_time={month_ago}" for p in some
        ],
        "GET /api/v1/runs/{id}/metrics (panel)": [
            f"/api/v1/runs/{rng.choice(run_ids)}/metrics" for _ in range(few)
        ],
        "GET /api/v1/metrics/sematic.func_success_rate": [
            "/api/v1/metrics/sematic.func_success_rate?rollup=86400&group_by=root_function_path"
            f'&labels={{"root_function_path":"{p}"}}'
            for p in some[:few]
        ],
    }
    for urls in endpoints.values():  # warm up
        timed(client, urls[:3])
    return [line(label, timed(client, urls)) for label, urls in endpoints.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100k runs instead of 1M")
    parser.add_argument("--runs", type=int, default=None, help="root runs to load (default 1,000,000)")
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=60, help="requests per endpoint and phase")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    runs = args.runs or (100_000 if args.quick else 1_000_000)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    paths = pipeline_paths(args.pipelines)
    now_us = int(time.time()) * US
    table = runs_table(runs, paths, now_us, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-pipelines-") as tmp:
        settings = Settings(data_dir=Path(tmp), database="bench")
        with Store(settings) as store:
            migrate(store)
            loaded = load(store, table, now_us)
            print(f"command: {command}")
            print(
                f"loaded {runs:,} root runs across {args.pipelines:,} pipelines "
                f"+ {loaded['late_versions']:,} late older versions = {loaded['rows']:,} rows "
                f"in {loaded['seconds']:.1f} s "
                f"({loaded['rows'] / loaded['seconds']:,.0f} rows/s, raw insert_arrow)"
            )
            with (
                _server.LiveServer(settings) as server,
                httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
            ):

                def phase(title: str, seed: int) -> None:
                    print(f"{title} ({parts(store)} active parts of run_versions):", flush=True)
                    for text in measure(client, store, paths, args.requests, seed):
                        print(text, flush=True)

                phase("as loaded", args.seed)
                waited = settle(store)
                store.insert_arrow("run_versions", newer_versions(table, 1000))
                phase(
                    f"steady: one part a month after {waited:.0f} s, then 1,000 fresh updates",
                    args.seed + 1,
                )
                store.command("OPTIMIZE TABLE run_versions FINAL")
                phase("merged: after OPTIMIZE TABLE run_versions FINAL", args.seed + 2)
                print(
                    line(
                        "POST /api/v1/runs (1,000 new runs)", post_batches(client, paths, 10, 1000, args.seed)
                    )
                )
        load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load_avg} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
