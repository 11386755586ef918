"""Builders for ingest bodies used across tests."""

from __future__ import annotations

from typing import Any

T0 = 1_700_000_000  # a whole multiple of 100 seconds


def point(
    name: str = "loss",
    value: Any = 1.0,
    t: float = T0,
    metric_type: int = 1,
    **labels: str | None,
) -> dict[str, Any]:
    return {"name": name, "value": value, "metric_type": metric_type, "metric_time": t, "labels": labels}


def run_labels(run_id: str, root_id: str | None = None, pipeline: str = "train.pipeline") -> dict[str, str]:
    return {
        "run_id": run_id,
        "root_id": root_id or run_id,
        "function_path": pipeline if (root_id or run_id) == run_id else "train.step",
        "root_function_path": pipeline,
    }


def compact(
    labels: dict[str, Any],
    names: list[str],
    values: list[Any],
    times: list[float],
    types: list[int] | None = None,
    steps: list[int | None] | None = None,
) -> dict[str, Any]:
    points: dict[str, Any] = {
        "name": names,
        "value": values,
        "metric_type": types if types is not None else [1] * len(names),
        "metric_time": times,
    }
    if steps is not None:
        points["step"] = steps
    return {"labels": labels, "points": points}
