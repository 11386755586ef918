"""Rate of ``import-sematic`` on a generated Sematic 0.41 SQLite database.

Builds the database with Sematic's own schema (sematic/db/schema.sql.sqlite
from .venv-sematic, see scripts/install_sematic.sh) and fills it the way
Sematic's server does: one metric_labels row per (metric, run) with the
labels Sematic's ``log_metric`` sets, metric_values rows one second apart,
plus Sematic's ``sematic.run_count`` system points (skipped by the import).
Then imports it, over HTTP into ``sematic-metrics serve`` in a subprocess and
with ``--direct`` into a fresh data directory, and prints rows/s beside the
target.

Run: ``.venv/bin/python benchmarks/bench_import.py`` (``--points 100000`` for a
short run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _server

from sematic_metrics.service._import_sinks import DirectSink, HttpSink, Sink
from sematic_metrics.service._sematic_db import open_source
from sematic_metrics.service.config import Settings
from sematic_metrics.service.importer import Progress, import_sematic

ROOT = Path(__file__).resolve().parent.parent
TARGET_ROWS_S = 100_000
T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
NESTED = ("bench.train", "bench.evaluate", "bench.export")
POINTS_PER_SERIES = 200
INSERT_RUN = (
    "INSERT INTO runs (id, root_id, parent_id, function_path, future_state, created_at, updated_at, "
    "started_at, resolved_at, ended_at, tags, source_code) "
    "VALUES (?, ?, ?, ?, 'RESOLVED', ?, ?, ?, ?, ?, '[]', '')"
)


def sematic_schema() -> str:
    found = sorted((ROOT / ".venv-sematic").glob("lib/python3*/site-packages/sematic/db/schema.sql.sqlite"))
    if not found:
        sys.exit("bench_import: Sematic 0.41 is not installed; run scripts/install_sematic.sh")
    return found[0].read_text()


def _time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{round(seconds % 1 * 1e6):06d}"


def generate(path: Path, points: int) -> dict[str, int]:
    """A Sematic database with at least ``points`` user metric values."""
    series = -(-points // POINTS_PER_SERIES)
    runs_needed = -(-series // (2 * len(NESTED)))  # two metrics per nested run
    counts = {"runs": 0, "values": 0, "system": 0}
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(sematic_schema())
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        for r in range(runs_needed):
            root = f"r{r:031x}"
            start = T0 + r * 2 * POINTS_PER_SERIES
            runs: list[tuple[str, str, str | None, str, float, float]] = [
                (root, root, None, "bench.pipeline", start, start + 2 * POINTS_PER_SERIES)
            ]
            runs += [
                (f"n{r:027x}{k:04x}", root, root, path_, start, start + POINTS_PER_SERIES)
                for k, path_ in enumerate(NESTED, 1)
            ]
            db.executemany(
                INSERT_RUN,
                [
                    (i, rt, p, fp, _time(s), _time(s), _time(s), _time(e), _time(e))
                    for i, rt, p, fp, s, e in runs
                ],
            )
            counts["runs"] += len(runs)
            system_id = f"sys-{r % 7}"
            db.execute(
                "INSERT OR IGNORE INTO metric_labels (metric_id, metric_name, metric_labels, metric_type) "
                "VALUES (?, 'sematic.run_count', ?, 0)",
                (system_id, json.dumps({"function_path": "bench.pipeline", "user_id": None, "n": r % 7})),
            )
            values = [(system_id, 1.0, _time(start), _time(start))]
            for run_id, _, _, fpath, s, _ in runs[1:]:
                for name in ("loss", "accuracy"):
                    labels = {
                        "__scope__": "0",
                        "run_id": run_id,
                        "function_path": fpath,
                        "root_id": root,
                        "root_function_path": "bench.pipeline",
                    }
                    metric_id = f"{name}-{run_id}"
                    db.execute(
                        "INSERT INTO metric_labels (metric_id, metric_name, metric_labels, metric_type) "
                        "VALUES (?, ?, ?, 1)",
                        (metric_id, name, json.dumps(labels)),
                    )
                    values += [
                        (metric_id, 1.0 / (i + 1), _time(s + i + 0.25), _time(s + i + 0.5))
                        for i in range(POINTS_PER_SERIES)
                    ]
            db.executemany(
                "INSERT INTO metric_values (metric_id, value, metric_time, created_at) VALUES (?,?,?,?)",
                values,
            )
            counts["values"] += len(values) - 1
            counts["system"] += 1
        db.commit()
    return counts


def timed(db: Path, sink: Sink) -> tuple[float, int]:
    source = open_source(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        summary = import_sematic(source, sink, include_open=True, progress=Progress(sys.stderr))
        elapsed = time.perf_counter() - start
    finally:
        source.close()
        sink.close()
    rows = summary.points.read + summary.runs.read
    print("\n".join("    " + line for line in summary.lines()))
    return elapsed, rows


def read_only(db: Path) -> tuple[float, int]:
    """The floor: reading every point through the importer's SQLite reader, sending nothing."""
    source = open_source(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        rows = sum(len(page) for page in source.points(20_000, 1e10))
        return time.perf_counter() - start, rows
    finally:
        source.close()


@contextlib.contextmanager
def server(data_dir: Path) -> Iterator[int]:
    with _server.ours(data_dir, data_dir.parent / "server.log") as port:
        yield port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="user metric values to generate")
    parser.add_argument("--mode", choices=("http", "direct", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        db = Path(tmp) / "db.sqlite3"
        t = time.perf_counter()
        counts = generate(db, args.points)
        print(
            f"generated {counts['values']:,} metric values (+{counts['system']:,} system) and "
            f"{counts['runs']:,} runs in {time.perf_counter() - t:.1f}s ({db.stat().st_size / 1e6:.0f} MB)"
        )
        results = {"read only": read_only(db)}
        if args.mode in ("http", "both"):
            with server(Path(tmp) / "http-data") as port:
                results["http"] = timed(db, HttpSink(f"http://127.0.0.1:{port}"))
        if args.mode in ("direct", "both"):
            results["direct"] = timed(db, DirectSink(Settings(data_dir=Path(tmp) / "direct-data")))
        floor = results["read only"][1] / results["read only"][0]
        for mode, (elapsed, rows) in results.items():
            rate = rows / elapsed
            verdict = "ok" if rate >= TARGET_ROWS_S else "below target"
            print(
                f"import-sematic {mode:>9}: {rows:,} rows in {elapsed:.1f}s = {rate:,.0f} rows/s, "
                f"{rate / floor:.2f}x the read-only rate (target >= {TARGET_ROWS_S:,} rows/s: {verdict})"
            )


if __name__ == "__main__":
    main()
