"""In-process engine work in a child process (chDB runs one engine per process).

``Engine`` starts ``python benchmarks/_engine.py --data-dir D`` and talks to it
with one JSON object per line on stdin/stdout, so raw inserts can be timed in
rounds interleaved with HTTP measurements, under the same machine load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _data

from sematic_metrics.service.config import Settings
from sematic_metrics.service.migrate import migrate
from sematic_metrics.service.points_body import SCHEMA
from sematic_metrics.service.store import Store


class _Child:
    """The child side: one engine on one data directory, a store per database."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.stores: dict[str, Store] = {}

    def store(self, database: str) -> Store:
        if database not in self.stores:
            store = Store(Settings(data_dir=self.data_dir, database=database, read_pool_size=1)).open()
            migrate(store)
            self.stores[database] = store
        return self.stores[database]

    def op_insert(
        self,
        database: str,
        runs: int,
        steps: int,
        seed: int,
        batch: int = 0,
        alter: tuple[str, ...] = (),
        **kw: Any,
    ) -> Any:
        """Time insert_arrow of prepared rows (building the Arrow table is not timed);
        ``alter`` statements change the schema of a new database first (experiments)."""
        table = _data.arrow_table(list(_data.runs(runs, steps, seed, **kw)), SCHEMA)
        store = self.store(database)
        for statement in alter:
            store.command(statement)
        size = batch or table.num_rows
        t0 = time.perf_counter()
        written = sum(
            store.insert_arrow("metric_points", table.slice(i, size)) for i in range(0, table.num_rows, size)
        )
        seconds = time.perf_counter() - t0
        return {"points": written, "seconds": seconds, "rate": written / seconds}

    def op_load(
        self, database: str, runs: int, steps: int, seed: int, chunk: int = 2_000_000, label: str = ""
    ) -> Any:
        """Load ``runs`` x ``steps`` points through insert_arrow, about ``chunk`` rows per insert."""
        store = self.store(database)
        total = runs * steps
        t0 = last = time.perf_counter()
        written = 0
        pending: list[_data.Run] = []

        def flush() -> int:
            rows = store.insert_arrow("metric_points", _data.arrow_table(pending, SCHEMA))
            pending.clear()
            return rows

        for i in range(runs):
            for start in range(0, steps, chunk):
                pending.append(_data.make_run(i, min(chunk, steps - start), seed, start_step=start))
                if sum(len(r) for r in pending) >= chunk:
                    written += flush()
                    if time.perf_counter() - last > 5:
                        last = time.perf_counter()
                        progress(label, written, total, t0)
        if pending:
            written += flush()
        progress(label, written, total, t0)
        return {"points": written, "seconds": time.perf_counter() - t0}

    def op_drop(self, database: str) -> Any:
        self.store(database).command("DROP TABLE IF EXISTS metric_points SYNC")
        return {}

    def op_storage(self, database: str) -> Any:
        return storage(self.store(database))

    def op_count(self, database: str) -> Any:
        rows = self.store(database).query("SELECT count(), uniqExact(run_id) FROM metric_points")
        return {"rows": int(rows[0][0]), "runs": int(rows[0][1])}

    def op_query(self, database: str, sql: str, params: dict[str, Any] | None = None) -> Any:
        return [list(r) for r in self.store(database).query(sql, params)]

    def op_timed(self, database: str, sql: str, params: dict[str, Any], reps: int) -> Any:
        """Median seconds of ``reps`` runs of one query (after one warm-up run)."""
        store = self.store(database)
        rows = store.query(sql, params)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            store.query(sql, params)
            times.append(time.perf_counter() - t0)
        return {"p50_s": statistics.median(times), "rows": len(rows)}

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def progress(label: str, done: int, total: int, t0: float) -> None:
    elapsed = time.perf_counter() - t0
    rate = done / elapsed if elapsed else 0
    print(
        f"    {label} loaded {done:,}/{total:,} points in {elapsed:.0f} s ({rate:,.0f}/s)",
        file=sys.stderr,
        flush=True,
    )


def storage(store: Store) -> dict[str, Any]:
    """Bytes on disk of the active parts, after merging them into one."""
    store.command("OPTIMIZE TABLE metric_points FINAL")
    parts = store.query(
        "SELECT sum(rows), sum(bytes_on_disk), count(), groupUniqArray(part_type) FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'metric_points' AND active"
    )
    rows, on_disk, count = (int(x) for x in parts[0][:3])
    # Compact parts (small tables) keep all columns in one file: per-column sizes then read 0.
    columns = store.query(
        "SELECT column, sum(column_data_compressed_bytes), sum(column_data_uncompressed_bytes) "
        "FROM system.parts_columns "
        "WHERE database = currentDatabase() AND table = 'metric_points' AND active "
        "GROUP BY column ORDER BY min(column_position)"
    )
    return {
        "rows": rows,
        "parts": count,
        "part_types": list(parts[0][3]),
        "bytes_on_disk": on_disk,
        "bytes_per_point": on_disk / rows if rows else float("nan"),
        "columns": [
            {
                "name": str(name),
                "compressed": int(comp),
                "uncompressed": int(unc),
                "bytes_per_point": int(comp) / rows if rows else float("nan"),
            }
            for name, comp, unc in columns
        ],
    }


def child_main(data_dir: Path) -> int:
    child = _Child(data_dir)
    out = sys.stdout
    sys.stdout = sys.stderr  # keep stray prints off the protocol channel
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request.pop("op")
            if op == "quit":
                break
            try:
                answer = {"ok": getattr(child, f"op_{op}")(**request)}
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer, default=str) + "\n")
            out.flush()
    finally:
        child.close()
    return 0


class Engine:
    """The parent side: a child process owning one engine on ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--data-dir", str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"engine child exited ({self.proc.wait()}) during {op}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"engine child failed in {op}: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_rows(data_dir: Path, database: str = "sematic_metrics") -> dict[str, int]:
    """Rows a stopped server left in its data directory."""
    with Engine(data_dir) as engine:
        answer: dict[str, int] = engine.call("count", database=database)
        return answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    sys.exit(child_main(parser.parse_args().data_dir))
