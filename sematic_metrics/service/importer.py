"""``sematic-metrics import-sematic``: copy a Sematic 0.41 database's runs and
metric points into this service.

Runs go to ``POST /api/v1/runs`` (upserts) in chunks of the id order. Points
are read in metric_time order and cut into chunks that depend on the data
alone: one chunk per 10-minute window of metric_time, split every
``CHUNK_POINTS`` points. A label set with many points in a chunk is posted in
the compact form of ``POST /api/v1/metrics``; the label sets with few (Sematic
keeps one per run and metric) share one request in Sematic's form. Every
request carries an Idempotency-Key hashed from its chunk and body, so an
interrupted or repeated import stores nothing twice. Windows that Sematic may
still write into (ending less than five minutes before the import started)
are left for a later run unless ``include_open``: copying them now and again
later would store their first points twice.

Sematic's system metrics (``sematic.*``) are skipped: the service computes
them from the runs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec

from sematic_metrics import rules
from sematic_metrics.errors import SematicMetricsError
from sematic_metrics.service._import_sinks import DirectSink, HttpSink, Sink
from sematic_metrics.service._sematic_db import FAR_FUTURE, RUN_TIMES, Metric, Source, epoch, open_source
from sematic_metrics.service.config import Settings
from sematic_metrics.service.runs_body import STATES

log = logging.getLogger(__name__)
WINDOW_S = 600
# Chunk sizes are part of the idempotency keys: fixed, so that no option of a
# later run can cut the same data differently and store it twice.
CHUNK_POINTS = 20_000
CHUNK_RUNS = 1_000
SEND_CHUNKS = 5
COMPACT_MIN = 1_000
OPEN_MARGIN_S = 300
SYSTEM_PREFIX = "sematic."
_KEY_PREFIX = "sematic-import:"
_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass
class Tally:
    read: int = 0
    stored: int = 0
    duplicate: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    deferred: int = 0


@dataclass
class Summary:
    runs: Tally = field(default_factory=Tally)
    points: Tally = field(default_factory=Tally)
    open_from: float | None = None
    interrupted: bool = False

    def lines(self) -> list[str]:
        out = []
        for what, t in (("runs", self.runs), ("points", self.points)):
            out.append(
                f"{what}: {t.read} read, {t.stored} stored, {t.duplicate} already stored "
                f"(an earlier import), {sum(t.skipped.values())} skipped"
            )
            out.extend(f"  skipped {n}: {reason}" for reason, n in sorted(t.skipped.items()))
        if self.points.deferred:
            start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.open_from or 0))
            out.append(
                f"  left for a later run {self.points.deferred}: points from {start} UTC on, in windows "
                "Sematic may still write to; re-run later, or pass --include-open once Sematic is stopped"
            )
        if self.interrupted:
            out.append(
                "interrupted: run the same command again to continue; stored chunks are not stored twice"
            )
        return out


class Progress:
    """Rows done, rate and ETA: a live line on a terminal, else a log line every 10 s."""

    def __init__(self, stream: TextIO | None = None, every_s: float | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._every = every_s if every_s is not None else (0.1 if self._tty else 10.0)
        self._what = ""
        self._total = 0
        self._done = 0
        self._start = self._last = time.monotonic()

    def begin(self, what: str, total: int) -> None:
        self._what, self._total, self._done = what, total, 0
        self._start = self._last = time.monotonic()

    def add(self, n: int) -> None:
        self._done += n
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._show(now)

    def _show(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self._done / elapsed
        line = f"{self._what}: {self._done:,}/{self._total:,} rows, {rate:,.0f} rows/s"
        if not final and rate > 0 and self._total > self._done:
            line += f", ETA {_clock((self._total - self._done) / rate)}"
        elif final:
            line += f", {_clock(elapsed)}"
        if self._tty:
            self._stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self._stream.flush()
        else:
            log.info("%s", line)

    def end(self) -> None:
        self._show(time.monotonic(), final=True)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _key(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\x00")
    return _KEY_PREFIX + digest.hexdigest()


def open_from(started: float) -> float:
    """Start of the first window Sematic may still write to."""
    return math.floor((started - OPEN_MARGIN_S) / WINDOW_S) * WINDOW_S


# -- runs ---------------------------------------------------------------------
def run_record(row: dict[str, Any]) -> dict[str, Any]:
    """Sematic's runs row -> a record of POST /api/v1/runs (epoch-second times)."""
    record: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value == "":
            continue
        record[column] = epoch(value) if column in RUN_TIMES else str(value).strip()
    return record


def _run_problem(record: dict[str, Any]) -> str | None:
    for column in ("id", "root_id", "function_path", "created_at", "updated_at"):
        if column not in record:
            return f"no {column}"
    if record.get("future_state") not in STATES:
        return f"unknown future_state {str(record.get('future_state'))[:40]!r}"
    return None


def import_runs(source: Source, sink: Sink, summary: Summary, progress: Progress, chunk_size: int) -> None:
    tally = summary.runs
    progress.begin("runs", source.count_runs())
    for rows in source.runs(chunk_size):
        tally.read += len(rows)
        records = []
        for row in rows:
            record = run_record(row)
            problem = _run_problem(record)
            if problem:
                tally.skipped[f"invalid run record ({problem})"] += 1
            else:
                records.append(record)
        if records:
            _post_runs(sink, records, tally)
        progress.add(len(rows))
    progress.end()


def _post_runs(sink: Sink, records: list[dict[str, Any]], tally: Tally, split: bool = True) -> None:
    body = _ENCODER.encode({"runs": records})
    status, answer = sink.post("/api/v1/runs", body, _key("runs", body))
    if status == 200:
        content = answer.get("content", {})
        if content.get("duplicate"):
            tally.duplicate += len(records)
        else:
            tally.stored += len(records)
        return
    if split and len(records) > 1:  # all or nothing: find the records it refuses
        for record in records:
            _post_runs(sink, [record], tally, split=False)
        return
    tally.skipped[f"refused by the service ({status}): {_reason(answer)}"] += len(records)


def _reason(answer: dict[str, Any]) -> str:
    text = str(answer.get("error") or answer.get("detail") or answer)
    # Messages name the index inside a request: drop it, so equal reasons count together.
    return text.split(": ", 1)[-1][:200] if text.startswith(("points", "runs", "labels")) else text[:200]


# -- points -------------------------------------------------------------------
def _label_value(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return msgspec.json.encode(value).decode()
    raise ValueError("a label value is not text")


def _labels(raw: object) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        raise ValueError("metric_labels is not a JSON object")
    if len(raw) > rules.MAX_LABELS:
        raise ValueError(f"more than {rules.MAX_LABELS} labels")
    labels = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not 0 < len(key) <= rules.MAX_LABEL_KEY:
            raise ValueError(f"a label key is not 1 to {rules.MAX_LABEL_KEY} characters")
        text = _label_value(value)
        if text is not None and len(text) > rules.MAX_LABEL_VALUE:
            raise ValueError(f"a label value is over {rules.MAX_LABEL_VALUE} characters")
        labels[key] = text
    return labels


# A point to send: (epoch seconds, value, name, metric type).
_Point = tuple[float, float, str, int]


# A metric_id's name, type and labels as canonical JSON, or why its points are skipped.
_Verdict = tuple[str, int, bytes] | str


def _verdict(metric: Metric | None) -> _Verdict:
    if metric is None:
        return "no metric_labels row for its metric_id"
    name = metric.name
    if name.startswith(SYSTEM_PREFIX):
        return "Sematic system metric (computed here from the runs)"
    if not name.strip() or len(name) > rules.MAX_NAME:
        return f"invalid metric name (empty or over {rules.MAX_NAME} characters)"
    if metric.metric_type not in rules.TYPE_NAMES:
        return f"invalid metric_type {metric.metric_type!r}"
    try:
        return name, int(metric.metric_type), _ENCODER.encode(_labels(metric.labels))
    except ValueError as exc:
        return f"invalid labels ({exc})"


def _wire_value(value: float) -> float | str:
    # JSON has no NaN or infinities: the service takes them as these strings.
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# A request: its label sets with their points, and the chunk it belongs to.
_Post = tuple[list[tuple[bytes, list[_Point]]], str]


class _Chunker:
    """Cuts the ordered points into chunks that depend on the data alone, and
    sends the requests of about ``SEND_CHUNKS * chunk_size`` points at once
    (one INSERT in the service's group commit).

    A label set with many points in a chunk goes in the compact form; the
    label sets with few (Sematic keeps one per run and metric) share one
    request in Sematic's form, where each point carries its labels."""

    def __init__(self, sink: Sink, tally: Tally, chunk_size: int) -> None:
        self._sink = sink
        self._tally = tally
        self._size = chunk_size
        self._window: int | None = None
        self._index = 0
        self._rows: list[tuple[_Point, bytes]] = []
        self._ready: list[_Post] = []
        self._ready_points = 0

    def add(self, row: _Point, labels_json: bytes) -> None:
        window = math.floor(row[0] / WINDOW_S)
        if window != self._window:
            self._cut()
            self._window, self._index = window, 0
        self._rows.append((row, labels_json))
        if len(self._rows) >= self._size:
            self._cut()

    def _cut(self) -> None:
        if not self._rows:
            return
        groups: dict[bytes, list[_Point]] = {}
        for row, labels_json in self._rows:
            groups.setdefault(labels_json, []).append(row)
        chunk = f"{self._window}/{self._index}"
        small = [(labels, rows) for labels, rows in groups.items() if len(rows) < COMPACT_MIN]
        self._ready += [
            ([(labels, rows)], chunk) for labels, rows in groups.items() if len(rows) >= COMPACT_MIN
        ]
        if small:
            self._ready.append((small, chunk))
        self._ready_points += len(self._rows)
        self._index += 1
        self._rows = []
        if self._ready_points >= self._size * SEND_CHUNKS:
            self._send()

    def finish(self) -> None:
        self._cut()
        self._send()

    def _send(self) -> None:
        ready, self._ready, self._ready_points = self._ready, [], 0
        if not ready:
            return
        requests = [_request(*post) for post in ready]
        for post, (status, answer) in zip(ready, self._sink.post_many(requests), strict=True):
            self._account(post, status, answer)

    def _account(self, post: _Post, status: int, answer: dict[str, Any]) -> None:
        groups, chunk = post
        n = sum(len(rows) for _, rows in groups)
        if status == 200:
            if answer.get("content", {}).get("duplicate"):
                self._tally.duplicate += n
            else:
                self._tally.stored += n
            return
        # All or nothing: split to keep what the service takes, by label set, then by name.
        parts: list[_Post] = []
        if len(groups) > 1:
            parts = [([group], f"{chunk}/{i}") for i, group in enumerate(groups)]
        elif len(names := sorted({r[2] for r in groups[0][1]})) > 1:
            labels, rows = groups[0]
            parts = [([(labels, [r for r in rows if r[2] == name])], f"{chunk}/{name}") for name in names]
        if not parts:
            self._tally.skipped[f"refused by the service ({status}): {_reason(answer)}"] += n
        for part in parts:
            self._account(part, *self._sink.post(*_request(*part)))


def _request(groups: list[tuple[bytes, list[_Point]]], chunk: str) -> tuple[str, bytes, str]:
    if len(groups) == 1:
        labels_json, rows = groups[0]
        points = {
            "name": [r[2] for r in rows],
            "value": [_wire_value(r[1]) for r in rows],
            "metric_type": [r[3] for r in rows],
            "metric_time": [r[0] for r in rows],
        }
        body = b'{"labels":' + labels_json + b',"points":' + _ENCODER.encode(points) + b"}"
    else:
        body = _ENCODER.encode(
            {
                "metric_points": [
                    {
                        "name": r[2],
                        "value": _wire_value(r[1]),
                        "metric_type": r[3],
                        "metric_time": r[0],
                        "labels": raw,
                    }
                    for labels_json, rows in groups
                    for raw in (msgspec.Raw(labels_json),)
                    for r in rows
                ]
            }
        )
    return "/api/v1/metrics", body, _key("points", chunk, body)


def import_points(
    source: Source,
    sink: Sink,
    summary: Summary,
    progress: Progress,
    chunk_size: int,
    until: float = FAR_FUTURE,
) -> None:
    tally = summary.points
    before, total = source.count_points(until)
    tally.deferred = total - before
    progress.begin("points", before)
    chunker = _Chunker(sink, tally, chunk_size)
    verdicts: dict[str, _Verdict] = {}
    outside = "metric_time outside 1900-2299"
    for rows in source.points(min(chunk_size, 20_000), until):
        tally.read += len(rows)
        missing = sorted({r[2] for r in rows} - verdicts.keys())
        if missing:
            if len(verdicts) + len(missing) > 100_000:  # bounded memory
                verdicts.clear()
                missing = sorted({r[2] for r in rows})
            for i in range(0, len(missing), 1000):
                found = source.metrics(missing[i : i + 1000])
                verdicts.update((m, _verdict(found.get(m))) for m in missing[i : i + 1000])
        for time_s, value, metric_id in rows:
            verdict = verdicts[metric_id]
            if isinstance(verdict, str):
                tally.skipped[verdict] += 1
            elif not rules.MIN_TIME <= time_s < rules.MAX_TIME:
                tally.skipped[outside] += 1
            else:
                chunker.add((time_s, value, verdict[0], verdict[1]), verdict[2])
        progress.add(len(rows))
    chunker.finish()
    progress.end()


def import_sematic(
    source: Source,
    sink: Sink,
    *,
    chunk_size: int = CHUNK_POINTS,
    include_open: bool = False,
    progress: Progress | None = None,
    started: float | None = None,
) -> Summary:
    """Copy runs, then points; returns the summary (also when interrupted).
    ``chunk_size`` other than the default is for tests: it changes the keys."""
    if chunk_size < 1:
        raise SematicMetricsError(f"--chunk-size {chunk_size}: give at least 1")
    progress = progress or Progress()
    summary = Summary()
    summary.open_from = None if include_open else open_from(time.time() if started is None else started)
    try:
        import_runs(source, sink, summary, progress, CHUNK_RUNS)
        import_points(source, sink, summary, progress, chunk_size, summary.open_from or FAR_FUTURE)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def report(summary: Summary, stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stdout
    out.write("\n".join(summary.lines()) + "\n")
    out.flush()


def main(
    db: str,
    *,
    url: str | None,
    settings: Settings,
    api_key: str = "",
    include_open: bool = False,
    timeout: float = 120.0,
) -> int:
    """The command: read ``db``, send to the service at ``url`` or, when url is
    None, straight into the store of ``settings``; print the summary."""
    sink: Sink
    source = open_source(db)
    try:
        sink = DirectSink(settings) if url is None else HttpSink(url, api_key, timeout)
        try:
            log.info("importing %s database into %s", source.kind, sink.where)
            summary = import_sematic(source, sink, include_open=include_open)
        finally:
            sink.close()
    finally:
        source.close()
    report(summary)
    return 130 if summary.interrupted else 0
