"""Upstream mode: copy the run records of forwarded Sematic calls into ``runs``.

A copy is queued once the Sematic server answered the forwarded call with a
2xx, and stored by one background task in arrival order (``runs`` keeps the
last inserted version on an ``updated_at`` tie, and Sematic's clients send
one ``updated_at`` for every version of a run). A copy that fails is retried
with backoff under the same idempotency key, so it is stored once. The
backlog lives in memory: bounded, visible in ``health()`` and the logs, and
lost if the process dies (a re-sent run, or ``import-sematic``, repairs it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
import msgspec
from starlette.concurrency import run_in_threadpool

from sematic_metrics.errors import SematicMetricsError
from sematic_metrics.service.runs_body import RunRecord, RunsBody, to_batch
from sematic_metrics.service.runs_writer import RunsWriter

log = logging.getLogger(__name__)
MAX_BACKLOG = 10_000
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
DRAIN_S = 5.0
# The headers that carry the caller's identity to Sematic when a copy reads runs back.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "cookie"})
_RECORD_FIELDS = tuple(RunRecord.__struct_fields__)
_REQUIRED = ("id", "root_id", "function_path", "future_state", "created_at", "updated_at")


class _RetryableError(Exception):
    """The copy may succeed later: the Sematic server or the store did not answer."""


@dataclass
class CopyJob:
    """Runs to copy: records from a request body (``records``), runs to read
    back from Sematic by id (``fetch``), or every run of root runs (``roots``)."""

    kind: Literal["records", "fetch", "roots"]
    items: list[Any]
    headers: list[tuple[str, str]] = field(default_factory=list)
    key: str = field(default_factory=lambda: f"upstream-{uuid.uuid4().hex}")
    attempts: int = 0


def record_of(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """Sematic's run JSON -> our run record fields, or None when it is not a run."""
    if not isinstance(run, Mapping) or any(not run.get(name) for name in _REQUIRED):
        return None
    return {name: run.get(name) for name in _RECORD_FIELDS}


def records_of(runs: Iterable[Any]) -> list[dict[str, Any]]:
    found = [record_of(run) for run in runs]
    return [r for r in found if r is not None]


class RunCopier:
    """The queue of run copies and the task that stores them."""

    def __init__(self, upstream: str, writer: RunsWriter, client: httpx.AsyncClient) -> None:
        self.upstream = upstream
        self._writer = writer
        self._client = client
        self._queue: collections.deque[CopyJob] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.copied = 0
        self.retries = 0
        self.rejected = 0
        self.dropped = 0
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "copied_runs": self.copied,
            "retries": self.retries,
            "rejected_runs": self.rejected,
            "dropped_copies": self.dropped,
            "last_error": self.last_error,
        }

    def enqueue(self, job: CopyJob) -> None:
        if not job.items:
            return
        if len(self._queue) >= MAX_BACKLOG:
            lost = self._queue.popleft()
            self.dropped += 1
            log.error(
                "run copies: backlog over %d; dropped the oldest copy (%d %s) so newer states are kept",
                MAX_BACKLOG,
                len(lost.items),
                lost.kind,
            )
        self._queue.append(job)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sematic-run-copies")

    async def stop(self) -> None:
        if self._task is None:
            return
        deadline = time.monotonic() + DRAIN_S
        while self._queue and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._queue:
            log.error("run copies: %d copies not stored at shutdown", len(self._queue))

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = self._queue[0]
            try:
                await self._copy(job)
            except _RetryableError as exc:
                job.attempts += 1
                self.retries += 1
                self.last_error = str(exc)
                delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(job.attempts - 1, 10))
                log.warning(
                    "run copies: %s; retry %d in %.1f s (backlog %d)", exc, job.attempts, delay, self.backlog
                )
                await asyncio.sleep(delay)
                continue
            except Exception:  # a bug must not stop the copies behind it
                log.exception("run copies: dropped a copy that cannot be stored")
                self.rejected += len(job.items)
            if self._queue and self._queue[0] is job:
                self._queue.popleft()

    async def _copy(self, job: CopyJob) -> None:
        if job.kind == "records":
            records = list(job.items)
        elif job.kind == "fetch":
            records = []
            for run_id in job.items:
                run = await self._get_json(f"/api/v1/runs/{quote(str(run_id), safe='')}", job.headers)
                found = record_of(run.get("content") or {}) if run is not None else None
                if found is not None:
                    records.append(found)
        else:
            records = []
            for root_id in job.items:
                path = f"/api/v1/runs/{quote(str(root_id), safe='')}/graph?root=1"
                graph = await self._get_json(path, job.headers)
                if graph is not None:
                    records += records_of(graph.get("runs") or [])
        if records:
            await self._store(records, job.key)

    async def _get_json(self, path: str, headers: list[tuple[str, str]]) -> dict[str, Any] | None:
        url = self.upstream + path
        try:
            response = await self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise _RetryableError(f"the Sematic server at {self.upstream} did not answer: {exc!r}") from None
        if response.status_code == 404:
            log.warning("run copies: %s answered 404; nothing to copy", url)
            return None
        if response.status_code != 200:
            raise _RetryableError(f"the Sematic server answered {response.status_code} to GET {url}")
        try:
            body = response.json()
        except ValueError:
            raise _RetryableError(f"the Sematic server answered GET {url} with something not JSON") from None
        return body if isinstance(body, dict) else None

    async def _store(self, records: list[dict[str, Any]], key: str) -> None:
        try:
            body = msgspec.convert({"runs": records}, RunsBody)
            batch = to_batch(body, key, None)
        except (msgspec.ValidationError, SematicMetricsError) as exc:
            self.rejected += len(records)
            log.error("run copies: %d Sematic runs rejected: %s", len(records), exc)
            return
        try:
            result = await run_in_threadpool(self._writer.write, batch)
        except SematicMetricsError as exc:
            if exc.status_code < 500:  # a conflict: retrying stores nothing either
                self.rejected += len(records)
                log.error("run copies: %d Sematic runs rejected: %s", len(records), exc)
                return
            raise _RetryableError(f"the store did not take {len(records)} runs: {exc}") from None
        except Exception as exc:
            raise _RetryableError(f"the store did not take {len(records)} runs: {exc!r}") from None
        self.copied += 0 if result.duplicate else result.stored
        self.last_error = None
