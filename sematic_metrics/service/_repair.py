"""Set aside a part the embedded engine reports as corrupted, and keep serving.

When the disk fills while an INSERT writes, chDB can commit a part whose marks
file is empty; every later read of that part fails with CORRUPTED_DATA ("Empty
marks file") until the part is detached or the engine restarts. Such a part
comes from an INSERT that failed, so the client was never told it is stored
and will retry: detaching it loses nothing acknowledged. The part is detached,
not dropped (``system.detached_parts`` lists it, ``ALTER TABLE ... ATTACH
PART`` brings it back), after a read of that part alone confirms the fault.

Only a part an INSERT wrote (level 0) is set aside: a merged part holds
points that were acknowledged, so a corrupted merge result is left in place
and its reads keep failing (503) until an operator repairs it.

A metric_points part set aside may hold batches that ingest_batches already
recorded (its materialized view ran in the same INSERT); those keys are
forgotten, so the client's retry stores the batch again instead of being told
it is a duplicate. Only keys recorded since the part was written, with no
point left in metric_points, are forgotten.

The store calls ``set_aside`` from its query error path and runs the query
once more when it returns True. Embedded engine only: a server keeps its own
broken-part handling (and replicas).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from sematic_metrics.service.sqlfiles import q

log = logging.getLogger(__name__)
CORRUPTED_DATA = 246
# "... while reading from part /data/store/abc/<uuid>/all_2_2_0/ in table db.metric_points (<uuid>) ..."
_PART = re.compile(
    r"from part (?P<path>/\S*?)(?P<part>[A-Za-z0-9_-]+)/? "
    r"in table (?P<database>[^\s.`]+)\.(?P<table>[^\s(`]+)"
)
# Batches recorded this long before the part was written may share its INSERT.
_SLACK = dt.timedelta(minutes=5)


def broken_part(exc: BaseException) -> tuple[str, str, str] | None:
    """(database, table, part) of a CORRUPTED_DATA error naming one part, else None."""
    text = str(exc)
    if getattr(exc, "code", None) != CORRUPTED_DATA and "(CORRUPTED_DATA)" not in text:
        return None
    found = _PART.search(text)
    if found is None:
        return None
    return found["database"], found["table"], found["part"]


def set_aside(client: Any, exc: BaseException) -> bool:
    """Detach the part ``exc`` names if reading it alone fails too; True when
    a part was detached (the failed query may then run again). ``client`` is
    a clickhouse-connect client with write rights, used by one thread."""
    where = broken_part(exc)
    if where is None:
        return False
    database, table, part = where
    params = {"database": database, "table": table, "part": part}
    levels = client.query(q("repair_part_level"), parameters=params).result_rows
    if levels != [(0,)]:
        log.error(
            "part %s of %s.%s is corrupted (%s); it is not an INSERT's own part (levels %s), so it "
            "may hold acknowledged points and is left in place: check the disk, then CHECK TABLE",
            part,
            database,
            table,
            str(exc).splitlines()[0][:300],
            levels,
        )
        return False
    try:
        client.query(q("repair_read_part"), parameters=params)
    except ClickHouseError as again:
        if broken_part(again) != where:
            return False
    else:
        return False  # the part reads: the fault was elsewhere
    try:
        client.command(q("repair_detach_part"), parameters=params)
    except ClickHouseError as failed:
        if "NO_SUCH_DATA_PART" not in str(failed):  # another thread set it aside first
            log.error("cannot detach corrupted part %s of %s.%s: %s", part, database, table, failed)
            return False
    log.error(
        "part %s of %s.%s was corrupted (%s) and is detached: it came from a failed INSERT, which "
        "its client retries. Inspect it in system.detached_parts; ALTER TABLE ... DROP DETACHED "
        "PART removes it.",
        part,
        database,
        table,
        str(exc).splitlines()[0][:300],
    )
    if table == "metric_points":
        _forget_batches(client, database, part)
    return True


def _forget_batches(client: Any, database: str, part: str) -> None:
    params = {"database": database, "table": "metric_points", "part": part}
    rows = client.query(q("repair_detached_at"), parameters=params).result_rows
    written = rows[0][0] if rows and rows[0][0] is not None else None
    if not isinstance(written, dt.datetime) or written.year < 2000:
        written = dt.datetime.now(dt.UTC)
    since = written.replace(tzinfo=None) - _SLACK
    try:
        client.command(q("repair_forget_batches"), parameters={"database": database, "since": since})
    except ClickHouseError as failed:
        log.error("cannot forget the idempotency keys of detached part %s: %s", part, failed)
