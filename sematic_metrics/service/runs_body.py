"""Run records in: decode and validate ``POST /api/v1/runs`` bodies into an
Arrow batch for the ``run_versions`` table (runs_writer.py stores it).

A run is stored as versions; the views pick its state from them (a terminal
state is never replaced by an earlier one; then the latest ``updated_at``,
then the latest arrival). Each record carries its position in the request,
so of two versions of a run in one batch the later one arrived later. Every
version of a run must carry the same id, root_id, function_path and
created_at, so a record that changes them is rejected before anything is
written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pyarrow as pa

from sematic_metrics.errors import InvalidInputError, SematicMetricsError
from sematic_metrics.rules import MAX_ID, MAX_PATH, MAX_TEXT, MAX_TIME, MIN_TIME, RUN_STATES

STATES = RUN_STATES
_STATE_CODES = {state: code for code, state in enumerate(STATES)}
MAX_NAME = MAX_TEXT  # a run's display name is free text, not a metric name
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_TIMES = ("created_at", "started_at", "resolved_at", "failed_at", "ended_at", "updated_at")
_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("root_id", pa.string()),
        ("parent_id", pa.string()),
        ("function_path", pa.string()),
        ("name", pa.string()),
        ("future_state", pa.int8()),
        ("original_run_id", pa.string()),
        *((column, _TS) for column in _TIMES),
        ("user_id", pa.string()),
        ("batch_id", pa.string()),
        ("position", pa.uint32()),
    ]
)

# Epoch seconds or an RFC 3339 string.
WireTime = float | str


class RunRecord(msgspec.Struct):
    """One version of a Sematic run; fields Sematic adds beyond these are ignored."""

    id: str
    root_id: str
    function_path: str
    future_state: str
    created_at: WireTime
    updated_at: WireTime
    parent_id: str | None = None
    name: str | None = None
    original_run_id: str | None = None
    started_at: WireTime | None = None
    resolved_at: WireTime | None = None
    failed_at: WireTime | None = None
    ended_at: WireTime | None = None


class RunsBody(msgspec.Struct):
    """``POST /api/v1/runs``: a batch of run records, stored all or nothing."""

    runs: list[RunRecord]


class RunsResult(msgspec.Struct):
    stored: int
    duplicate: bool = False


_DECODER = msgspec.json.Decoder(RunsBody)
# id -> (index of its first record, root_id, function_path, created_at in epoch us)
Identities = dict[str, tuple[int, str, str, int]]


@dataclass(frozen=True)
class RunsBatch:
    """A validated batch: its table and the identity of each run in it."""

    table: pa.Table
    identities: Identities
    key: str


def decode(body: bytes) -> RunsBody:
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, where = text.partition(" - at `$")
        where = where.rstrip("`").lstrip(".") or "body"
        raise InvalidInputError(f"{where}: {message}") from None
    except msgspec.DecodeError as exc:
        if not body.strip():
            raise InvalidInputError('body: empty; send a JSON object such as {"runs": [...]}') from None
        raise InvalidInputError(f"body is not valid JSON: {exc}") from None


def parse_time(raw: WireTime, where: str) -> int:
    """Epoch seconds or an RFC 3339 string (UTC when it has no offset) -> epoch us."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInputError(
                f"{where}: {raw[:40]!r} is not a time; send epoch seconds or RFC 3339 "
                "such as '2024-05-01T12:00:00Z'"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        micros = (moment - _EPOCH) // _US
        seconds = micros / 1e6
    else:
        seconds = float(raw)
        micros = round(seconds * 1e6) if math.isfinite(seconds) else 0
    if not (MIN_TIME <= seconds < MAX_TIME):
        raise InvalidInputError(f"{where}: {raw!r} is not a time between 1900-01-01 and 2299-12-31")
    return micros


def _text(value: str | None, where: str, limit: int, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInputError(f"{where}: must not be empty")
        return None
    if len(value) > limit:
        raise InvalidInputError(f"{where}: {len(value)} characters; the limit is {limit}")
    return value


def to_batch(body: RunsBody, key: str, user_id: str | None) -> RunsBatch:
    """Validate every record, then build the Arrow table of the batch."""
    if not body.runs:
        raise InvalidInputError("runs: empty; send at least one run record")
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    identities: Identities = {}
    for i, run in enumerate(body.runs):
        where = f"runs[{i}]"
        run_id = _text(run.id, f"{where}.id", MAX_ID, required=True)
        root_id = _text(run.root_id, f"{where}.root_id", MAX_ID, required=True)
        path = _text(run.function_path, f"{where}.function_path", MAX_PATH, required=True)
        state = _STATE_CODES.get(run.future_state)
        if state is None:
            raise InvalidInputError(
                f"{where}.future_state: {run.future_state[:40]!r} is not a run state; "
                f"allowed: {', '.join(STATES)}"
            )
        times = {}
        for column in _TIMES:
            raw = getattr(run, column)
            times[column] = None if raw is None else parse_time(raw, f"{where}.{column}")
        assert run_id is not None and root_id is not None and path is not None
        created = times["created_at"]
        assert created is not None
        first = identities.setdefault(run_id, (i, root_id, path, created))
        same_identity(first, (root_id, path, created), run_id, where, f"runs[{first[0]}]", InvalidInputError)
        columns["id"].append(run_id)
        columns["root_id"].append(root_id)
        columns["parent_id"].append(_text(run.parent_id, f"{where}.parent_id", MAX_ID))
        columns["function_path"].append(path)
        columns["name"].append(_text(run.name, f"{where}.name", MAX_NAME) or "")
        columns["future_state"].append(state)
        columns["original_run_id"].append(_text(run.original_run_id, f"{where}.original_run_id", MAX_ID))
        for column, micros in times.items():
            columns[column].append(micros)
    n = len(body.runs)
    columns["user_id"] = [user_id or ""] * n
    columns["batch_id"] = [key] * n
    columns["position"] = list(range(n))
    arrays = [
        pa.array(columns[f.name], pa.int64()).cast(_TS)
        if f.type == _TS
        else pa.array(columns[f.name], f.type)
        for f in SCHEMA
    ]
    return RunsBatch(pa.Table.from_arrays(arrays, schema=SCHEMA), identities, key)


def same_identity(
    first: tuple[int, str, str, int],
    other: tuple[str, str, int],
    run_id: str,
    where: str,
    seen: str,
    error: type[SematicMetricsError],
) -> None:
    checks: tuple[tuple[str, object, object, object, object], ...] = (
        ("root_id", first[1], other[0], first[1], other[0]),
        ("function_path", first[2], other[1], first[2], other[1]),
        ("created_at", first[3], other[2], first[3] / 1e6, other[2] / 1e6),
    )
    for field, old, new, shown_old, shown_new in checks:
        if old != new:
            raise error(
                f"{where}.{field}: run {run_id!r} has {field} {shown_old!r} in {seen} "
                f"but {shown_new!r} here; id, root_id, function_path and created_at never change "
                "between versions of a run"
            )
