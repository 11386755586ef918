"""Run records: the lifecycle of the runs ``run()`` opens, sent to ``POST /api/v1/runs``.

At enter a SCHEDULED version (created_at = started_at = now); at exit one
terminal version: RESOLVED, FAILED, NESTED_FAILED (the exception that leaves
the run already failed a run nested in it), or CANCELED (KeyboardInterrupt, a
cancelled task, SIGTERM). Every version is a whole record, so the latest alone
describes the run; ``updated_at`` strictly increases within the process.

Nothing is recorded for a run without a function_path (it names the
pipeline), with ``record=False``, with ``configure(record_runs=False)``, or
inside a Sematic function (Sematic records its own runs). Failures here are
logged, never raised into the user's code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import msgspec

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.rules import MAX_ID, MAX_PATH, MAX_TEXT, RUN_STATES, TERMINAL_STATES
from sematic_metrics.wire import RunRecord

if TYPE_CHECKING:
    from sematic_metrics.sdk._sender import Client
    from sematic_metrics.sdk.context import RunInfo

log = logging.getLogger("sematic_metrics.sdk")

MAX_NAME = MAX_TEXT  # a longer display name is cut
# Set on an exception that failed a run: (root_id, run_id) of that run.
_FAILED_MARK = "_sematic_metrics_failed_run"
_CHAIN_DEPTH = 16

# RLocks: the SIGTERM handler runs in the main thread and may interrupt it
# while it holds one of them.
_clock_lock = threading.RLock()
_last_us = 0
_warned: set[str] = set()


class OpenRun:
    """A recorded run between its enter and its exit."""

    __slots__ = ("canceled", "pid", "record")

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.pid = os.getpid()
        self.canceled = False


# id(OpenRun) -> OpenRun, for the runs of this process still open.
_open: dict[int, OpenRun] = {}


def now() -> float:
    """Epoch seconds in whole microseconds, strictly increasing within the process,
    so a later version of a run always has a later updated_at (even within one
    microsecond, or when the wall clock steps back)."""
    global _last_us
    with _clock_lock:
        micros = time.time_ns() // 1000
        if micros <= _last_us:
            micros = _last_us + 1
        _last_us = micros
    # micros / 1e6 is the double nearest to it, and the server's round(s * 1e6)
    # gives micros back: created_at stays equal across versions.
    return micros / 1e6


def begin(info: RunInfo, name: str) -> OpenRun | None:
    """Record the start of a run; None when this run is not recorded."""
    try:
        if not info.function_path:
            if "no-path" not in _warned:
                _warned.add("no-path")
                log.info(
                    "sematic-metrics: runs without a function_path are not recorded (it names the pipeline)"
                )
            return None
        problem = _unfit(info)
        if problem is not None:
            _warn_once(problem, "sematic-metrics: run %s is not recorded: %s", info.run_id[:80], problem)
            return None
        client = _client()
        if client is None:
            return None
        at = now()
        record = RunRecord(
            id=info.run_id,
            root_id=info.root_id,
            function_path=info.function_path,
            future_state="SCHEDULED",
            created_at=at,
            updated_at=at,
            parent_id=info.parent_id,
            name=name[:MAX_NAME],
            started_at=at,
        )
        opened = OpenRun(record)
        _open[id(opened)] = opened
        client.add_run(record)
        return opened
    except Exception as exc:  # never into the user's code
        _warn_once(type(exc).__name__, "sematic-metrics: could not record run %s: %s", info.run_id[:80], exc)
        return None


def end(opened: OpenRun | None, exc: BaseException | None) -> None:
    """Record how a run ended: the exception that left it, or None."""
    if opened is None or opened.pid != os.getpid():  # another process's run, copied by fork
        return
    _open.pop(id(opened), None)
    try:
        if opened.canceled and exc is not None:  # SIGTERM recorded it CANCELED already
            return
        state = _outcome(opened.record, exc)
        client = _client()
        if client is not None:
            client.add_run(_version(opened.record, state))
    except Exception as err:
        _warn_once(type(err).__name__, "sematic-metrics: could not record run %s: %s", opened.record.id, err)


def cancel_open() -> int:
    """Record every run still open in this process as CANCELED (SIGTERM, exit); returns how many."""
    pid = os.getpid()
    canceled = 0
    client: Client | None = None
    for opened in list(_open.values()):
        if opened.pid != pid or opened.canceled:
            continue
        opened.canceled = True
        try:
            client = client or _client()
            if client is not None:
                client.add_run(_version(opened.record, "CANCELED"))
                canceled += 1
        except Exception as exc:
            _warn_once(
                type(exc).__name__, "sematic-metrics: could not record run %s: %s", opened.record.id, exc
            )
    return canceled


def after_fork_in_child() -> None:
    """A forked child's open runs are its parent's: the parent records them."""
    global _clock_lock
    _clock_lock = threading.RLock()
    _open.clear()


def _client() -> Client | None:
    from sematic_metrics.sdk import metrics

    return metrics.run_client()


def _version(record: RunRecord, state: str) -> RunRecord:
    at = now()
    return msgspec.structs.replace(
        record,
        future_state=state,
        updated_at=at,
        ended_at=at,
        resolved_at=at if state == "RESOLVED" else None,
        failed_at=at if state in ("FAILED", "NESTED_FAILED") else None,
    )


def _outcome(record: RunRecord, exc: BaseException | None) -> str:
    if exc is None:
        return "RESOLVED"
    if isinstance(exc, SystemExit):
        return "RESOLVED" if exc.code in (None, 0) else "FAILED"
    if isinstance(exc, KeyboardInterrupt | GeneratorExit) or type(exc).__name__ == "CancelledError":
        return "CANCELED"
    if _failed_nested(exc, record):
        return "NESTED_FAILED"
    with contextlib.suppress(Exception):  # a type that takes no attributes: parents see FAILED
        setattr(exc, _FAILED_MARK, (record.root_id, record.id))
    return "FAILED"


def _failed_nested(exc: BaseException, record: RunRecord) -> bool:
    """Whether the exception, or one it was raised from, failed another run of this root run."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < _CHAIN_DEPTH and not any(current is s for s in seen):
        mark = getattr(current, _FAILED_MARK, None)
        if isinstance(mark, tuple) and mark[0] == record.root_id and mark[1] != record.id:
            return True
        seen.append(current)
        current = current.__cause__ or current.__context__
    return False


def _unfit(info: RunInfo) -> str | None:
    for field, value, limit in (
        ("run_id", info.run_id, MAX_ID),
        ("root_id", info.root_id, MAX_ID),
        ("parent_id", info.parent_id or "", MAX_ID),
        ("function_path", info.function_path, MAX_PATH),
    ):
        if len(value) > limit:
            return f"{field} has {len(value)} characters; the server takes at most {limit}"
    return None


def _warn_once(key: str, message: str, *args: object) -> None:
    if key in _warned:
        log.debug(message, *args)
        return
    if len(_warned) < 100:
        _warned.add(key)
    log.warning(message, *args)


def log_run(
    run_id: str,
    function_path: str,
    state: str,
    created_at: float,
    *,
    root_id: str | None = None,
    parent_id: str | None = None,
    name: str | None = None,
    started_at: float | None = None,
    ended_at: float | None = None,
    original_run_id: str | None = None,
) -> None:
    """Record a run that ran elsewhere or earlier (backfills, imports, demos).

    ``run()`` records the runs it opens by itself; this sends one version of a
    run through the same background sender. Times are epoch seconds; a
    terminal ``state`` needs ``ended_at``, which also becomes resolved_at
    (RESOLVED) or failed_at (FAILED, NESTED_FAILED). Bad input raises
    InvalidInputError here; delivery failures never raise (see ``stats()``).
    """
    if state not in RUN_STATES:
        raise InvalidInputError(f"state: {state!r} is not one of {', '.join(RUN_STATES)}")
    for field, value, limit in (("run_id", run_id, MAX_ID), ("function_path", function_path, MAX_PATH)):
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidInputError(f"{field}: must be a non-empty string of at most {limit} characters")
    terminal = state in TERMINAL_STATES
    if terminal and ended_at is None:
        raise InvalidInputError(f"ended_at: a {state} run needs the time it ended")
    record = RunRecord(
        id=run_id,
        root_id=root_id or run_id,
        function_path=function_path,
        future_state=state,
        created_at=float(created_at),
        updated_at=float(ended_at if terminal and ended_at is not None else started_at or created_at),
        parent_id=parent_id,
        name=None if name is None else name[:MAX_NAME],
        started_at=started_at,
        resolved_at=ended_at if state == "RESOLVED" else None,
        failed_at=ended_at if state in ("FAILED", "NESTED_FAILED") else None,
        ended_at=ended_at if terminal else None,
        original_run_id=original_run_id,
    )
    from sematic_metrics.sdk import metrics

    client = metrics.client()
    client.add_run(record)
