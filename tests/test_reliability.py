"""Acknowledged means stored, stored means stored once: crashes, lost
responses, load and a full disk, against real `sematic-metrics serve`
processes. SEMATIC_METRICS_SOAK=1 (make soak) runs the long versions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sematic_metrics.errors import StoreError
from sematic_metrics.service import _tiers
from sematic_metrics.service.catalog import Catalog
from sematic_metrics.service.points_body import decode, to_table
from sematic_metrics.service.points_writer import Writer
from sematic_metrics.service.store import Store
from sematic_metrics.wire import IngestResult
from tests._support import (
    SOAK,
    DropProxy,
    LiveServer,
    ServerProcess,
    compact_batch,
    free_port,
    percentile,
    query_data_dir,
    wait_until,
)

BATCHES_SQL = (
    "SELECT batch_id, count(), uniqExact(run_id), any(run_id) "
    "FROM sematic_metrics.metric_points GROUP BY batch_id"
)
KNOWN_SQL = "SELECT batch_id, max(points) FROM sematic_metrics.ingest_batches GROUP BY batch_id"


def batch_size(client: int, seq: int) -> int:
    # Varied sizes, so a partial batch cannot pass for a whole one.
    return 17 + (client * 31 + seq * 53) % 240


@dataclass
class Ledger:
    """What clients sent and what the server acknowledged."""

    sent: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, outcome: str, latency: float | None = None) -> None:
        with self.lock:
            self.statuses[outcome] += 1
            if latency is not None:
                self.latencies.append(latency)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.isdigit() and int(s) >= 500)


def send_until_acked(http: httpx.Client, ledger: Ledger, key: str, n: int, stop: threading.Event) -> bool:
    """Post one batch, retrying the same Idempotency-Key like an SDK would."""
    with ledger.lock:
        ledger.sent[key] = n
    body = compact_batch(key, n)
    while True:
        started = time.perf_counter()
        try:
            response = http.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            ledger.note(type(exc).__name__)
        else:
            ledger.note(str(response.status_code), time.perf_counter() - started)
            if response.is_success:
                content = response.json()["content"]
                assert content["stored"] == n
                if content["duplicate"]:
                    ledger.note("duplicate")
                with ledger.lock:
                    ledger.acked[key] = n
                return True
            if response.status_code != 503:
                return False
            assert response.json()["error"], "a 503 must carry a message"
        if stop.is_set():
            return False
        time.sleep(0.05)


def stream(url: str, ledger: Ledger, client: int, stop: threading.Event, prefix: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        seq = 0
        while not stop.is_set():
            send_until_acked(http, ledger, f"{prefix}-{client}-{seq}", batch_size(client, seq), stop)
            seq += 1


@contextlib.contextmanager
def clients(url: str, ledger: Ledger, count: int, prefix: str) -> Iterator[threading.Event]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=stream, args=(url, ledger, c, stop, prefix), daemon=True)
        for c in range(count)
    ]
    for t in threads:
        t.start()
    try:
        yield stop
    finally:
        stop.set()
        for t in threads:
            t.join(120)


def wait_for_acks(ledger: Ledger, at_least: int, timeout_s: float = 60) -> None:
    wait_until(
        lambda: len(ledger.acked) >= at_least,
        timeout_s,
        f"{at_least} batches acknowledged (outcomes so far: {ledger.statuses})",
    )


def outcomes(ledger: Ledger) -> int:
    with ledger.lock:
        return sum(ledger.statuses.values())


def outcomes_reach(ledger: Ledger, n: int) -> Callable[[], bool]:
    return lambda: outcomes(ledger) >= n


def check_exactly_once(data_dir: Path, ledger: Ledger) -> dict[str, int]:
    """Every acknowledged batch is stored whole, once; nothing is stored in part."""
    rows = query_data_dir(data_dir, BATCHES_SQL)
    for key, _, runs, run_id in rows:
        assert (runs, run_id) == (1, key), f"batch {key} holds points of another batch"
    stored = {str(key): int(count) for key, count, _, _ in rows}
    partial = {k: (c, ledger.sent.get(k)) for k, c in stored.items() if c != ledger.sent.get(k)}
    assert not partial, f"batches stored in part or more than once (stored, sent): {partial}"
    missing = {k: n for k, n in ledger.acked.items() if k not in stored}
    assert not missing, f"acknowledged batches not stored: {missing}"
    known = {str(k): int(p) for k, p in query_data_dir(data_dir, KNOWN_SQL)}
    assert known == stored, "ingest_batches disagrees with metric_points"
    return stored


def test_kill_9_while_streaming_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir)
    ledger = Ledger()
    cycles = 5 if SOAK else 2
    with server, clients(server.url, ledger, 8, "crash"):
        for cycle in range(cycles):
            wait_for_acks(ledger, len(ledger.acked) + 40)
            server.kill()
            # The clients meet the dead port (8 more failed attempts) before the restart.
            wait_until(outcomes_reach(ledger, outcomes(ledger) + 8), what="the clients hit the dead port")
            server.start()
            print(f"cycle {cycle}: killed with {len(ledger.acked)} batches acknowledged")
        wait_for_acks(ledger, len(ledger.acked) + 40)
    server.stop()
    stored = check_exactly_once(data_dir, ledger)
    unacked_stored = len(stored.keys() - ledger.acked.keys())
    print(
        f"\ncrash: {cycles} x kill -9 under 8 clients, {len(ledger.acked)} batches / "
        f"{sum(ledger.acked.values())} points acknowledged, {len(stored)} stored "
        f"({unacked_stored} unacknowledged but whole), outcomes {dict(ledger.statuses)}"
    )
    assert ledger.server_errors == 0, ledger.statuses
    assert any(not s.isdigit() for s in ledger.statuses), "the kill never hit a client"


@pytest.mark.backends
def test_retry_after_lost_response_adds_nothing(live: Any) -> None:
    with DropProxy(live.port) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as http:
        body = compact_batch("lost-1", 25)
        proxy.drop_next(1)
        with pytest.raises(httpx.TransportError):
            http.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "lost-1"})
        rows = live.service.store.query(BATCHES_SQL.replace("sematic_metrics.", ""))
        assert [(r[0], r[1]) for r in rows] == [("lost-1", 25)], "the server stored the batch"
        retry = http.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "lost-1"})
        assert retry.status_code == 200
        assert retry.json() == {"content": {"stored": 25, "duplicate": True}}
        rows = live.service.store.query(BATCHES_SQL.replace("sematic_metrics.", ""))
        assert [(r[0], r[1]) for r in rows] == [("lost-1", 25)]


@pytest.mark.backends
def test_concurrent_retries_after_lost_responses_store_each_batch_once(live: Any) -> None:
    ledger = Ledger()
    stop = threading.Event()
    with DropProxy(live.port) as proxy:
        proxy.drop_next(40)

        def run(client: int) -> None:
            with httpx.Client(base_url=proxy.url, timeout=30) as http:
                for seq in range(15):
                    assert send_until_acked(
                        http, ledger, f"lost-{client}-{seq}", batch_size(client, seq), stop
                    )

        threads = [threading.Thread(target=run, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert proxy.dropped == 40
    rows = live.service.store.query(BATCHES_SQL.replace("sematic_metrics.", ""))
    stored = {str(r[0]): int(r[1]) for r in rows}
    assert stored == ledger.sent == ledger.acked
    assert ledger.statuses["200"] == 90


def test_load_32_clients_no_5xx_exact_counts(tmp_path: Path) -> None:
    batches = 6000 if SOAK else 600
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir)
    ledger = Ledger()
    with server:
        started = time.monotonic()
        with clients(server.url, ledger, 32, "load"):
            wait_for_acks(ledger, batches, timeout_s=600)
        seconds = time.monotonic() - started
        series = httpx.get(
            server.url + "/api/v1/metrics/points", params={"group_by": "run_id"}, timeout=60
        ).json()["content"]["series"]
    server.stop()
    assert {labels[0]: int(value) for value, labels in series} == ledger.acked
    check_exactly_once(data_dir, ledger)
    points = sum(ledger.acked.values())
    lat = ledger.latencies
    print(
        f"\nload: 32 clients x {seconds:.1f} s: {len(ledger.acked)} batches, {points} points "
        f"({points / seconds:.0f} points/s), latency p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(lat, 0.99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms, "
        f"outcomes {dict(ledger.statuses)}"
    )
    assert ledger.server_errors == 0, ledger.statuses
    assert set(ledger.statuses) == {"200"}, ledger.statuses


# -- store unavailable -------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs to fill up (needs root, or skip)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("filling a disk needs a tmpfs mount, which needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def fill(directory: Path, slack: int) -> Path:
    """Fill the disk, then give back ``slack`` bytes for writes to run into."""
    filler = directory / f"filler-{uuid.uuid4().hex}"
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * (1 << 16))
            f.flush()
    if slack:
        os.truncate(filler, max(0, filler.stat().st_size - slack))
    return filler


@pytest.mark.parametrize("slack", [0, 3 << 20], ids=["no-room-to-reserve", "runs-out-mid-write"])
def test_full_disk_answers_503_then_recovers_losing_nothing(
    small_disk: Path, tmp_path: Path, slack: int
) -> None:
    data_dir = small_disk / "data"
    server = ServerProcess(data_dir)
    server.log_path = tmp_path / "server.log"
    ledger = Ledger()
    with server:
        with clients(server.url, ledger, 4, "disk-a"):
            wait_for_acks(ledger, 20)
            if slack:  # filled under running INSERTs: some run out of space mid-write
                filler = fill(small_disk, slack)
        if not slack:  # filled between requests: every INSERT is refused before it writes
            filler = fill(small_disk, 0)
        with clients(server.url, ledger, 4, "disk-b"):
            wait_until(
                lambda: ledger.statuses["503"] >= 10 or not server.alive(),
                30,
                f"10 answers 503 while the disk is full ({ledger.statuses})",
            )
            assert server.alive(), server.log_tail()
            full_acked = len(ledger.acked)
            refused = ledger.statuses["503"]
            # The clients keep trying: 40 (400 soaking) more refusals, and no acknowledgement.
            more = 400 if SOAK else 40
            wait_until(lambda: ledger.statuses["503"] >= refused + more, 120, f"{more} more answers 503")
            if not slack:
                assert len(ledger.acked) == full_acked, "acknowledged while the disk is full"
            health = httpx.get(server.url + "/healthz", timeout=30)
            assert health.status_code in (200, 503)
            filler.unlink()
            wait_for_acks(ledger, full_acked + 40)
        assert server.alive(), server.log_tail()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            # Whatever was cut off when the clients stopped is sent again.
            for key in ledger.sent.keys() - ledger.acked.keys():
                assert send_until_acked(http, ledger, key, ledger.sent[key], threading.Event())
    server.stop()
    stored = check_exactly_once(data_dir, ledger)
    assert stored.keys() == ledger.acked.keys() == ledger.sent.keys()
    print(
        f"\nfull disk: {len(ledger.acked)} batches / {sum(ledger.acked.values())} points acknowledged "
        f"and stored once, outcomes {dict(ledger.statuses)}"
    )
    assert ledger.server_errors == ledger.statuses["503"], ledger.statuses


def break_newest_part(store: Store, table: str) -> str:
    """Empty the marks files of the table's newest part, as chDB sometimes leaves
    a part written while the disk filled up; returns the part's name."""
    [(name, path)] = store.query(
        "SELECT name, path FROM system.parts WHERE database = currentDatabase() AND table = {t:String} "
        "AND active ORDER BY max_block_number DESC LIMIT 1",
        {"t": table},
    )
    marks = [f for f in Path(path).iterdir() if ".mrk" in f.name or ".cmrk" in f.name]
    assert marks, f"no marks file in {path}"
    for f in marks:
        f.write_bytes(b"")
    return str(name)


def test_a_part_left_corrupted_by_a_failed_insert_is_set_aside_and_its_batch_stored_on_retry(
    live: LiveServer, client: httpx.Client
) -> None:
    """The embedded engine's fault behind a disk filling mid-write, made on purpose."""
    store = live.service.store
    kept = client.post("/api/v1/metrics", json=compact_batch("kept", 5), headers={"Idempotency-Key": "kept"})
    assert kept.json() == {"content": {"stored": 5, "duplicate": False}}
    # An INSERT that wrote its parts (through the views too) but was never acknowledged.
    store.insert_arrow("metric_points", ingest_table("lost", 7), {"insert_deduplication_token": "lost"})
    broken = break_newest_part(store, "metric_points")

    series = client.get("/api/v1/metrics/points", params={"group_by": "run_id"})
    assert series.status_code == 200, series.text
    assert series.json()["content"]["series"] == [[5.0, ["kept"]]], "acknowledged points are served"
    detached = store.query(
        "SELECT name FROM system.detached_parts "
        "WHERE database = currentDatabase() AND table = 'metric_points'"
    )
    assert detached == [(broken,)]

    retry = client.post("/api/v1/metrics", json=compact_batch("lost", 7), headers={"Idempotency-Key": "lost"})
    assert retry.json() == {"content": {"stored": 7, "duplicate": False}}, (
        "the retry was taken for a duplicate"
    )
    series = client.get("/api/v1/metrics/points", params={"group_by": "run_id"})
    assert sorted(series.json()["content"]["series"]) == [[5.0, ["kept"]], [7.0, ["lost"]]]
    stored = dict(store.query("SELECT batch_id, count() FROM metric_points GROUP BY batch_id"))
    known = dict(store.query("SELECT batch_id, max(points) FROM ingest_batches GROUP BY batch_id"))
    assert stored == known == {"kept": 5, "lost": 7}


def test_a_part_that_reads_is_never_set_aside(live: LiveServer, client: httpx.Client) -> None:
    """A CORRUPTED_DATA error that a read of the part alone does not repeat detaches nothing."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from sematic_metrics.service import _repair

    store = live.service.store
    assert client.post("/api/v1/metrics", json=compact_batch("fine", 3)).status_code == 200
    [(part, database)] = store.query(
        "SELECT name, database FROM system.parts WHERE database = currentDatabase() "
        "AND table = 'metric_points' AND active"
    )
    claim = DatabaseError(
        f"Code: 246. DB::Exception: Empty marks file '/x/{part}/data.cmrk4': 0, must be: 112: (while "
        f"reading from part /x/{part}/ in table {database}.metric_points (u) located on disk default). "
        "(CORRUPTED_DATA)"
    )
    assert _repair.broken_part(claim) == (database, "metric_points", part)
    with store.writing():
        assert _repair.set_aside(store._writer, claim) is False
    assert store.query("SELECT count() FROM system.detached_parts WHERE database = currentDatabase()") == [
        (0,)
    ]
    assert store.query("SELECT count() FROM metric_points") == [(3,)]


@pytest.mark.backends
def test_store_refusing_inserts_answers_503_then_recovers(live: Any, client: httpx.Client) -> None:
    """ClickHouse refuses every insert (TOO_MANY_PARTS, as under merge pressure)."""
    store = live.service.store
    headers = {"Idempotency-Key": "before"}
    assert client.post("/api/v1/metrics", json=compact_batch("before", 4), headers=headers).status_code == 200
    store.command("ALTER TABLE metric_points MODIFY SETTING parts_to_throw_insert = 1")
    try:
        refused = client.post(
            "/api/v1/metrics", json=compact_batch("during", 6), headers={"Idempotency-Key": "during"}
        )
        assert refused.status_code == 503
        assert refused.json()["type"] == "StoreError"
        assert "TOO_MANY_PARTS" in refused.json()["error"] or "Too many parts" in refused.json()["error"]
        assert refused.headers["retry-after"].isdigit()
        assert client.get("/api/v1/metrics/points").status_code == 200, "reads still work"
    finally:
        store.command("ALTER TABLE metric_points RESET SETTING parts_to_throw_insert")
    again = client.post(
        "/api/v1/metrics", json=compact_batch("during", 6), headers={"Idempotency-Key": "during"}
    )
    assert again.json() == {"content": {"stored": 6, "duplicate": False}}
    rows = store.query(BATCHES_SQL.replace("sematic_metrics.", "") + " ORDER BY batch_id")
    assert [(r[0], r[1]) for r in rows] == [("before", 4), ("during", 6)]


def ingest_table(key: str, n: int) -> Any:
    return to_table(decode(json.dumps(compact_batch(key, n)).encode()), key, None)


@pytest.mark.parametrize("restart", [False, True], ids=["same-writer", "after-restart"])
@pytest.mark.backends
def test_retry_after_a_view_refused_its_part_stores_once(store: Store, restart: bool) -> None:
    catalog = Catalog(store)
    catalog.load()

    async def scenario() -> list[Any]:
        writer = Writer(store, catalog)
        writer.start()
        try:
            await writer.submit(ingest_table("warm", 1), "warm")
            store.command("ALTER TABLE ingest_batches MODIFY SETTING parts_to_throw_insert = 1")
            try:
                # Submitted in one loop turn: one group, one INSERT.
                first = await asyncio.gather(
                    writer.submit(ingest_table("a", 5), "a"),
                    writer.submit(ingest_table("b", 7), "b"),
                    return_exceptions=True,
                )
            finally:
                store.command("ALTER TABLE ingest_batches RESET SETTING parts_to_throw_insert")
            if restart:  # a new process knows only what the store knows
                await writer.stop()
                writer = Writer(store, Catalog(store))
                writer.start()
            # Each retried alone: other groups, other dedup tokens.
            retries = [await writer.submit(ingest_table(k, n), k) for k, n in (("a", 5), ("b", 7))]
            return [*first, *retries]
        finally:
            await writer.stop()

    results = asyncio.run(scenario())
    assert all(isinstance(r, StoreError | IngestResult) for r in results[:2]), results
    assert [r.stored for r in results[2:]] == [5, 7]
    stored = dict(store.query("SELECT batch_id, count() FROM metric_points GROUP BY batch_id"))
    assert stored == {"warm": 1, "a": 5, "b": 7}, "a retried batch was stored again"
    known = dict(store.query("SELECT batch_id, max(points) FROM ingest_batches GROUP BY batch_id"))
    assert known == stored, "ingest_batches disagrees with metric_points"


def test_unreachable_clickhouse_server_fails_startup_clearly(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    server = ServerProcess(
        tmp_path / "data",
        env={"SEMATIC_METRICS_CLICKHOUSE_URL": f"http://default:s3cret-pw@127.0.0.1:{port}/metrics"},
    )
    with pytest.raises(RuntimeError, match="server exited with 2") as info:
        server.start(timeout_s=60)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "not answering" in message or "cannot reach" in message
    assert "s3cret-pw" not in message, "the password leaked into the log"


# -- the SDK through an outage --------------------------------------------------

PIPELINE = """
import json, sys, time
import sematic_metrics
from sematic_metrics import MetricType, sdk

total, chunk = int(sys.argv[1]), 1000
with sematic_metrics.run(run_id=sys.argv[2]):
    for i in range(0, total, chunk):
        for _ in range(chunk):
            sematic_metrics.log_metric("outage", 1.0, metric_type=MetricType.COUNT)
        print("logged", i + chunk, flush=True)
        time.sleep(float(sys.argv[3]))
delivered = sematic_metrics.flush(timeout=180)
stats = sdk.stats()
print(json.dumps({"delivered": delivered, **{k: getattr(stats, k) for k in stats.__dataclass_fields__}}))
"""


def total_points(url: str, name: str, run_id: str) -> int:
    response = httpx.get(
        f"{url}/api/v1/metrics/{name}", params={"labels": json.dumps({"run_id": run_id})}, timeout=30
    )
    if response.status_code == 404:
        return 0
    series = response.json()["content"]["series"]
    return int(series[0][0]) if series else 0


def test_sdk_logs_100k_points_through_a_10s_outage_and_stores_each_once(tmp_path: Path) -> None:
    outage_s = 30 if SOAK else 10
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir)
    run_id = f"outage-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")},
        "SEMATIC_METRICS_URL": server.url,
    }
    with server:
        # 100 chunks of 1000 points, 0.15 s apart: about 15 s of logging.
        child = subprocess.Popen(
            [sys.executable, "-c", PIPELINE, "100000", run_id, "0.15"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(
                lambda: total_points(server.url, "outage", run_id) >= 5000 or child.poll() is not None,
                60,
                "the SDK delivers 5000 points",
            )
            assert child.poll() is None, child.communicate()[0][-2000:]
            server.kill()
            down_at = time.monotonic()
            time.sleep(outage_s)  # the outage itself; stats["retried"] below shows the SDK met it
            server.start()
            print(f"\noutage: server down {time.monotonic() - down_at:.1f} s")
            out, _ = child.communicate(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
        stored = total_points(server.url, "outage", run_id)
    server.stop()
    stats = json.loads(out.strip().splitlines()[-1])
    logged_before_restart = [line for line in out.splitlines() if line.startswith("logged")]
    print(f"outage: SDK stats {stats}, server holds {stored} points ({len(logged_before_restart)} chunks)")
    assert child.returncode == 0, out[-2000:]
    assert stats["delivered"] is True
    assert (stats["logged"], stats["sent"], stats["pending"]) == (100_000, 100_000, 0)
    assert (stats["dropped"], stats["rejected"], stats["failed"]) == (0, 0, 0)
    assert stats["retried"] > 0, "the outage never hit the SDK"
    assert stored == 100_000
    rows = query_data_dir(data_dir, BATCHES_SQL)
    assert sum(int(r[1]) for r in rows) == 100_000
    known = dict(query_data_dir(data_dir, KNOWN_SQL))
    assert {r[0]: r[1] for r in rows} == known, "every batch stored once, whole"


@pytest.mark.parametrize("refusing", ["metric_tiers", "metric_catalog"], ids=["tiers", "catalog"])
def test_tier_rows_of_a_batch_a_view_refused_are_rebuilt(
    live: Any, client: httpx.Client, refusing: str
) -> None:
    store = live.service.store
    assert client.post("/api/v1/metrics", json=compact_batch("warm", 1, name="fresh")).status_code == 200
    store.command(f"ALTER TABLE {refusing} MODIFY SETTING parts_to_throw_insert = 1")
    try:
        first = client.post(
            "/api/v1/metrics", json=compact_batch("fresh", 3, name="fresh"), headers={"Idempotency-Key": "k"}
        )
        assert first.status_code == 503
    finally:
        store.command(f"ALTER TABLE {refusing} RESET SETTING parts_to_throw_insert")
    retry = client.post(
        "/api/v1/metrics", json=compact_batch("fresh", 3, name="fresh"), headers={"Idempotency-Key": "k"}
    )
    assert retry.status_code == 200
    assert store.query("SELECT count() FROM metric_points WHERE name = 'fresh'") == [(4,)]

    def counted() -> int:
        answer = client.get("/api/v1/series", params={"name": "fresh", "buckets": "1"}).json()["content"]
        return sum(answer["series"][0]["count"])

    assert counted() == 4  # right away: raw points until the repair is done
    wait_until(lambda: _tiers.ready(store), 60, "the tier repair")
    tiers = store.query(
        "SELECT width, sum(points) FROM metric_tiers WHERE name = 'fresh' AND axis = 'time' GROUP BY width"
    )
    assert sorted(tiers) == [(w, 4) for w in sorted(_tiers.TIERS["time"])]
    assert counted() == 4


@pytest.mark.backends
def test_a_name_stored_while_the_catalog_refused_its_part_is_readable(
    live: Any, client: httpx.Client
) -> None:
    store = live.service.store
    assert client.post("/api/v1/metrics", json=compact_batch("warm", 1, name="warm")).status_code == 200
    store.command("ALTER TABLE metric_catalog MODIFY SETTING parts_to_throw_insert = 1")
    try:
        first = client.post(
            "/api/v1/metrics",
            json=compact_batch("fresh", 3, name="fresh"),
            headers={"Idempotency-Key": "fresh"},
        )
        assert first.status_code == 503
    finally:
        store.command("ALTER TABLE metric_catalog RESET SETTING parts_to_throw_insert")
    retry = client.post(
        "/api/v1/metrics", json=compact_batch("fresh", 3, name="fresh"), headers={"Idempotency-Key": "fresh"}
    )
    assert retry.status_code == 200
    assert store.query("SELECT count() FROM metric_points WHERE name = 'fresh'") == [(3,)]
    assert client.get("/api/v1/metrics/fresh").json()["content"]["series"] == [[3.0, []]]
    restarted = Catalog(store)  # what a restarted server knows
    restarted.load()
    assert restarted.type_of("fresh") == 0, "the name is lost from metric_catalog"
