"""msgspec wire structs shared by the SDK and the server."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from sematic_metrics import rules


class MetricType(enum.IntEnum):
    """Sematic's metric types: COUNT is summed per bucket, GAUGE averaged."""

    COUNT = rules.COUNT
    GAUGE = rules.GAUGE


class MetricScope(str, enum.Enum):
    """Sematic's metric scopes, stored in the ``__scope__`` label."""

    RUN = "0"
    PIPELINE = "1"


Labels = dict[str, "str | None"]
# Integers the store keeps as Int64: larger ones are a 400 at decode time.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# A value is a number; null and the strings NaN / Infinity / -Infinity carry
# the non-finite floats that JSON cannot spell.
WireValue = float | str | None


class MetricPoint(msgspec.Struct, omit_defaults=True):
    """One point in Sematic's form."""

    name: str
    value: WireValue
    metric_type: Int64
    metric_time: float
    labels: Labels = msgspec.field(default_factory=dict)
    step: Int64 | None = None


class CompactPoints(msgspec.Struct, omit_defaults=True):
    """Points as parallel arrays; ``step`` is optional."""

    name: list[str]
    value: list[WireValue]
    metric_type: list[Int64]
    metric_time: list[float]
    step: list[Int64 | None] | None = None


class IngestBody(msgspec.Struct, omit_defaults=True):
    """``POST /api/v1/metrics``: either ``metric_points`` (Sematic's form) or
    ``labels`` + ``points`` (the compact form)."""

    metric_points: list[MetricPoint] | None = None
    labels: Labels | None = None
    points: CompactPoints | None = None


class IngestResult(msgspec.Struct):
    stored: int
    duplicate: bool = False


INGEST_DECODER = msgspec.json.Decoder(IngestBody)
ENCODER = msgspec.json.Encoder()


class RunRecord(msgspec.Struct, omit_defaults=True):
    """One version of a run as the SDK sends it to ``POST /api/v1/runs``.

    Times are epoch seconds. The service decodes the same fields with its own
    structs (``service/runs_body.py``), which also take RFC 3339 strings.
    """

    id: str
    root_id: str
    function_path: str
    future_state: str
    created_at: float
    updated_at: float
    parent_id: str | None = None
    name: str | None = None
    started_at: float | None = None
    resolved_at: float | None = None
    failed_at: float | None = None
    ended_at: float | None = None
    original_run_id: str | None = None


class RunRecords(msgspec.Struct):
    """``POST /api/v1/runs``: a batch of run records, stored all or nothing."""

    runs: list[RunRecord]
