"""Validate decoded ingest bodies and turn them into one Arrow table each.

Validation is complete before anything is written: the first bad field is
reported with its point index, and a batch is all or nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.models import INGEST_DECODER, IngestBody, Labels, MetricPoint, WireValue

# Well-known labels stored as real columns: label key -> column.
WELL_KNOWN = {
    "run_id": "run_id",
    "root_id": "root_id",
    "function_path": "function_path",
    "root_function_path": "root_function_path",
    "__scope__": "scope",
    "user_id": "user_id",
}
MIN_TIME = -2208988800.0  # 1900-01-01, DateTime64's lower bound
MAX_TIME = 10413792000.0  # 2300-01-01, exclusive upper bound
MAX_NAME = 1024
MAX_LABEL_KEY = 256
MAX_LABEL_VALUE = 8192
MAX_LABELS = 128
_SPECIAL = {
    "nan": math.nan,
    "infinity": math.inf,
    "-infinity": -math.inf,
    "inf": math.inf,
    "-inf": -math.inf,
}
_MAP = pa.map_(pa.string(), pa.string())
SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("metric_type", pa.int8()),
        ("metric_time", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("step", pa.int64()),
        *((column, pa.string()) for column in WELL_KNOWN.values()),
        ("labels", _MAP),
        ("batch_id", pa.string()),
    ]
)


def decode(body: bytes) -> IngestBody:
    """Decode JSON, accepting the NaN / Infinity tokens Python's json writes."""
    try:
        return INGEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"invalid body: {_path(exc)}") from None
    except msgspec.DecodeError as exc:
        first = exc
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInputError(f"body is not valid JSON: {first}") from None
    try:
        return msgspec.convert(raw, IngestBody)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"invalid body: {_path(exc)}") from None


def _path(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    message, _, where = text.partition(" - at `$")
    return f"{where.rstrip('`').lstrip('.') or 'body'}: {message}" if where else text


def to_table(body: IngestBody, batch_id: str, user_id: str | None) -> pa.Table:
    """Validate a decoded body and build its Arrow table."""
    if body.metric_points is not None:
        if body.points is not None or body.labels is not None:
            raise InvalidInputError("metric_points: send either metric_points or labels + points, not both")
        return _points_table(body.metric_points, batch_id, user_id)
    if body.points is None:
        raise InvalidInputError("metric_points: missing; send metric_points or labels + points")
    return _compact_table(body, batch_id, user_id)


def _value(raw: WireValue, where: str) -> float:
    if raw is None:
        return math.nan
    if isinstance(raw, str):
        try:
            return _SPECIAL[raw.lower()]
        except KeyError:
            raise InvalidInputError(
                f"{where}: {raw[:40]!r} is not a number; send a number, null, "
                "'NaN', 'Infinity' or '-Infinity'"
            ) from None
    return float(raw)


def _check_name(name: str, where: str) -> None:
    if not name or not name.strip():
        raise InvalidInputError(f"{where}: metric name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"{where}: metric name is {len(name)} characters; the limit is {MAX_NAME}")


def _check_time(t: float, where: str) -> None:
    if not (MIN_TIME <= t < MAX_TIME):
        raise InvalidInputError(
            f"{where}: {t!r} is not an epoch-seconds time between 1900-01-01 and 2299-12-31"
        )


def _check_type(metric_type: int, where: str) -> None:
    if metric_type not in (0, 1):
        raise InvalidInputError(f"{where}: {metric_type!r} is not a metric type; use 0 (COUNT) or 1 (GAUGE)")


def split_labels(labels: Labels, where: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Well-known label values in column order, and the rest as map entries."""
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(f"{where}: {len(labels)} labels; the limit is {MAX_LABELS}")
    known = [""] * len(WELL_KNOWN)
    rest: list[tuple[str, str]] = []
    index = {key: i for i, key in enumerate(WELL_KNOWN)}
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            raise InvalidInputError(f"{where}: label keys must be 1 to {MAX_LABEL_KEY} characters")
        if value is not None and len(value) > MAX_LABEL_VALUE:
            raise InvalidInputError(
                f"{where}.{key[:40]}: label value is {len(value)} characters; the limit is {MAX_LABEL_VALUE}"
            )
        if key in index:
            known[index[key]] = value or ""
        elif value is not None:
            rest.append((key, value))
    return known, rest


def _with_user(labels: Labels, user_id: str | None) -> Labels:
    if user_id is None:
        return labels
    return {**labels, "user_id": user_id}


def _points_table(points: Sequence[MetricPoint], batch_id: str, user_id: str | None) -> pa.Table:
    if not points:
        raise InvalidInputError("metric_points: empty; send at least one point")
    n = len(points)
    names, types, times, values, steps = [], [], [], [], []
    known_cols: list[list[str]] = [[] for _ in WELL_KNOWN]
    maps: list[list[tuple[str, str]]] = []
    cache: dict[int, tuple[list[str], list[tuple[str, str]]]] = {}
    for i, p in enumerate(points):
        where = f"metric_points[{i}]"
        _check_name(p.name, f"{where}.name")
        _check_type(p.metric_type, f"{where}.metric_type")
        _check_time(p.metric_time, f"{where}.metric_time")
        values.append(_value(p.value, f"{where}.value"))
        names.append(p.name)
        types.append(p.metric_type)
        times.append(round(p.metric_time * 1e6))
        steps.append(p.step)
        # Points of one batch usually share one labels dict object.
        split = cache.get(id(p.labels))
        if split is None:
            split = split_labels(_with_user(p.labels, user_id), f"{where}.labels")
            cache[id(p.labels)] = split
        for column, value in zip(known_cols, split[0], strict=True):
            column.append(value)
        maps.append(split[1])
    columns: list[Any] = [
        pa.array(names, pa.string()),
        pa.array(types, pa.int8()),
        pa.array(times, pa.int64()).cast(SCHEMA.field("metric_time").type),
        pa.array(values, pa.float64()),
        pa.array(steps, pa.int64()),
        *(pa.array(col, pa.string()) for col in known_cols),
        pa.array(maps, _MAP),
        pa.repeat(pa.scalar(batch_id, pa.string()), n),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _first_bad(mask: pa.Array) -> int:
    """Index of the first false entry of a boolean array."""
    return int(pc.indices_nonzero(pc.invert(mask))[0].as_py())


def _compact_table(body: IngestBody, batch_id: str, user_id: str | None) -> pa.Table:
    pts = body.points
    assert pts is not None
    n = len(pts.name)
    if n == 0:
        raise InvalidInputError("points.name: empty; send at least one point")
    lengths: Mapping[str, int] = {
        "value": len(pts.value),
        "metric_type": len(pts.metric_type),
        "metric_time": len(pts.metric_time),
        **({"step": len(pts.step)} if pts.step is not None else {}),
    }
    for field, length in lengths.items():
        if length != n:
            raise InvalidInputError(f"points.{field}: has {length} entries but points.name has {n}")
    names = pa.array(pts.name, pa.string())
    lengths_ok = pc.and_(pc.greater(pc.utf8_length(names), 0), pc.less_equal(pc.utf8_length(names), MAX_NAME))
    if not pc.all(lengths_ok).as_py():
        i = _first_bad(lengths_ok)
        _check_name(pts.name[i], f"points.name[{i}]")
    types = pa.array(pts.metric_type, pa.int64())
    types_ok = pc.is_in(types, pa.array([0, 1], pa.int64()))
    if not pc.all(types_ok).as_py():
        i = _first_bad(types_ok)
        _check_type(pts.metric_type[i], f"points.metric_type[{i}]")
    seconds = pa.array(pts.metric_time, pa.float64())
    times_ok = pc.and_(pc.greater_equal(seconds, MIN_TIME), pc.less(seconds, MAX_TIME))
    if not pc.all(times_ok).as_py():
        i = _first_bad(times_ok)
        _check_time(pts.metric_time[i], f"points.metric_time[{i}]")
    try:
        values = pa.array(pts.value, pa.float64()).fill_null(math.nan)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = pa.array([_value(v, f"points.value[{i}]") for i, v in enumerate(pts.value)], pa.float64())
    micros = pc.cast(pc.round(pc.multiply(seconds, 1e6)), pa.int64())
    known, rest = split_labels(_with_user(body.labels or {}, user_id), "labels")
    columns: list[Any] = [
        names,
        types.cast(pa.int8()),
        micros.cast(SCHEMA.field("metric_time").type),
        values,
        pa.array(pts.step, pa.int64()) if pts.step is not None else pa.nulls(n, pa.int64()),
        *(pa.repeat(pa.scalar(v, pa.string()), n) for v in known),
        pa.repeat(pa.scalar(rest, _MAP), n),
        pa.repeat(pa.scalar(batch_id, pa.string()), n),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)
