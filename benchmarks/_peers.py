"""The same points through ours, the Sematic 0.41 server and an MLflow server.

Every system gets the same runs, posted by the same keep-alive clients:
ours in the compact form and in Sematic's form (10k points a request), the
Sematic server in its own form (10k points a request, its best case: its
client posts one point per call), MLflow through log-batch (1000 metrics a
request, its limit). Then the series of one run is read back repeatedly
(ours and Sematic: ``rollup=auto``; MLflow: metric history) and the storage
is measured: ours after OPTIMIZE FINAL, the peers as the growth of their
SQLite files (database, WAL and journal) after their server stopped.
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

SEED = 3000
MLFLOW_BATCH = 1000
WARMUP_RUN = 99_999


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sqlite_bytes(directory: Path, name: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(name + "*") if p.is_file() and ".bck" not in p.name)


def read_latency(port: int, path: str, reps: int, pages: str | None = None) -> dict[str, Any]:
    """Seconds per read of ``path`` (following ``pages`` tokens when set)."""
    times: list[float] = []
    points = 0
    for i in range(reps + 1):
        t0 = time.perf_counter()
        token = ""
        count = 0
        while True:
            url = path + (f"&page_token={urllib.parse.quote(token)}" if token else "")
            status, body, _ = _load.get(port, url)
            if status != 200:
                raise RuntimeError(f"GET {url[:120]}: HTTP {status} {body[:200]!r}")
            doc = json.loads(body)
            if pages is None:
                count = len(doc["content"]["series"])
                break
            count += len(doc.get("metrics", []))
            token = doc.get(pages, "")
            if not token:
                break
        if i:  # the first read warms caches
            times.append(time.perf_counter() - t0)
        points = count
    return {
        "p50_s": _load.percentile(times, 50),
        "p95_s": _load.percentile(times, 95),
        "reps": reps,
        "points_returned": points,
    }


def ingest_result(result: _load.LoadResult, total: int) -> dict[str, Any]:
    return {
        "points": result.points,
        "of": total,
        "seconds": result.seconds,
        "rate": result.rate,
        "complete": result.exhausted and result.points == total,
        "errors": len(result.errors),
        "first_errors": result.errors[:3],
    }


def series_path(run: _data.Run) -> str:
    """rollup=auto over the run's own extent: with from_time=0 Sematic collapses a run into one bucket."""
    labels = urllib.parse.quote(json.dumps({"run_id": run.run_id}))
    window = f"from_time={int(run.times[0])}&to_time={int(run.times[-1]) + 1}"
    return f"/api/v1/metrics/{_data.METRIC}?labels={labels}&{window}&rollup=auto"


def warm_up(port: int, form: str) -> None:
    warm = _load.post_all(
        port, "/api/v1/metrics", _data.bodies(form, [_data.make_run(WARMUP_RUN, 100)], 100), 1
    )
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.errors[:2]}")


def ours(workdir: Path, items: list[_data.Run], clients: int, reps: int, budget_s: float) -> dict[str, Any]:
    total = sum(len(r) for r in items)
    out: dict[str, Any] = {}
    for form in ("compact", "sematic"):
        data_dir = workdir / f"ours-{form}" / "data"
        data_dir.mkdir(parents=True)
        bodies = _data.bodies(form, items, 10_000)
        # Reads computed (cache off), as the peers compute theirs.
        with _server.ours(data_dir, data_dir.parent / "server.log", _server.COMPUTED) as port:
            warm_up(port, form)
            result = _load.post_all(port, "/api/v1/metrics", bodies, clients, budget_s=budget_s)
            out[f"ingest_{form}"] = ingest_result(result, total)
            if form == "compact":
                out["query"] = read_latency(port, series_path(items[0]), reps)
        log(f"    ours, {form} form: {result.rate:,.0f} points/s")
    with _engine.Engine(workdir / "ours-storage") as engine:
        engine.call("insert", database="peers", runs=len(items), steps=len(items[0]), seed=SEED)
        out["storage"] = engine.call("storage", database="peers")
    return out


def error_causes(paths: list[Path], limit: int = 3) -> list[str]:
    """Distinct exception lines a peer server wrote to its logs."""
    found: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            text = line.strip()
            if ("Error:" in text or "Exception:" in text) and text[:160] not in found:
                found.append(text[:160])
                if len(found) >= limit:
                    return found
    return found


def passes(
    port: int, path: str, make_bodies: Any, items: list[_data.Run], clients: list[int], budget_s: float
) -> dict[str, Any]:
    """One ingest pass per client count, fresh runs each (seed SEED first: the points ours got)."""
    out: dict[str, Any] = {}
    for i, n in enumerate(clients):
        batch = items if i == 0 else list(_data.runs(len(items), len(items[0]), SEED + i))
        bodies = make_bodies(batch)
        total = sum(count for _, count in bodies)
        result = _load.post_all(port, path, bodies, n, budget_s=budget_s)
        out[str(n)] = ingest_result(result, total)
        log(f"    {n} client(s): {result.rate:,.0f} points/s ({result.points:,} of {total:,})")
    return out


def summary(by_clients: dict[str, Any], query: dict[str, Any], size: int, logs: list[Path]) -> dict[str, Any]:
    best = max(by_clients.values(), key=lambda r: r["rate"])
    stored = sum(r["points"] for r in by_clients.values())
    errors = sum(r["errors"] for r in by_clients.values())
    return {
        "ingest": {**best, "clients": next(k for k, v in by_clients.items() if v is best)},
        "ingest_by_clients": by_clients,
        "error_causes": error_causes(logs) if errors else [],
        "query": query,
        "storage": {"bytes": size, "points": stored, "bytes_per_point": size / max(1, stored)},
    }


def sematic(
    workdir: Path, items: list[_data.Run], clients: list[int], reps: int, budget_s: float, root: Path
) -> dict[str, Any]:
    config_dir = workdir / "sematic"
    with _server.sematic(config_dir, workdir / "sematic.log", root) as port:
        warm_up(port, "sematic")
        empty = sqlite_bytes(config_dir, "db.sqlite3")
        by_clients = passes(
            port, "/api/v1/metrics", lambda b: _data.bodies("sematic", b, 10_000), items, clients, budget_s
        )
        query = read_latency(port, series_path(items[0]), reps)
    size = sqlite_bytes(config_dir, "db.sqlite3") - empty
    return summary(by_clients, query, size, [workdir / "sematic.log", *sorted(config_dir.glob("*.log"))])


def mlflow(
    workdir: Path, items: list[_data.Run], clients: list[int], reps: int, budget_s: float, root: Path
) -> dict[str, Any]:
    directory = workdir / "mlflow"
    with _server.mlflow(directory, workdir / "mlflow.log", root) as port:
        empty = sqlite_bytes(directory, "mlflow.db")
        ids: dict[str, str] = {}

        def make_bodies(batch: list[_data.Run]) -> list[tuple[bytes, int]]:
            for run in batch:  # not timed: a run exists before its metrics are logged
                status, doc = _load.call_json(
                    port,
                    "POST",
                    "/api/2.0/mlflow/runs/create",
                    {"experiment_id": "0", "run_name": run.run_id, "start_time": int(run.times[0] * 1000)},
                )
                if status != 200:
                    raise RuntimeError(f"MLflow runs/create: HTTP {status} {doc}")
                ids[run.run_id] = doc["run"]["info"]["run_id"]
            return [
                (_data.mlflow_body(run, ids[run.run_id], a, b), b - a)
                for run in batch
                for a, b in _data.chunks(run, MLFLOW_BATCH)
            ]

        by_clients = passes(port, "/api/2.0/mlflow/runs/log-batch", make_bodies, items, clients, budget_s)
        path = f"/api/2.0/mlflow/metrics/get-history?run_id={ids[items[0].run_id]}&metric_key={_data.METRIC}"
        query = read_latency(port, path, reps, pages="next_page_token")
    size = sqlite_bytes(directory, "mlflow.db") - empty
    return summary(by_clients, query, size, [workdir / "mlflow.log"])


def measure(
    workdir: Path,
    runs: int,
    steps: int,
    clients: int,
    reps: int,
    budget_s: float,
    peer_root: Path = _server.BENCH_DIR,
    peer_clients: tuple[int, ...] = (8, 1),
) -> dict[str, Any]:
    items = list(_data.runs(runs, steps, SEED))
    out: dict[str, Any] = {
        "points": runs * steps,
        "runs": runs,
        "steps": steps,
        "clients": clients,
        "peer_clients": list(peer_clients),
        "budget_s": budget_s,
    }
    log("  ours...")
    out["ours"] = ours(workdir, items, clients, reps, budget_s)
    for name, bench in (("sematic", sematic), ("mlflow", mlflow)):
        missing = _server.peer_missing(name, peer_root)
        if missing:
            out[name] = {"skipped": missing}
            log(f"  {name}: {missing}")
            continue
        log(f"  {name}...")
        try:
            out[name] = bench(workdir, items, list(peer_clients), reps, budget_s, peer_root)
        except Exception as exc:  # a peer that fails to start or answer is reported, not fatal
            out[name] = {"skipped": f"failed here: {type(exc).__name__}: {str(exc)[-1500:]}"}
            log(f"  {name} failed: {exc}")
    return out
