"""Run versions that cannot regress: a run's state is picked from all its
stored versions by the views (runs_latest, pipeline_runs, pipeline_runs_of),
whatever the arrival order, updated_at ties or which writer stored what."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import httpx
import pytest

from sematic_metrics.errors import RunConflictError
from sematic_metrics.service.migrate import discover, migrate
from sematic_metrics.service.runs_body import decode, to_batch
from sematic_metrics.service.runs_writer import TABLE, RunsWriter
from sematic_metrics.service.sqlfiles import q
from sematic_metrics.service.store import Store

T0 = 1_699_920_000.0  # 2023-11-14T00:00:00Z
PIPE = "acme.pipelines.train"
LIFECYCLE = ("CREATED", "SCHEDULED", "RAN", "RESOLVED")
ALL_TIME = {"from_us": -(2**62), "to_us": 2**62}


def record(
    run_id: str,
    state: str,
    updated: float,
    *,
    created: float = T0,
    path: str = PIPE,
    root_id: str | None = None,
    **times: float | None,
) -> dict[str, Any]:
    """One version of a run; times not given are absent (null)."""
    return {
        "id": run_id,
        "root_id": root_id or run_id,
        "function_path": path,
        "name": path.rsplit(".", 1)[-1],
        "future_state": state,
        "created_at": created,
        "updated_at": updated,
        **times,
    }


def lifecycle(run_id: str, updated: list[float]) -> list[dict[str, Any]]:
    """CREATED, SCHEDULED, RAN, RESOLVED as Sematic sends them: each version
    carries the times known when it was made."""
    started, resolved = T0 + 5, T0 + 65
    return [
        record(run_id, "CREATED", updated[0]),
        record(run_id, "SCHEDULED", updated[1]),
        record(run_id, "RAN", updated[2], started_at=started),
        record(run_id, "RESOLVED", updated[3], started_at=started, resolved_at=resolved, ended_at=resolved),
    ]


def write(writer: RunsWriter, *records: dict[str, Any], key: str = "") -> None:
    body = json.dumps({"runs": list(records)}).encode()
    writer.write(to_batch(decode(body), key, None))


def state(store: Store, run_id: str) -> dict[str, Any]:
    rows = store.rows(q("run_record"), {"run_id": run_id})
    assert len(rows) == 1, rows
    return rows[0]


def figures(store: Store, path: str = PIPE) -> dict[str, Any]:
    rows = store.rows(q("pipeline_window"), {"function_path": path, **ALL_TIME})
    assert len(rows) == 1, rows
    return rows[0]


def listed(store: Store) -> dict[str, int]:
    return {str(r["function_path"]): int(r["run_count"]) for r in store.rows(q("pipelines_list"))}


# -- order and ties ------------------------------------------------------------
ORDERS = ((0, 1, 2, 3), (3, 2, 1, 0), (3, 0, 1, 2), (1, 3, 0, 2), (2, 0, 3, 1), (0, 3, 2, 1))


@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
@pytest.mark.backends
def test_out_of_order_versions_end_resolved(store: Store, order: tuple[int, ...]) -> None:
    versions = lifecycle("r1", [T0 + 1, T0 + 2, T0 + 5, T0 + 65])
    writer = RunsWriter(store)
    for i in order:
        write(writer, versions[i])
    got = state(store, "r1")
    assert got["state"] == "RESOLVED"
    assert got["updated_us"] == (T0 + 65) * 1e6
    stats = figures(store)
    assert (stats["run_count"], stats["success_rate"], stats["avg_run_time_s"]) == (1, 1.0, 60.0)
    assert stats["count_by_state"] == {"RESOLVED": 1}


@pytest.mark.parametrize("one_batch", [False, True], ids=["separate-requests", "one-batch"])
@pytest.mark.parametrize("terminal_first", [False, True], ids=["ran-first", "terminal-first"])
@pytest.mark.parametrize("terminal", ["RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED"])
@pytest.mark.backends
def test_a_terminal_state_wins_a_tie_whatever_arrives_first(
    store: Store, terminal: str, terminal_first: bool, one_batch: bool
) -> None:
    versions = [
        record("r1", "RAN", T0 + 9, started_at=T0 + 1),
        record("r1", terminal, T0 + 9, ended_at=T0 + 9),
    ]
    if terminal_first:
        versions.reverse()
    writer = RunsWriter(store)
    if one_batch:
        write(writer, *versions)
    else:
        for version in versions:
            write(writer, version)
    assert state(store, "r1")["state"] == terminal
    assert figures(store)["count_by_state"] == {terminal: 1}


@pytest.mark.parametrize("one_batch", [False, True], ids=["separate-requests", "one-batch"])
@pytest.mark.parametrize(
    ("first", "last"), [("FAILED", "CANCELED"), ("CANCELED", "FAILED"), ("RESOLVED", "FAILED")]
)
@pytest.mark.backends
def test_of_two_tied_terminal_states_the_later_arrival_wins(
    store: Store, first: str, last: str, one_batch: bool
) -> None:
    versions = [record("r1", first, T0 + 9), record("r1", last, T0 + 9)]
    writer = RunsWriter(store)
    if one_batch:
        write(writer, *versions)
    else:
        write(writer, versions[0])
        write(writer, versions[1])
    assert state(store, "r1")["state"] == last


@pytest.mark.backends
def test_of_two_terminal_states_the_later_updated_at_wins_over_arrival(store: Store) -> None:
    writer = RunsWriter(store)
    write(writer, record("r1", "CANCELED", T0 + 20))
    write(writer, record("r1", "FAILED", T0 + 10, failed_at=T0 + 10))  # arrives later, but older
    assert state(store, "r1")["state"] == "CANCELED"
    write(writer, record("r2", "SCHEDULED", T0 + 20))
    write(writer, record("r2", "RAN", T0 + 10))  # equal rank: the later updated_at wins
    assert state(store, "r2")["state"] == "SCHEDULED"


@pytest.mark.parametrize("late", ["CREATED", "SCHEDULED", "RAN", "RETRYING"])
@pytest.mark.parametrize("offset", [-30.0, 0.0, 30.0], ids=["older", "tied", "newer"])
@pytest.mark.backends
def test_a_late_running_version_never_replaces_a_terminal_state(
    store: Store, late: str, offset: float
) -> None:
    writer = RunsWriter(store)
    write(writer, record("r1", "FAILED", T0 + 60, started_at=T0 + 1, failed_at=T0 + 60, ended_at=T0 + 60))
    write(writer, record("r1", late, T0 + 60 + offset, started_at=T0 + 1))
    got = state(store, "r1")
    assert got["state"] == "FAILED"
    assert got["failed_us"] == (T0 + 60) * 1e6
    stats = figures(store)
    assert (stats["run_count"], stats["success_rate"], stats["failed_count"]) == (1, 0.0, 1)


# -- times kept across versions ---------------------------------------------------
@pytest.mark.backends
def test_times_missing_from_the_winner_are_taken_from_other_versions(store: Store) -> None:
    writer = RunsWriter(store)
    write(writer, record("r1", "RAN", T0 + 5, started_at=T0 + 5))
    # The final version forgets started_at; it arrives before an older one with a name.
    write(writer, {**record("r1", "RESOLVED", T0 + 65, resolved_at=T0 + 65), "name": None})
    write(writer, record("r1", "SCHEDULED", T0 + 2, ended_at=None))
    got = state(store, "r1")
    assert (got["state"], got["started_us"], got["resolved_us"]) == (
        "RESOLVED",
        (T0 + 5) * 1e6,
        (T0 + 65) * 1e6,
    )
    assert got["name"] == "train"
    assert got["ended_us"] is None  # no version has one
    assert figures(store)["avg_run_time_s"] == pytest.approx(60.0)


# -- the Sematic pattern: one updated_at for every version -----------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.backends
def test_sematic_versions_with_one_updated_at_in_any_order(store: Store, seed: int) -> None:
    runs = {f"r{i}": lifecycle(f"r{i}", [T0 + 100] * 4) for i in range(8)}
    runs["r7"][3] = record("r7", "FAILED", T0 + 100, started_at=T0 + 5, failed_at=T0 + 30, ended_at=T0 + 30)
    versions = [v for vs in runs.values() for v in vs]
    order = list(range(len(versions)))
    random.Random(seed).shuffle(order)
    writer = RunsWriter(store)
    for start in range(0, len(order), 5):  # batches of five in shuffled order
        write(writer, *(versions[i] for i in order[start : start + 5]))
    stats = figures(store)
    assert stats["run_count"] == 8
    assert stats["count_by_state"] == {"RESOLVED": 7, "FAILED": 1}
    assert stats["success_rate"] == pytest.approx(7 / 8)
    assert stats["avg_run_time_s"] == pytest.approx(60.0)
    assert int(store.query("SELECT count() FROM runs")[0][0]) == 32  # every version is kept


@pytest.mark.backends
def test_sematic_pattern_over_http(client: httpx.Client) -> None:
    versions = lifecycle("s1", [T0 + 100] * 4)
    for version in (versions[3], versions[0], versions[2], versions[1]):
        response = client.post("/api/v1/runs", json={"runs": [version]})
        assert response.status_code == 200, response.text
    content = client.get(f"/api/v1/pipelines/{PIPE}/metrics").json()["content"]
    assert content["run_count"] == 1
    assert content["count_by_state"] == {"RESOLVED": 1}
    assert content["avg_run_time_s"] == pytest.approx(60.0)
    panel = client.get("/api/v1/runs/s1/metrics").json()["content"]
    assert panel["total_count"] == 1 and panel["count_by_state"] == {"RESOLVED": 1}


# -- racing writers ------------------------------------------------------------------
@pytest.mark.backends
def test_racing_writers_cannot_split_a_run_or_count_it_twice(store: Store) -> None:
    """Two workers each check the identity of r1 before either stored it, so
    both checks pass, then both store their version: a created_at a month
    apart and another pipeline (the old table put these in two partitions and
    counted r1 twice). The run counts once, with the identity stored first."""
    first = to_batch(decode(json.dumps({"runs": [record("r1", "RAN", T0 + 5)]}).encode()), "", None)
    other = record("r1", "RESOLVED", T0 + 60, created=T0 + 40 * 86_400, path="acme.other")
    second = to_batch(decode(json.dumps({"runs": [other]}).encode()), "", None)
    checks = [store.rows(q("run_identities"), {"ids": sorted(b.identities)}) for b in (first, second)]
    assert checks == [[], []]  # what both writers' identity checks saw: nothing stored yet
    store.insert_arrow(TABLE, first.table)
    store.insert_arrow(TABLE, second.table)
    assert int(store.query("SELECT count() FROM runs")[0][0]) == 2
    assert listed(store) == {PIPE: 1}
    stats = figures(store)
    assert (stats["run_count"], stats["count_by_state"]) == (1, {"RESOLVED": 1})
    got = state(store, "r1")
    assert (got["function_path"], got["created_us"]) == (PIPE, T0 * 1e6)
    assert store.rows(q("pipeline_window"), {"function_path": "acme.other", **ALL_TIME}) == []
    # The best-effort check now sees the stored identity and refuses another change.
    with pytest.raises(RunConflictError, match="function_path"):
        write(RunsWriter(store), record("r1", "FAILED", T0 + 70, path="acme.third"))


@pytest.mark.backends
def test_concurrent_writers_store_every_version_and_count_each_run_once(store: Store) -> None:
    """Four writers, each with its own lock, store interleaved versions of the
    same 40 runs from four threads at once."""
    runs = [f"c{i}" for i in range(40)]
    final = {run_id: ("FAILED" if i % 4 == 0 else "RESOLVED") for i, run_id in enumerate(runs)}

    def versions(worker: int) -> list[dict[str, Any]]:
        out = []
        for run_id in runs:
            chosen = [*LIFECYCLE[:3], final[run_id]][worker]
            times: dict[str, float] = {"started_at": T0 + 5} if worker >= 2 else {}
            if worker == 3:
                times.update(
                    {"ended_at": T0 + 65, "resolved_at" if chosen == "RESOLVED" else "failed_at": T0 + 65}
                )
            out.append({**record(run_id, chosen, T0 + 100), **times})  # Sematic: one updated_at
        return out

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        writer = RunsWriter(store)
        batch = versions(worker)
        try:
            barrier.wait()
            for start in range(0, len(batch), 4):
                write(writer, *batch[start : start + 4])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert int(store.query("SELECT count() FROM runs")[0][0]) == 160
    stats = figures(store)
    assert stats["run_count"] == 40
    assert stats["count_by_state"] == {"RESOLVED": 30, "FAILED": 10}
    assert stats["avg_run_time_s"] == pytest.approx(60.0)
    assert listed(store) == {PIPE: 40}


# -- the copy of an existing runs table ------------------------------------------------
@pytest.mark.backends
def test_versions_of_the_old_runs_table_are_copied_once(store: Store) -> None:
    """A database from before tables/010: its runs table (004) holds versions,
    some not merged yet; 010 copies them to run_versions, once, even when it
    runs again after an interruption."""
    store.command("DROP VIEW runs")
    (old,) = [m for m in discover() if m.version == 4]
    for statement in old.statements():
        store.command(statement)
    store.command("SYSTEM STOP MERGES runs")
    columns = (
        "id, root_id, function_path, name, future_state, created_at, started_at, resolved_at, updated_at"
    )
    store.command(
        f"INSERT INTO runs ({columns}) VALUES "
        "('o1', 'o1', 'acme.pipelines.train', 'train', 'SCHEDULED', 1699920000, NULL, NULL, 1699920001), "
        "('o2', 'o2', 'acme.pipelines.train', 'train', 'FAILED', 1699920000, 1699920001, NULL, 1699920009)"
    )
    store.command(
        f"INSERT INTO runs ({columns}) VALUES "
        "('o1', 'o1', 'acme.pipelines.train', 'train', 'RESOLVED', "
        "1699920000, 1699920005, 1699920035, 1699920040)"
    )
    (copy,) = [m for m in discover() if m.version == 10]
    *before_drop, drop = copy.statements()
    for statement in before_drop + before_drop:  # interrupted before the DROP, then run again
        store.command(statement)
    store.command(drop)
    for statement in copy.statements():  # interrupted after the DROP: runs again on a stand-in
        store.command(statement)
    migrate(store)  # the views, runs among them, back to their files
    assert int(store.query("SELECT count() FROM runs")[0][0]) == 3
    assert state(store, "o1")["state"] == "RESOLVED"
    stats = figures(store)
    assert (stats["run_count"], stats["avg_run_time_s"]) == (2, pytest.approx(30.0))
    assert stats["count_by_state"] == {"RESOLVED": 1, "FAILED": 1}
