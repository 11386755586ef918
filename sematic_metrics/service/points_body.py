"""Validate decoded ingest bodies and turn them into one Arrow table each.

Validation is complete before anything is written: the first bad field is
reported with its point index, and a batch is all or nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.rules import MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS, MAX_NAME, MAX_TIME, MIN_TIME
from sematic_metrics.rules import WELL_KNOWN_LABELS as WELL_KNOWN
from sematic_metrics.wire import INGEST_DECODER, IngestBody, Labels, MetricPoint, WireValue

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


# The compact form's tables say so in their metadata, so that a conflict found
# later (409) names the field as the client sent it: see type_field.
_FORM = b"sematic_metrics.form"
_COMPACT_SCHEMA = SCHEMA.with_metadata({_FORM: b"compact"})


def type_field(table: pa.Table, index: int) -> str:
    """The metric_type field of point ``index`` of a body's table, as sent."""
    if (table.schema.metadata or {}).get(_FORM) == b"compact":
        return f"points.metric_type[{index}]"
    return f"metric_points[{index}].metric_type"


def decode(body: bytes) -> IngestBody:
    """Decode JSON, accepting the NaN / Infinity tokens Python's json writes."""
    try:
        return INGEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"invalid body: {_path(exc)}") from None
    except msgspec.DecodeError as exc:
        first = exc
    if not body.strip():
        raise InvalidInputError("body: empty; send a JSON object with metric_points, or labels and points")
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
    names = pa.array([p.name for p in points], pa.string())
    types = pa.array([p.metric_type for p in points], pa.int64())
    seconds = pa.array([p.metric_time for p in points], pa.float64())
    _check_columns(names, types, seconds, lambda i, field: f"metric_points[{i}].{field}")
    raw_values = [p.value for p in points]
    try:
        values = pa.array(raw_values, pa.float64()).fill_null(math.nan)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = pa.array(
            [_value(v, f"metric_points[{i}].value") for i, v in enumerate(raw_values)], pa.float64()
        )
    # Points of a batch share few distinct label sets: split each set once and
    # build the label columns as a dictionary take.
    sets: dict[tuple[tuple[str, str | None], ...], int] = {}
    splits: list[tuple[list[str], list[tuple[str, str]]]] = []
    index: list[int] = []
    for i, p in enumerate(points):
        key = tuple(p.labels.items())
        slot = sets.get(key)
        if slot is None:
            slot = sets[key] = len(splits)
            splits.append(split_labels(_with_user(p.labels, user_id), f"metric_points[{i}].labels"))
        index.append(slot)
    take = pa.array(index, pa.int32())
    columns: list[Any] = [
        names,
        types.cast(pa.int8()),
        _micros(seconds),
        values,
        pa.array([p.step for p in points], pa.int64()),
        *(pa.array([sp[0][c] for sp in splits], pa.string()).take(take) for c in range(len(WELL_KNOWN))),
        pa.array([sp[1] for sp in splits], _MAP).take(take),
        _const(batch_id, n, pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _micros(seconds: pa.Array) -> pa.Array:
    micros = pc.cast(pc.round(pc.multiply(seconds, 1e6)), pa.int64())
    return micros.cast(SCHEMA.field("metric_time").type)


def _check_columns(
    names: pa.Array,
    types: pa.Array,
    seconds: pa.Array,
    where: Callable[[int, str], str],
) -> None:
    """Bulk checks of names, types and times; the first bad entry is reported."""
    lengths = pc.utf8_length(names)
    names_ok = pc.and_(
        pc.and_(pc.greater(lengths, 0), pc.less_equal(lengths, MAX_NAME)), pc.invert(pc.utf8_is_space(names))
    )
    if not pc.all(names_ok).as_py():
        i = _first_bad(names_ok)
        _check_name(names[i].as_py(), where(i, "name"))
    types_ok = pc.is_in(types, pa.array([0, 1], pa.int64()))
    if not pc.all(types_ok).as_py():
        i = _first_bad(types_ok)
        _check_type(types[i].as_py(), where(i, "metric_type"))
    times_ok = pc.and_(pc.greater_equal(seconds, MIN_TIME), pc.less(seconds, MAX_TIME))
    if not pc.all(times_ok).as_py():
        i = _first_bad(times_ok)
        _check_time(seconds[i].as_py(), where(i, "metric_time"))


def _const(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    """n copies of one value (a take of index 0: far cheaper than pa.repeat)."""
    return pa.array([value], type_).take(pa.nulls(n, pa.int32()).fill_null(0))


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
    types = pa.array(pts.metric_type, pa.int64())
    seconds = pa.array(pts.metric_time, pa.float64())
    _check_columns(names, types, seconds, lambda i, field: f"points.{field}[{i}]")
    try:
        values = pa.array(pts.value, pa.float64()).fill_null(math.nan)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = pa.array([_value(v, f"points.value[{i}]") for i, v in enumerate(pts.value)], pa.float64())
    known, rest = split_labels(_with_user(body.labels or {}, user_id), "labels")
    columns: list[Any] = [
        names,
        types.cast(pa.int8()),
        _micros(seconds),
        values,
        pa.array(pts.step, pa.int64()) if pts.step is not None else pa.nulls(n, pa.int64()),
        *(_const(v, n, pa.string()) for v in known),
        _const(rest, n, _MAP),
        _const(batch_id, n, pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=_COMPACT_SCHEMA)
