"""Synthetic but realistic metric series, shared by every benchmark.

A training run logs a noisy, decaying loss once per second. Values come from
float32 tensors (``loss.item()`` in PyTorch gives a float64 holding a float32),
which is what most pipelines log; ``full_precision=True`` gives float64 noise
in every mantissa bit instead, the worst case for the value codec.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

BASE_TIME = 1_704_070_800  # 2024-01-01T01:00:00Z: 1M-point runs stay in one monthly partition
METRIC = "loss"
FUNCTION_PATH = "bench.pipeline.train_model"
ROOT_FUNCTION_PATH = "bench.pipeline.pipeline"


@dataclass(frozen=True)
class Run:
    """One run's series of one metric."""

    index: int
    run_id: str
    root_id: str
    times: np.ndarray  # epoch seconds, float64
    values: np.ndarray  # float64
    steps: np.ndarray  # int64

    @property
    def labels(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "root_id": self.root_id,
            "function_path": FUNCTION_PATH,
            "root_function_path": ROOT_FUNCTION_PATH,
            "__scope__": "0",
        }

    def __len__(self) -> int:
        return len(self.times)


def run_ids(index: int, seed: int) -> tuple[str, str]:
    rng = np.random.default_rng([seed, index, 7])
    run = uuid.UUID(bytes=rng.bytes(16), version=4).hex
    root = uuid.UUID(bytes=rng.bytes(16), version=4).hex
    return run, root


def make_run(
    index: int,
    steps: int,
    seed: int = 0,
    full_precision: bool = False,
    jitter: bool = False,
    start_step: int = 0,
    start_offset_s: float | None = None,
) -> Run:
    """Run ``index``: ``steps`` points of a decaying loss, one per second."""
    rng = np.random.default_rng([seed, index] if start_step == 0 else [seed, index, start_step])
    step = np.arange(start_step, start_step + steps, dtype=np.int64)
    offset = index * 600.0 if start_offset_s is None else start_offset_s
    times = BASE_TIME + offset + step.astype(np.float64)
    if jitter:  # time.time() at each step: a second apart give or take a few ms
        times = times + rng.normal(0.0, 0.003, steps)
        times = np.round(times, 6)
    tau = 2000.0 + 500.0 * (index % 7)
    clean = 2.3 * np.exp(-step / tau) + 0.05
    values = clean * (1.0 + 0.05 * rng.standard_normal(steps))
    if not full_precision:
        values = values.astype(np.float32).astype(np.float64)
    run_id, root_id = run_ids(index, seed)
    return Run(index, run_id, root_id, times, values, step)


def runs(n_runs: int, steps: int, seed: int = 0, **kwargs: bool) -> Iterator[Run]:
    for i in range(n_runs):
        yield make_run(i, steps, seed, **kwargs)


def arrow_table(items: list[Run], schema: pa.Schema, with_steps: bool = True) -> pa.Table:
    """The rows the server would store for these runs (empty batch_id)."""
    n = sum(len(r) for r in items)
    micros = np.concatenate([np.round(r.times * 1e6).astype(np.int64) for r in items])
    # Per-run and constant strings as a take() of a few values: fast for millions of rows.
    run_of_row = pa.array(np.repeat(np.arange(len(items), dtype=np.int32), [len(r) for r in items]))
    zeros = pa.array(np.zeros(n, dtype=np.int32))

    def per_run(text: list[str]) -> pa.Array:
        return pa.array(text, pa.string()).take(run_of_row)

    def const(text: str) -> pa.Array:
        return pa.array([text], pa.string()).take(zeros)

    empty = pa.array([], pa.string())
    columns = {
        "name": const(METRIC),
        "metric_type": pa.array(np.ones(n, dtype=np.int8), pa.int8()),
        "metric_time": pa.array(micros, pa.int64()).cast(schema.field("metric_time").type),
        "value": pa.array(np.concatenate([r.values for r in items]), pa.float64()),
        "step": (
            pa.array(np.concatenate([r.steps for r in items]), pa.int64())
            if with_steps
            else pa.nulls(n, pa.int64())
        ),
        "run_id": per_run([r.run_id for r in items]),
        "root_id": per_run([r.root_id for r in items]),
        "function_path": const(FUNCTION_PATH),
        "root_function_path": const(ROOT_FUNCTION_PATH),
        "scope": const("0"),
        "user_id": const(""),
        "labels": pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), empty, empty).cast(
            schema.field("labels").type
        ),
        "batch_id": const(""),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def chunks(run: Run, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, len(run), size):
        yield start, min(start + size, len(run))


def compact_body(run: Run, start: int, stop: int) -> bytes:
    """The compact form: labels once, points as parallel arrays (with steps)."""
    n = stop - start
    return orjson.dumps(
        {
            "labels": run.labels,
            "points": {
                "name": [METRIC] * n,
                "value": run.values[start:stop].tolist(),
                "metric_type": [1] * n,
                "metric_time": run.times[start:stop].tolist(),
                "step": run.steps[start:stop].tolist(),
            },
        }
    )


def sematic_points(run: Run, start: int, stop: int) -> list[dict[str, object]]:
    labels = run.labels
    return [
        {"name": METRIC, "value": v, "metric_type": 1, "labels": labels, "metric_time": t}
        for v, t in zip(run.values[start:stop].tolist(), run.times[start:stop].tolist(), strict=True)
    ]


def sematic_body(run: Run, start: int, stop: int) -> bytes:
    """Sematic 0.41's form: one object per point, labels repeated."""
    return orjson.dumps({"metric_points": sematic_points(run, start, stop)})


def mlflow_body(run: Run, mlflow_run_id: str, start: int, stop: int) -> bytes:
    """MLflow's log-batch request: timestamps in integer milliseconds, with steps."""
    metrics = [
        {"key": METRIC, "value": v, "timestamp": round(t * 1000), "step": s}
        for v, t, s in zip(
            run.values[start:stop].tolist(),
            run.times[start:stop].tolist(),
            run.steps[start:stop].tolist(),
            strict=True,
        )
    ]
    return orjson.dumps({"run_id": mlflow_run_id, "metrics": metrics})


def bodies(form: str, items: list[Run], batch: int) -> list[tuple[bytes, int]]:
    """Pre-encoded request bodies and their point counts."""
    encode = compact_body if form == "compact" else sematic_body
    return [(encode(r, a, b), b - a) for r in items for a, b in chunks(r, batch)]
