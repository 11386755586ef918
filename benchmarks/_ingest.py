"""Ingest over HTTP beside raw insert_arrow, in interleaved rounds.

Each round inserts fresh points (new runs: an identical block could be
deduplicated by the engine) first through a raw ``insert_arrow`` in an
engine child process, then through each form and client count over HTTP to
``sematic-metrics serve`` processes (one per form, own data dirs). Ratios
are taken within a round, so they compare measurements under the same load.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _data
import _engine
import _load
import _server

FORMS = ("compact", "sematic")
WARMUP_RUN = 99_999
# label -> (series options, schema changes tried on a scratch database)
STORAGE_VARIANTS: dict[str, tuple[dict[str, bool], tuple[str, ...]]] = {
    "float32 values, 1 s apart": ({}, ()),
    "float64 noise, 1 s +- 3 ms jitter": ({"full_precision": True, "jitter": True}, ()),
    "float32 values, experiment: step DoubleDelta, run_id/root_id LowCardinality": (
        {},
        (
            "ALTER TABLE metric_points MODIFY COLUMN step Nullable(Int64) CODEC(DoubleDelta, ZSTD(1))",
            "ALTER TABLE metric_points MODIFY COLUMN run_id LowCardinality(String)",
            "ALTER TABLE metric_points MODIFY COLUMN root_id LowCardinality(String)",
        ),
    ),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def post(port: int, form: str, items: list[_data.Run], batch: int, clients: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    bodies = _data.bodies(form, items, batch)
    encode_s = time.perf_counter() - t0
    result = _load.post_all(port, "/api/v1/metrics", bodies, clients)
    return {
        "points": result.points,
        "requests": result.requests,
        "seconds": result.seconds,
        "rate": result.rate,
        "errors": result.errors[:5],
        "error_count": len(result.errors),
        "body_bytes_per_point": sum(len(b) for b, _ in bodies) / max(1, sum(n for _, n in bodies)),
        "client_encode_s": encode_s,
        "request_p50_s": _load.percentile(result.latencies, 50),
        "request_p95_s": _load.percentile(result.latencies, 95),
    }


def measure(
    workdir: Path,
    runs: int,
    steps: int,
    batch: int,
    clients: list[int],
    rounds: int,
    forms: tuple[str, ...] = FORMS,
    storage: bool = True,
) -> dict[str, Any]:
    """Raw and HTTP ingest rates per round; storage of the first raw round."""
    rows: list[dict[str, Any]] = []
    warm = _data.make_run(WARMUP_RUN, 200)
    with _engine.Engine(workdir / "raw") as raw, contextlib.ExitStack() as stack:
        log("  starting the engine child and the servers; warming up...")
        raw.call("insert", database="bench_warmup", runs=runs, steps=steps, seed=0)
        raw.call("drop", database="bench_warmup")
        ports: dict[str, int] = {}
        for form in forms:
            data_dir = workdir / f"server-{form}" / "data"
            data_dir.mkdir(parents=True)
            ports[form] = stack.enter_context(_server.ours(data_dir, data_dir.parent / "server.log"))
            warmed = _load.post_all(ports[form], "/api/v1/metrics", _data.bodies(form, [warm], 100), 1)
            if warmed.errors:
                raise RuntimeError(f"warm-up of the {form} server failed: {warmed.errors[:3]}")
        for r in range(rounds):
            row: dict[str, Any] = {
                "raw": raw.call("insert", database=f"bench_raw_{r}", runs=runs, steps=steps, seed=1000 + r)
            }
            for c, n_clients in enumerate(clients):
                for f, form in enumerate(forms):
                    items = list(_data.runs(runs, steps, 2000 + 100 * r + 10 * c + f))
                    row[f"{form}/{n_clients}"] = post(ports[form], form, items, batch, n_clients)
            rows.append(row)
            cells = [f"raw {row['raw']['rate']:,.0f}/s"] + [
                f"{key} {value['rate']:,.0f}/s" for key, value in row.items() if key != "raw"
            ]
            log(f"  round {r + 1}/{rounds}: " + ", ".join(cells))
        batched = raw.call(
            "insert", database="bench_raw_batched", runs=runs, steps=steps, seed=999, batch=batch
        )
        sizes: dict[str, Any] = {}
        if storage:
            log("  storage after OPTIMIZE FINAL...")
            for i, (label, (kwargs, alter)) in enumerate(STORAGE_VARIANTS.items()):
                database = "bench_raw_0" if i == 0 else f"bench_storage_{i}"
                if i:
                    raw.call(
                        "insert", database=database, runs=runs, steps=steps, seed=1000, alter=alter, **kwargs
                    )
                sizes[label] = raw.call("storage", database=database)
    stored = {form: _engine.count_rows(workdir / f"server-{form}" / "data") for form in forms}
    return summarize(rows, batched, sizes, stored, len(warm), runs, steps, batch, clients, forms)


def summarize(
    rows: list[dict[str, Any]],
    batched: dict[str, Any],
    storage: dict[str, Any],
    stored: dict[str, dict[str, int]],
    warm_points: int,
    runs: int,
    steps: int,
    batch: int,
    clients: list[int],
    forms: tuple[str, ...],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "points_per_measurement": runs * steps,
        "runs": runs,
        "steps": steps,
        "batch": batch,
        "clients": clients,
        "rounds": rows,
        "raw_rate": statistics.median(r["raw"]["rate"] for r in rows),
        "raw_batched_rate": batched["rate"],
        "storage": storage,
        "http": {},
        "stored": {},
    }
    for form in forms:
        acked = warm_points
        for n in clients:
            key = f"{form}/{n}"
            acked += sum(r[key]["points"] for r in rows)
            out["http"][key] = {
                "form": form,
                "clients": n,
                "rate": statistics.median(r[key]["rate"] for r in rows),
                "ratio_to_raw": statistics.median(r[key]["rate"] / r["raw"]["rate"] for r in rows),
                "request_p50_s": statistics.median(r[key]["request_p50_s"] for r in rows),
                "request_p95_s": statistics.median(r[key]["request_p95_s"] for r in rows),
                "body_bytes_per_point": rows[0][key]["body_bytes_per_point"],
                "errors": sum(r[key]["error_count"] for r in rows),
                "first_errors": [e for r in rows for e in r[key]["errors"]][:3],
            }
        out["stored"][form] = {
            "acked": acked,
            "stored": stored[form]["rows"],
            "ok": stored[form]["rows"] == acked,
        }
    return out


def server_cpu(batch: int, reps: int = 5) -> dict[str, dict[str, float]]:
    """Seconds the service spends per request before the INSERT, in this process:
    decoding the JSON body, then validating it and building the Arrow table."""
    from sematic_metrics.service.points_body import decode, to_table

    run = _data.make_run(0, batch, seed=1)
    out = {}
    for form in FORMS:
        body = _data.bodies(form, [run], batch)[0][0]
        decoded = decode(body)
        to_table(decoded, "", None)
        t0 = time.perf_counter()
        for _ in range(reps):
            decoded = decode(body)
        t1 = time.perf_counter()
        for _ in range(reps):
            to_table(decoded, "", None)
        t2 = time.perf_counter()
        out[form] = {"decode_s": (t1 - t0) / reps, "build_s": (t2 - t1) / reps, "points": batch}
    return out
