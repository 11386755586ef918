"""Run records from the SDK: ``run()`` records its run's lifecycle on a real
``sematic-metrics serve`` process, read back through the service's API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

import sematic_metrics
from sematic_metrics import MetricType, sdk
from sematic_metrics.sdk import _runs
from sematic_metrics.sdk._sender import Config
from sematic_metrics.sdk.context import ENV_VARS, current_run
from tests._support import ServerProcess, free_port, wait_until

README = Path(__file__).resolve().parent.parent / "README.md"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    env.update(extra)
    return env


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("runs-server") / "data") as srv:
        yield srv


def reset_sdk() -> None:
    sdk.shutdown(timeout=10)
    sdk.configure(**{f.name: None for f in fields(Config)})


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Config]]:
    """Point the SDK at a server with fast sending and retries; no run in the environment."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    sematic_metrics.sdk.context.refresh_env()
    reset_sdk()

    def apply(url: str, **settings: Any) -> Config:
        base: dict[str, Any] = {"backoff_s": 0.05, "max_backoff_s": 0.3, "max_age_s": 0.1}
        return sdk.configure(url=url, **{**base, **settings})

    yield apply
    reset_sdk()
    sematic_metrics.sdk.context.refresh_env()


def record(server: ServerProcess, run_id: str) -> dict[str, Any] | None:
    """The run's latest record as the service holds it, or None."""
    response = httpx.get(f"{server.url}/api/v1/runs/{run_id}/record", timeout=30)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    content: dict[str, Any] = response.json()["content"]
    return content


def wait_state(server: ServerProcess, run_id: str, state: str, timeout_s: float = 60) -> dict[str, Any]:
    wait_until(
        lambda: (record(server, run_id) or {}).get("future_state") == state, timeout_s, f"{run_id} {state}"
    )
    found = record(server, run_id)
    assert found is not None
    return found


def sql(server: ServerProcess, query: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/api/v1/sql", json={"sql": query, "params": params}, timeout=60)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def stored_versions(server: ServerProcess, run_id: str) -> dict[str, int]:
    """Stored rows of a run per state (each version of a run is one row until a merge)."""
    rows = sql(
        server,
        "SELECT toString(future_state) AS state, count() AS n FROM runs "
        "WHERE id = {id:String} GROUP BY state",
        id=run_id,
    )
    return {row["state"]: int(row["n"]) for row in rows}


def assert_resolved(found: dict[str, Any]) -> None:
    assert found["future_state"] == "RESOLVED"
    assert found["created_at"] == found["started_at"]
    assert found["resolved_at"] == found["ended_at"] == found["updated_at"]
    assert found["updated_at"] > found["created_at"]
    assert found["failed_at"] is None


# -- outcomes -----------------------------------------------------------------------
def train_step() -> str:
    info = current_run()
    assert info is not None
    sematic_metrics.log_metric("loss", 0.5)
    return info.run_id


@pytest.mark.parametrize("form", ["with", "decorator", "decorator-call"])
def test_a_run_that_returns_is_resolved(server: ServerProcess, use: Any, form: str) -> None:
    use(server.url)
    path = f"{train_step.__module__}.{train_step.__qualname__}"
    if form == "with":
        path = "pipe.train"
        with sematic_metrics.run(function_path=path) as info:
            run_id = train_step()
            assert run_id == info.run_id
    elif form == "decorator":
        run_id = sematic_metrics.run(train_step)()
    else:
        run_id = sematic_metrics.run(labels={"team": "vision"})(train_step)()
    assert sematic_metrics.flush(timeout=30)
    found = record(server, run_id)
    assert found is not None
    assert_resolved(found)
    assert (found["id"], found["root_id"], found["parent_id"]) == (run_id, run_id, None)
    assert (found["function_path"], found["name"]) == (path, path.rpartition(".")[2])
    stats = sdk.stats()
    assert (stats.runs_logged, stats.runs_sent, stats.runs_pending, stats.runs_rejected) == (2, 2, 0, 0)
    assert (stats.logged, stats.sent) == (1, 1)  # points are counted apart


def test_an_open_run_is_scheduled_with_its_start(server: ServerProcess, use: Any) -> None:
    use(server.url)
    run_id = unique("open")
    with sematic_metrics.run(run_id=run_id, function_path="pipe.long", name="long run"):
        before = time.time()
        assert sematic_metrics.flush(timeout=30)
        found = record(server, run_id)
        assert found is not None
        assert found["future_state"] == "SCHEDULED"
        assert found["name"] == "long run"
        assert found["created_at"] == found["started_at"] <= before
        assert found["ended_at"] is None and found["resolved_at"] is None
    assert sematic_metrics.flush(timeout=30)
    assert_resolved(wait_state(server, run_id, "RESOLVED"))
    assert stored_versions(server, run_id).get("RESOLVED") == 1


def test_an_exception_fails_the_run_and_reaches_the_caller(server: ServerProcess, use: Any) -> None:
    use(server.url)
    run_id = unique("fail")
    error = ValueError("bad batch")
    with pytest.raises(ValueError) as raised, sematic_metrics.run(run_id=run_id, function_path="pipe.fail"):
        raise error
    assert raised.value is error
    assert sematic_metrics.flush(timeout=30)
    found = record(server, run_id)
    assert found is not None
    assert found["future_state"] == "FAILED"
    assert found["failed_at"] == found["ended_at"] == found["updated_at"] > found["started_at"]
    assert found["resolved_at"] is None


@pytest.mark.parametrize("how", ["propagated", "raised-from", "raised-while-handling"])
def test_a_nested_failure_fails_the_child_and_its_enclosing_runs(
    server: ServerProcess, use: Any, how: str
) -> None:
    use(server.url)
    root, sibling, mid, leaf = (unique(n) for n in ("root", "sibling", "mid", "leaf"))
    with pytest.raises(KeyError if how == "propagated" else RuntimeError):  # noqa: SIM117
        with sematic_metrics.run(run_id=root, function_path="pipe.main"):
            with sematic_metrics.run(run_id=sibling, function_path="pipe.prepare"):
                pass
            with sematic_metrics.run(run_id=mid, function_path="pipe.train"):
                try:
                    with sematic_metrics.run(run_id=leaf, function_path="pipe.step"):
                        raise KeyError("leaf broke")
                except KeyError as exc:
                    if how == "propagated":
                        raise
                    if how == "raised-from":
                        raise RuntimeError("step failed") from exc
                    raise RuntimeError("step failed")  # noqa: B904 (the implicit __context__ is the point)
    assert sematic_metrics.flush(timeout=30)
    found = {run_id: record(server, run_id) for run_id in (root, sibling, mid, leaf)}
    states = {run_id: (r or {}).get("future_state") for run_id, r in found.items()}
    assert states == {root: "NESTED_FAILED", sibling: "RESOLVED", mid: "NESTED_FAILED", leaf: "FAILED"}
    parents = {run_id: (r or {}).get("parent_id") for run_id, r in found.items()}
    assert parents == {root: None, sibling: root, mid: root, leaf: mid}
    assert {(r or {}).get("root_id") for r in found.values()} == {root}
    pipeline = httpx.get(f"{server.url}/api/v1/pipelines/pipe.main/metrics", timeout=30).json()["content"]
    assert pipeline["count_by_state"].get("NESTED_FAILED", 0) >= 1


def test_a_failed_child_caught_by_its_parent_leaves_the_parent_resolved(
    server: ServerProcess, use: Any
) -> None:
    use(server.url)
    root, leaf = unique("root"), unique("leaf")
    with (
        sematic_metrics.run(run_id=root, function_path="pipe.tolerant"),
        pytest.raises(KeyError),
        sematic_metrics.run(run_id=leaf, function_path="pipe.flaky"),
    ):
        raise KeyError("retry me")
    assert sematic_metrics.flush(timeout=30)
    assert (record(server, leaf) or {}).get("future_state") == "FAILED"
    assert (record(server, root) or {}).get("future_state") == "RESOLVED"


@pytest.mark.parametrize("exit_code", [0, 2], ids=["exit-0", "exit-2"])
def test_sys_exit_inside_a_run(server: ServerProcess, use: Any, exit_code: int) -> None:
    use(server.url)
    run_id = unique("exit")
    with pytest.raises(SystemExit), sematic_metrics.run(run_id=run_id, function_path="pipe.exit"):
        sys.exit(exit_code)
    assert sematic_metrics.flush(timeout=30)
    expected = "RESOLVED" if exit_code == 0 else "FAILED"
    assert (record(server, run_id) or {}).get("future_state") == expected


def test_keyboard_interrupt_cancels_the_run_and_its_enclosing_runs(server: ServerProcess, use: Any) -> None:
    use(server.url)
    root, child = unique("root"), unique("child")
    with (
        pytest.raises(KeyboardInterrupt),
        sematic_metrics.run(run_id=root, function_path="pipe.interrupted"),
        sematic_metrics.run(run_id=child, function_path="pipe.step"),
    ):
        raise KeyboardInterrupt
    assert sematic_metrics.flush(timeout=30)
    for run_id in (root, child):
        found = record(server, run_id)
        assert found is not None
        assert found["future_state"] == "CANCELED"
        assert found["ended_at"] == found["updated_at"] and found["failed_at"] is None


def test_a_cancelled_task_cancels_its_run(server: ServerProcess, use: Any) -> None:
    use(server.url)
    started = asyncio.Event()
    seen: list[str] = []

    @sematic_metrics.run(function_path="pipe.async_step")
    async def step() -> None:
        info = current_run()
        assert info is not None
        seen.append(info.run_id)
        started.set()
        await asyncio.sleep(120)

    async def main() -> None:
        task = asyncio.create_task(step())
        await started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sematic_metrics.flush(timeout=30)
    assert (record(server, seen[0]) or {}).get("future_state") == "CANCELED"


# -- opting out ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["record-false", "configure", "no-function-path", "sematic"])
def test_runs_that_are_not_recorded(
    server: ServerProcess, use: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    use(server.url)
    if how == "configure":
        sdk.configure(record_runs=False)
    if how == "sematic":  # Sematic's context as Sematic 0.41 lays it out: Sematic owns the run
        future_context = types.ModuleType("sematic.future_context")
        future_context._current_context = types.SimpleNamespace(run_id="s-run", root_id="s-root")  # type: ignore[attr-defined]
        future_context.context = lambda: future_context._current_context  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "sematic.future_context", future_context)
    name = unique("unrecorded").replace("-", "_")
    run_id = unique("quiet")
    path = "" if how == "no-function-path" else "pipe.quiet"
    with sematic_metrics.run(run_id=run_id, function_path=path or None, record=how != "record-false") as info:
        sematic_metrics.log_metric(name, 1.0, metric_type=MetricType.COUNT)
        assert info.run_id == run_id
    assert sematic_metrics.flush(timeout=30)
    stats = sdk.stats()
    assert (stats.sent, stats.runs_logged) == (1, 0)
    assert record(server, run_id) is None
    listed = httpx.get(f"{server.url}/api/v1/metrics", params={"labels": json.dumps({"run_id": run_id})})
    assert listed.json()["content"] == [name]  # the points still arrive


# -- delivery -----------------------------------------------------------------------
def test_a_rejected_record_does_not_take_the_others_with_it(
    server: ServerProcess, use: Any, caplog: pytest.LogCaptureFixture
) -> None:
    use(server.url)
    reused, others = unique("reused"), [unique("other") for _ in range(5)]
    with sematic_metrics.run(run_id=reused, function_path="pipe.reused"):
        pass
    assert sematic_metrics.flush(timeout=30)
    sdk.configure(max_age_s=60)  # the next records leave together, at the flush
    with caplog.at_level(logging.WARNING, logger="sematic_metrics.sdk"):
        for i, run_id in enumerate(others):
            with sematic_metrics.run(run_id=run_id, function_path="pipe.batch"):
                pass
            if i == 2:  # the same id again, with another created_at: the server answers 409
                with sematic_metrics.run(run_id=reused, function_path="pipe.reused"):
                    pass
        assert sematic_metrics.flush(timeout=30)
    stats = sdk.stats()
    assert (stats.runs_logged, stats.runs_sent, stats.runs_rejected, stats.runs_pending) == (14, 12, 2, 0)
    assert all((record(server, r) or {}).get("future_state") == "RESOLVED" for r in others)
    messages = [r.getMessage() for r in caplog.records if "rejected 1 run records" in r.getMessage()]
    assert len(messages) == 1 and reused in messages[0] and "HTTP 4" in messages[0]


def test_waiting_run_records_are_bounded(server: ServerProcess, use: Any) -> None:
    use(f"http://127.0.0.1:{free_port()}", max_runs=5)  # nothing listens: nothing leaves
    run_ids = [unique("bounded") for _ in range(20)]
    for run_id in run_ids:
        with sematic_metrics.run(run_id=run_id, function_path="pipe.bounded"):
            pass
    wait_until(lambda: sdk.stats().retried >= 1, 30, "a retry")
    stats = sdk.stats()
    assert stats.runs_logged == 40
    assert stats.runs_pending <= 20  # 5 waiting runs and at most 5 in the request being retried
    assert stats.runs_dropped == 40 - stats.runs_pending
    sdk.configure(url=server.url)
    assert sematic_metrics.flush(timeout=60)
    stats = sdk.stats()
    assert (stats.runs_sent + stats.runs_dropped, stats.runs_pending, stats.runs_failed) == (40, 0, 0)
    stored = [r for r in run_ids if record(server, r) is not None]
    assert len(stored) <= 10
    assert all((record(server, r) or {}).get("future_state") == "RESOLVED" for r in run_ids[-5:])


def test_a_server_outage_during_the_run_delivers_every_record_once(
    use: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    srv = ServerProcess(tmp_path_factory.mktemp("outage") / "data").start()
    try:
        use(srv.url)
        run_id, name = unique("outage"), unique("outage_points").replace("-", "_")
        with sematic_metrics.run(run_id=run_id, function_path="pipe.outage"):
            assert sematic_metrics.flush(timeout=30)
            assert (record(srv, run_id) or {}).get("future_state") == "SCHEDULED"
            srv.stop()
            for _ in range(100):
                sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
        wait_until(lambda: sdk.stats().retried >= 2, 30, "retries while the server is down")
        assert sdk.stats().runs_pending == 1
        srv.start()  # same port, same data directory
        assert sematic_metrics.flush(timeout=60)
        stats = sdk.stats()
        assert (stats.runs_sent, stats.runs_failed, stats.runs_rejected) == (2, 0, 0)
        assert (stats.sent, stats.failed, stats.rejected) == (100, 0, 0)
        assert_resolved(wait_state(srv, run_id, "RESOLVED"))
        versions = stored_versions(srv, run_id)
        assert versions["RESOLVED"] == 1 and versions.get("SCHEDULED", 0) <= 1  # a merge may drop SCHEDULED
        points = sql(srv, "SELECT count() AS n FROM metric_points WHERE run_id = {id:String}", id=run_id)
        assert int(points[0]["n"]) == 100
    finally:
        srv.kill()


def test_a_lost_answer_is_retried_with_the_same_key_and_stored_once(server: ServerProcess, use: Any) -> None:
    from tests._support import DropProxy

    with DropProxy(server.port) as proxy:
        use(proxy.url, max_age_s=60)  # one request, at the flush
        run_id = unique("lost")
        proxy.drop_next(1)  # the server stores the first request; its answer never arrives
        with sematic_metrics.run(run_id=run_id, function_path="pipe.lost"):
            pass
        assert sematic_metrics.flush(timeout=60)
    assert proxy.dropped == 1
    stats = sdk.stats()
    assert (stats.runs_sent, stats.retried) == (2, 1)
    assert_resolved(wait_state(server, run_id, "RESOLVED"))
    assert stored_versions(server, run_id) == {"RESOLVED": 1}


# -- processes: SIGTERM, kill -9, fork, inherited environment -------------------------
SIGTERM_SCRIPT = """
    import os, signal, sys, time
    import sematic_metrics
    from sematic_metrics import sdk
    if os.environ["MODE"] == "chained":
        def handler(signum, frame):
            sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
    sdk.configure(max_age_s=60)  # only the SIGTERM hook delivers
    with sematic_metrics.run(run_id=os.environ["ROOT"], function_path="jobs.main"):
        with sematic_metrics.run(run_id=os.environ["CHILD"], function_path="jobs.step"):
            if os.environ["MODE"] == "kill":
                assert sematic_metrics.flush(30)
            open(os.environ["READY"], "w").write("ready")
            time.sleep(120)
"""


@pytest.mark.parametrize(
    ("mode", "returncode", "state"),
    [
        ("sigterm", -signal.SIGTERM, "CANCELED"),
        ("chained", 3, "CANCELED"),
        ("kill", -signal.SIGKILL, "SCHEDULED"),
    ],
    ids=["sigterm", "sigterm-chained-handler", "kill-9"],
)
def test_a_signal_ends_the_open_runs(
    server: ServerProcess, tmp_path: Path, mode: str, returncode: int, state: str
) -> None:
    root, child = unique("sig-root"), unique("sig-child")
    env = clean_env(
        SEMATIC_METRICS_URL=server.url, MODE=mode, ROOT=root, CHILD=child, READY=str(tmp_path / "ready")
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGTERM_SCRIPT)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until((tmp_path / "ready").exists, 60, "the script's run")
        proc.send_signal(signal.SIGKILL if mode == "kill" else signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == returncode, stderr
    for run_id in (root, child):
        found = record(server, run_id)
        assert found is not None, stderr
        assert found["future_state"] == state
        assert (found["ended_at"] is None) == (state == "SCHEDULED")
    if mode == "kill":  # in progress: counted as a run, left out of the success rate
        response = httpx.get(f"{server.url}/api/v1/pipelines/jobs.main/metrics", timeout=30)
        assert response.json()["content"]["count_by_state"].get("SCHEDULED", 0) >= 1


DAEMON_SCRIPT = """
    import os, threading
    import sematic_metrics
    started = threading.Event()
    def work():
        with sematic_metrics.run(run_id=os.environ["RUN"], function_path="jobs.daemon"):
            started.set()
            threading.Event().wait()  # until the process exits
    threading.Thread(target=work, daemon=True).start()
    started.wait(30)
"""


def test_a_daemon_threads_run_still_open_at_exit_is_canceled(server: ServerProcess) -> None:
    run_id = unique("daemon")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DAEMON_SCRIPT)],
        env=clean_env(SEMATIC_METRICS_URL=server.url, RUN=run_id),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = record(server, run_id)
    assert found is not None
    assert (found["future_state"], found["ended_at"] is not None) == ("CANCELED", True)


FORK_SCRIPT = """
    import atexit, json, os, sys
    import sematic_metrics
    from sematic_metrics import sdk
    with sematic_metrics.run(run_id=os.environ["ROOT"], function_path="jobs.forking"):
        assert sematic_metrics.flush(30)
        pid = os.fork()
        if pid == 0:
            def report():  # runs before the SDK's exit hook, after the runs were left
                with open(os.environ["OUT"], "w") as f:
                    json.dump({"runs_logged": sdk.stats().runs_logged}, f)
            atexit.register(report)
            with sematic_metrics.run(run_id=os.environ["CHILD"], function_path="jobs.forked"):
                pass
            sys.exit(5)  # leaves through the parent's run: the child must not record it
        _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status), "ok": sematic_metrics.flush(30)}))
"""


def test_a_forked_child_records_its_run_under_the_parent_and_never_the_parents(
    server: ServerProcess, tmp_path: Path
) -> None:
    root, child = unique("fork-root"), unique("fork-child")
    env = clean_env(SEMATIC_METRICS_URL=server.url, ROOT=root, CHILD=child, OUT=str(tmp_path / "child.json"))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": 5, "ok": True}
    assert json.loads((tmp_path / "child.json").read_text()) == {"runs_logged": 2}  # its own run only
    forked = record(server, child)
    assert forked is not None
    assert (forked["parent_id"], forked["root_id"], forked["future_state"]) == (root, root, "RESOLVED")
    assert (record(server, root) or {}).get("future_state") == "RESOLVED"
    assert "FAILED" not in stored_versions(server, root)


SUBPROCESS_SCRIPT = """
    import sematic_metrics
    with sematic_metrics.run(function_path="jobs.subprocess") as info:
        pass
    print(info.run_id)
"""


def test_a_subprocess_that_inherits_the_environment_records_its_run_under_the_parent(
    server: ServerProcess, use: Any
) -> None:
    use(server.url)
    root, step = unique("env-root"), unique("env-step")
    with (
        sematic_metrics.run(run_id=root, function_path="jobs.pipeline"),
        sematic_metrics.run(run_id=step, function_path="jobs.launch"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SUBPROCESS_SCRIPT)],
            env={**os.environ, "SEMATIC_METRICS_URL": server.url},  # os.environ carries the run
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert sematic_metrics.flush(timeout=30)
    sub = record(server, done.stdout.strip())
    assert sub is not None
    assert (sub["parent_id"], sub["root_id"], sub["future_state"]) == (step, root, "RESOLVED")
    assert sub["root_function_path"] == "jobs.pipeline"


# -- the README -----------------------------------------------------------------------
def sdk_example() -> str:
    section = README.read_text().split("\n## SDK\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README's SDK section has no python example"
    return found.group(1)


def test_the_readme_sdk_example_shows_its_pipeline(tmp_path_factory: pytest.TempPathFactory) -> None:
    with ServerProcess(tmp_path_factory.mktemp("readme") / "data") as srv:
        done = subprocess.run(
            [sys.executable, "-c", sdk_example()],
            env=clean_env(SEMATIC_METRICS_URL=srv.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        pipelines = httpx.get(f"{srv.url}/api/v1/pipelines", timeout=30).json()["content"]
        assert [(p["function_path"], p["run_count"], p["success_rate"]) for p in pipelines] == [
            ("pipeline.train", 1, 1.0)
        ]
        for path in ("/api/v1/runs/r42/metrics", "/api/v1/pipelines/pipeline.train/metrics"):
            response = httpx.get(srv.url + path, timeout=30)
            assert response.status_code == 200, (path, response.text)
        panel = httpx.get(f"{srv.url}/api/v1/runs/r42/metrics", timeout=30).json()["content"]
        assert (panel["total_count"], panel["count_by_state"]) == (1, {"RESOLVED": 1})


# -- the clock --------------------------------------------------------------------------
def test_versions_of_a_run_get_increasing_times_even_within_one_microsecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A frozen clock in the past: later tests see the real one again.
    monkeypatch.setattr(time, "time_ns", lambda: 1_600_000_000_123_456_000)
    times = [_runs.now() for _ in range(1000)]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert all(round(t * 1e6) == round(times[0] * 1e6) + i for i, t in enumerate(times))
