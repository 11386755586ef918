"""The SDK against a real server process (``sematic-metrics serve``, own data dir)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import fields
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

import sematic_metrics
from sematic_metrics import MetricScope, MetricType, sdk
from sematic_metrics.errors import ConfigError, InvalidInputError, NotInRunError, TypeConflictError
from sematic_metrics.sdk._sender import Config, encode
from sematic_metrics.sdk.context import ENV_VARS, LabelSet
from tests._support import ServerProcess, free_port, wait_until

API_KEY = "sdk-test-key"
SERVER_MODULES = ("starlette", "uvicorn", "pyarrow", "chdb", "clickhouse_connect", "orjson")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    env.update(extra)
    return env


def sdk_server(directory: Path) -> ServerProcess:
    """A server that takes the SDK's key (not started)."""
    return ServerProcess(directory / "data", env={"SEMATIC_METRICS_API_KEYS": f"sdk={API_KEY}"})


def get(server: ServerProcess, path: str, **params: Any) -> Any:
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    response = httpx.get(f"{server.url}{path}", params=query, headers={"X-API-KEY": API_KEY}, timeout=30)
    response.raise_for_status()
    return response.json()["content"]


def total(server: ServerProcess, name: str, labels: dict[str, Any]) -> float:
    """Sum of a COUNT metric's points matching labels (0 when none)."""
    series = get(server, f"/api/v1/metrics/{name}", labels=labels)["series"]
    return float(series[0][0]) if series else 0.0


def metric_names(server: ServerProcess, labels: dict[str, Any]) -> set[str]:
    return set(get(server, "/api/v1/metrics", labels=labels))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with sdk_server(tmp_path_factory.mktemp("sdk-server")) as srv:
        yield srv
        srv.stop()


def reset_sdk() -> None:
    sdk.shutdown(timeout=10)
    sdk.configure(**{f.name: None for f in fields(Config)})


@pytest.fixture
def configure() -> Iterator[Any]:
    """sdk.configure with fast retries; the client is shut down after the test."""

    def apply(url: str, **settings: Any) -> Config:
        base: dict[str, Any] = {"api_key": API_KEY, "backoff_s": 0.05, "max_backoff_s": 0.3, "max_age_s": 0.1}
        return sdk.configure(url=url, **{**base, **settings})

    reset_sdk()
    yield apply
    reset_sdk()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- a TCP proxy that can refuse, fail or lose responses -------------------------
def read_message(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) with a Content-Length body; None at EOF."""
    head = b""
    while True:
        line = stream.readline()
        if not line:
            return None
        head += line
        if line in (b"\r\n", b"\n"):
            break
    length = 0
    for raw in head.split(b"\r\n")[1:]:
        key, _, value = raw.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    return head, stream.read(length) if length else b""


def header(head: bytes, name: str) -> str:
    for raw in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = raw.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


class Proxy:
    """Forwards to the server; ``mode`` "close" hangs up at once, ``lose`` forwards
    that many requests then hangs up instead of answering, ``fail`` answers that
    many requests itself with ``fail_status``; bodies over ``max_body`` get a 413."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode = "forward"
        self.lose = 0
        self.fail = 0
        self.fail_status = 503
        self.max_body = 1 << 30
        self.hang_up_after_answer = False
        self.connections = 0
        self.keys: list[str] = []
        self.responses: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            conn.settimeout(30)
            if self.mode == "close":
                return
            incoming = conn.makefile("rb")
            while (request := read_message(incoming)) is not None:
                head, body = request
                self.keys.append(header(head, "idempotency-key"))
                if len(body) > self.max_body:
                    reply = b'{"error": "body: over the limit; send smaller batches"}'
                    conn.sendall(
                        b"HTTP/1.1 413 Too Large\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                        + reply
                    )
                    continue
                if self.fail > 0:
                    self.fail -= 1
                    reply = b'{"error": "try later"}'
                    conn.sendall(
                        f"HTTP/1.1 {self.fail_status} Unavailable\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(reply)}\r\n\r\n".encode()
                        + reply
                    )
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
                    answers = upstream.makefile("rb")
                upstream.sendall(head + body)
                response = read_message(answers)
                assert response is not None
                self.responses.append(response[1])
                if self.lose > 0:  # the server stored the batch; the client never hears it
                    self.lose -= 1
                    return
                conn.sendall(response[0] + response[1])
                if self.hang_up_after_answer:  # like a server closing an idle kept-alive connection
                    return
        except OSError:
            pass
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[Proxy]:
    p = Proxy(server.port)
    yield p
    p.close()


# -- delivery -------------------------------------------------------------------
def test_points_arrive_with_the_run_labels(server: ServerProcess, configure: Any) -> None:
    configure(server.url)
    loss, steps = unique("loss"), unique("steps")
    run_id, root_id = unique("run"), unique("root")
    with (
        sematic_metrics.run(run_id=root_id, function_path="pipe.main", labels={"team": "vision"}),
        sematic_metrics.run(run_id=run_id, function_path="pipe.train"),
    ):
        values: tuple[Any, ...] = (1.0, 2, Fraction(3, 1), math.nan, math.inf, -math.inf)
        for value in values:  # numbers the SDK converts with float()
            sematic_metrics.log_metric(loss, value)
        sematic_metrics.log_metric(steps, 5, MetricScope.PIPELINE, MetricType.COUNT)
    assert sematic_metrics.flush(timeout=30)
    content = get(
        server, f"/api/v1/metrics/{loss}", group_by="run_id,function_path,root_id,root_function_path"
    )
    assert content["metric_type"] == "GAUGE"
    assert content["series"] == [[2.0, [run_id, "pipe.train", root_id, "pipe.main"]]]
    assert total(server, steps, {"__scope__": "1", "run_id": run_id, "root": False}) == 5
    assert total(server, steps, {"__scope__": "0"}) == 0
    assert metric_names(server, {"run_id": run_id}) == {loss, steps}
    assert metric_names(server, {"team": "vision"}) == set()  # labels of the outer run are not inherited
    stats = sematic_metrics.stats()
    assert (stats.logged, stats.sent, stats.rejected, stats.dropped, stats.pending) == (7, 7, 0, 0, 0)


def test_extra_labels_and_accepted_value_types(server: ServerProcess, configure: Any) -> None:
    configure(server.url)
    name = unique("values")
    with sematic_metrics.run(labels={"team": "nlp"}) as info:
        values: tuple[Any, ...] = (1, 2.5, Decimal("3.5"), Fraction(1, 2), 4.0)
        for value in values:  # numbers the SDK converts with float()
            sematic_metrics.log_metric(name, value, metric_type=MetricType.COUNT)
    assert sematic_metrics.flush(timeout=30)
    assert total(server, name, {"team": "nlp", "run_id": info.run_id, "root": True}) == 11.5


def test_non_finite_values_are_sent_as_the_strings_the_server_takes(
    server: ServerProcess, configure: Any
) -> None:
    labels = LabelSet({"run_id": "r"})
    body = json.loads(
        encode(
            {"run_id": "r"}, [(labels, "x", v, 1, 1.0, None) for v in (math.nan, math.inf, -math.inf, 0.5)]
        )
    )
    assert body["points"]["value"] == ["NaN", "Infinity", "-Infinity", 0.5]
    assert body["labels"] == {"run_id": "r"}
    configure(server.url)
    name = unique("nonfinite")
    with sematic_metrics.run() as info:
        for value in (math.nan, math.inf, -math.inf, 0.5):
            sematic_metrics.log_metric(name, value, metric_type=MetricType.COUNT)
    assert sematic_metrics.flush(timeout=30)
    assert sdk.stats().rejected == 0
    content = get(server, f"/api/v1/metrics/{name}", labels={"run_id": info.run_id}, rollup="auto")
    assert sum(v for v, _ in content["series"] if v is not None) == 0.5


def test_sematic_context_labels_are_resolved_in_the_background(
    server: ServerProcess, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, root_id = unique("srun"), unique("sroot")
    paths = {run_id: "sem.train", root_id: "sem.pipeline"}
    lookups: list[tuple[str, str]] = []

    def get_run(rid: str) -> Any:
        lookups.append((rid, threading.current_thread().name))
        return types.SimpleNamespace(function_path=paths[rid])

    future_context = types.ModuleType("sematic.future_context")
    future_context._current_context = types.SimpleNamespace(run_id=run_id, root_id=root_id)  # type: ignore[attr-defined]
    future_context.context = lambda: future_context._current_context  # type: ignore[attr-defined]
    api_client = types.ModuleType("sematic.api_client")
    api_client.get_run = get_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sematic.future_context", future_context)
    monkeypatch.setitem(sys.modules, "sematic.api_client", api_client)
    configure(server.url)
    name = unique("sem")
    for _ in range(3):
        sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
    assert sematic_metrics.flush(timeout=30)
    content = get(
        server, f"/api/v1/metrics/{name}", group_by="run_id,function_path,root_id,root_function_path"
    )
    assert content["series"] == [[3.0, [run_id, "sem.train", root_id, "sem.pipeline"]]]
    assert sorted(rid for rid, _ in lookups) == sorted([run_id, root_id])
    assert {thread for _, thread in lookups} == {"sematic-metrics-sender"}


def test_one_kept_alive_connection_for_many_batches(proxy: Proxy, configure: Any) -> None:
    configure(proxy.url, batch_size=5)
    name = unique("keepalive")
    with sematic_metrics.run():
        for _ in range(4):
            for _ in range(5):
                sematic_metrics.log_metric(name, 1.0)
            assert sematic_metrics.flush(timeout=30)
    assert len(proxy.keys) == 4
    assert len(set(proxy.keys)) == 4  # one key per batch
    assert proxy.connections == 1


def test_a_connection_closed_while_idle_is_replaced_at_once(
    server: ServerProcess, proxy: Proxy, configure: Any
) -> None:
    proxy.hang_up_after_answer = True
    configure(proxy.url, backoff_s=30, max_backoff_s=60)  # a backoff would outlast the flush
    name = unique("stale")
    with sematic_metrics.run() as info:
        for _ in range(3):
            sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
            assert sematic_metrics.flush(timeout=20)
    stats = sdk.stats()
    assert (stats.sent, stats.retried, stats.rejected) == (3, 2, 0)
    assert proxy.connections == 3
    assert total(server, name, {"run_id": info.run_id}) == 3


# -- retries -----------------------------------------------------------------------
def test_server_down_at_start_then_up_every_point_once(
    configure: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    late = sdk_server(tmp_path_factory.mktemp("late-server"))
    configure(late.url, batch_size=100)
    name = unique("late")
    try:
        with sematic_metrics.run() as info:
            for _ in range(1000):
                sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
        wait_until(lambda: sdk.stats().retried >= 2, what="two retries")
        assert sdk.stats().sent == 0
        late.start()
        assert sematic_metrics.flush(timeout=60)
        stats = sdk.stats()
        assert (stats.sent, stats.rejected, stats.dropped, stats.pending) == (1000, 0, 0, 0)
        assert total(late, name, {"run_id": info.run_id}) == 1000
    finally:
        late.stop()


@pytest.mark.parametrize(
    ("lose", "fail", "status"),
    [(2, 0, 0), (0, 2, 503), (0, 1, 429), (1, 1, 502)],
    ids=["lost-responses", "503", "429", "502-then-lost"],
)
def test_a_retried_batch_is_stored_once(
    server: ServerProcess, proxy: Proxy, configure: Any, lose: int, fail: int, status: int
) -> None:
    proxy.lose, proxy.fail, proxy.fail_status = lose, fail, status
    configure(proxy.url)
    name = unique("retry")
    with sematic_metrics.run() as info:
        for _ in range(250):
            sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
    assert sematic_metrics.flush(timeout=60)
    stats = sdk.stats()
    assert (stats.sent, stats.retried, stats.rejected, stats.pending) == (250, lose + fail, 0, 0)
    assert len(proxy.keys) == lose + fail + 1
    assert len(set(proxy.keys)) == 1  # every attempt carried the same Idempotency-Key
    assert total(server, name, {"run_id": info.run_id}) == 250
    if lose:
        assert b'"duplicate":true' in proxy.responses[-1]


@pytest.mark.parametrize("case", ["type-conflict-409", "bad-key-401"], ids=["409", "401"])
def test_a_4xx_batch_is_dropped_counted_and_logged_once(
    server: ServerProcess, configure: Any, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    name = unique("conflict")
    stored = httpx.post(
        f"{server.url}/api/v1/metrics",
        json={"metric_points": [{"name": name, "value": 1.0, "metric_type": 1, "metric_time": time.time()}]},
        headers={"X-API-KEY": API_KEY},
        timeout=30,
    )
    assert stored.status_code == 200
    if case == "bad-key-401":
        configure(server.url, api_key="not-the-key")
        kind = MetricType.GAUGE
    else:
        configure(server.url)
        kind = MetricType.COUNT
    with caplog.at_level(logging.WARNING, logger="sematic_metrics.sdk"), sematic_metrics.run() as info:
        for _ in range(3):
            sematic_metrics.log_metric(name, 5.0, metric_type=kind)
        assert sematic_metrics.flush(timeout=30)
    stats = sdk.stats()
    assert (stats.sent, stats.rejected, stats.retried, stats.pending) == (0, 3, 0, 0)
    rejected = [r for r in caplog.records if "rejected a batch of 3 points" in r.getMessage()]
    assert len(rejected) == 1
    assert ("HTTP 409" if case == "type-conflict-409" else "HTTP 401") in rejected[0].getMessage()
    assert total(server, name, {"run_id": info.run_id}) == 0
    # later batches still go through
    sdk.configure(api_key=API_KEY)
    good = unique("good")
    with sematic_metrics.run() as info:
        sematic_metrics.log_metric(good, 2.0)
    assert sematic_metrics.flush(timeout=30)
    assert sdk.stats().sent == 1
    assert metric_names(server, {"run_id": info.run_id}) == {good}


def test_a_batch_over_the_body_limit_is_split_not_lost(
    server: ServerProcess, proxy: Proxy, configure: Any
) -> None:
    proxy.max_body = 4000
    configure(proxy.url)
    name = unique("split")
    with sematic_metrics.run() as info:
        for _ in range(300):
            sematic_metrics.log_metric(name, 1, metric_type=MetricType.COUNT)
    assert sematic_metrics.flush(timeout=60)
    stats = sdk.stats()
    assert (stats.sent, stats.rejected, stats.retried) == (300, 0, 0)
    assert total(server, name, {"run_id": info.run_id}) == 300


# -- bounded buffer ------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["oldest", "newest"], ids=["drop-oldest", "drop-newest"])
def test_the_buffer_cap_holds(server: ServerProcess, proxy: Proxy, configure: Any, policy: str) -> None:
    proxy.mode = "close"  # the server is unreachable: nothing leaves the client
    configure(proxy.url, max_buffer=50, batch_size=10, drop_policy=policy)
    names = [f"cap_{i:04d}" for i in range(1000)]
    with sematic_metrics.run() as info:
        for name in names:
            sematic_metrics.log_metric(name, 1.0)  # never blocks on the unreachable server
    wait_until(lambda: sdk.stats().retried >= 1, what="a retry")
    client = sdk.metrics._client
    assert client is not None
    assert len(client.buffer) <= 50
    stats = sdk.stats()
    assert stats.logged == 1000
    assert stats.pending <= 60  # the buffer plus the one batch being retried
    assert stats.dropped == 1000 - stats.pending
    proxy.mode = "forward"
    assert sematic_metrics.flush(timeout=60)
    stats = sdk.stats()
    stored = metric_names(server, {"run_id": info.run_id})
    assert stats.sent == len(stored)
    assert stats.sent + stats.dropped == 1000
    if policy == "oldest":
        assert set(names[-50:]) <= stored
    else:
        assert set(names[:50]) <= stored
        assert sum(1 for n in stored if int(n[4:]) >= 500) <= 10


# -- flush, shutdown, validation -----------------------------------------------------
def test_flush_times_out_and_shutdown_counts_undelivered_points_as_failed(configure: Any) -> None:
    configure(f"http://127.0.0.1:{free_port()}")
    with sematic_metrics.run():
        for i in range(20):
            sematic_metrics.log_metric("unreachable", float(i))
    assert sematic_metrics.flush(timeout=0.3) is False
    client = sdk.metrics._client
    assert client is not None
    assert sdk.shutdown(timeout=0.2) is False
    stats = client.stats()
    assert (stats.logged, stats.sent, stats.failed, stats.pending) == (20, 0, 20, 0)
    assert sdk.stats().logged == 0  # a new client starts from zero


def test_flush_without_a_client_returns_at_once() -> None:
    reset_sdk()
    assert sematic_metrics.flush(timeout=0) is True
    assert sematic_metrics.stats().logged == 0


def test_outside_a_run_log_metric_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    sematic_metrics.sdk.context.refresh_env()
    with pytest.raises(NotInRunError, match="inside a run"):
        sematic_metrics.log_metric("loss", 0.3)
    sematic_metrics.sdk.context.refresh_env()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, InvalidInputError, "must not be empty"),
        ({"name": "   "}, InvalidInputError, "must not be empty"),
        ({"name": 3}, InvalidInputError, "must be a string"),
        ({"name": "x" * 1025}, InvalidInputError, "limit is 1024"),
        ({"value": "1.0"}, InvalidInputError, "not a real number"),
        ({"value": None}, InvalidInputError, "not a real number"),
        ({"value": True}, InvalidInputError, "boolean"),
        ({"value": 1j}, InvalidInputError, "not a real number"),
        ({"value": 10**400}, InvalidInputError, "not a real number"),
        ({"metric_type": 2}, InvalidInputError, "not a metric type"),
        ({"metric_type": True}, InvalidInputError, "not a MetricType"),
        ({"scope": "2"}, InvalidInputError, "not a scope"),
        ({"scope": None}, InvalidInputError, "not a scope"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "int-name",
        "long-name",
        "str-value",
        "none-value",
        "bool-value",
        "complex-value",
        "huge-int",
        "type-2",
        "type-bool",
        "scope-2",
        "scope-none",
    ],
)
def test_bad_calls_raise_at_the_call(
    configure: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    configure(f"http://127.0.0.1:{free_port()}")
    call = {"name": "ok_name", "value": 1.0, **kwargs}
    with sematic_metrics.run(), pytest.raises(error, match=match):
        sematic_metrics.log_metric(**call)
    assert sdk.stats().logged == 0


def test_a_name_keeps_its_type_within_the_process(server: ServerProcess, configure: Any) -> None:
    configure(server.url)
    name = unique("typed")
    with sematic_metrics.run() as info:
        sematic_metrics.log_metric(name, 1.0, metric_type=MetricType.COUNT)
        with pytest.raises(TypeConflictError, match="one type"):
            sematic_metrics.log_metric(name, 1.0)
        sematic_metrics.log_metric(name, 2.0, scope="1", metric_type=0)  # type: ignore[arg-type]
    assert sematic_metrics.flush(timeout=30)
    assert total(server, name, {"run_id": info.run_id}) == 3.0


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"url": "ftp://host"}, "not an http"),
        ({"batch_size": 0}, "positive integer"),
        ({"max_age_s": -1}, "positive number"),
        ({"drop_policy": "random"}, "drop_policy"),
        ({"colour": "blue"}, "unknown settings"),
    ],
    ids=["url", "batch-size", "max-age", "policy", "unknown"],
)
def test_configure_rejects_bad_settings(configure: Any, settings: dict[str, Any], match: str) -> None:
    with pytest.raises((ConfigError, InvalidInputError), match=match):
        sdk.configure(**settings)


# -- processes: import, env, exit, SIGTERM, fork ----------------------------------
def run_script(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_sdk_imports_no_server_package_and_reads_config_at_first_use(server: ServerProcess) -> None:
    code = f"""
        import json, os, sys
        import sematic_metrics
        from sematic_metrics import sdk
        from sematic_metrics.sdk import context
        from sematic_metrics.sdk import _sender
        os.environ["SEMATIC_METRICS_URL"] = {server.url!r}  # set after import: read at first use
        os.environ["SEMATIC_METRICS_API_KEY"] = {API_KEY!r}
        with sematic_metrics.run(run_id="import-check"):
            sematic_metrics.log_metric("import_check", 1.0)
        ok = sematic_metrics.flush(30)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {list(SERVER_MODULES)!r})
        print(json.dumps({{"loaded": loaded, "ok": ok, "sent": sematic_metrics.stats().sent}}))
    """
    result = run_script(code, clean_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"loaded": [], "ok": True, "sent": 1}


EXIT_SCRIPT = """
    import os, signal, sys, time
    import sematic_metrics
    from sematic_metrics import sdk
    mode = os.environ["MODE"]
    if mode == "chained":
        def handler(signum, frame):
            open(os.environ["MARKER"], "w").write("user handler ran")
            sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
    sdk.configure(max_age_s=60, batch_size=100000)  # only the exit hooks can deliver
    for _ in range(int(os.environ["POINTS"])):
        sematic_metrics.log_metric(os.environ["NAME"], 1, metric_type=sematic_metrics.MetricType.COUNT)
    if mode != "exit":
        open(os.environ["READY"], "w").write("ready")
        time.sleep(60)
"""


@pytest.mark.parametrize(
    ("mode", "returncode"),
    [("exit", 0), ("sigterm", -signal.SIGTERM), ("chained", 3)],
    ids=["normal-exit", "sigterm", "sigterm-chained-handler"],
)
def test_exit_flush_in_a_subprocess(
    server: ServerProcess, tmp_path: Path, mode: str, returncode: int
) -> None:
    name, run_id = unique("exit"), unique("envrun")
    env = clean_env(
        SEMATIC_METRICS_URL=server.url,
        SEMATIC_METRICS_API_KEY=API_KEY,
        SEMATIC_METRICS_RUN_ID=run_id,
        SEMATIC_METRICS_ROOT_ID="env-root",
        SEMATIC_METRICS_FUNCTION_PATH="jobs.child",
        MODE=mode,
        NAME=name,
        POINTS="500",
        READY=str(tmp_path / "ready"),
        MARKER=str(tmp_path / "marker"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        if mode != "exit":
            wait_until((tmp_path / "ready").exists, what="the child is ready")
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == returncode, stderr
    content = get(server, f"/api/v1/metrics/{name}", group_by="run_id,root_id,function_path")
    assert content["series"] == [[500.0, [run_id, "env-root", "jobs.child"]]]
    if mode == "chained":
        assert (tmp_path / "marker").read_text() == "user handler ran"


def test_no_sigterm_handler_when_first_used_off_the_main_thread(server: ServerProcess) -> None:
    code = f"""
        import signal, threading
        import sematic_metrics
        from sematic_metrics import sdk
        sdk.configure(url={server.url!r}, api_key={API_KEY!r})
        def work():
            with sematic_metrics.run():
                sematic_metrics.log_metric("thread_first", 1.0)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, sematic_metrics.flush(30))
    """
    result = run_script(code, clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


FORK_SCRIPT = """
    import json, multiprocessing, os, sys
    import sematic_metrics
    from sematic_metrics import sdk
    name, out = os.environ["NAME"], os.environ["OUT"]
    sdk.configure(max_age_s=60, batch_size=100000)  # the parent's points stay buffered across the fork

    def log(n):
        for _ in range(n):
            sematic_metrics.log_metric(name, 1, metric_type=sematic_metrics.MetricType.COUNT)

    def mp_child():
        with sematic_metrics.run(run_id=os.environ["RUN"] + "-mp"):
            log(4)  # no flush: delivered by the exit hook of a multiprocessing child

    with sematic_metrics.run(run_id=os.environ["RUN"] + "-parent"):
        log(5)
        pid = os.fork()
        if pid == 0:
            before = sdk.stats().logged
            with sematic_metrics.run(run_id=os.environ["RUN"] + "-child"):
                log(3)
            ok = sematic_metrics.flush(30)
            with open(out + ".child", "w") as f:
                json.dump({"before": before, "ok": ok, "sent": sdk.stats().sent}, f)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        proc = multiprocessing.get_context("fork").Process(target=mp_child)
        proc.start()
        proc.join(60)
    ok = sematic_metrics.flush(30)
    with open(out + ".parent", "w") as f:
        json.dump({"status": status, "mp": proc.exitcode, "ok": ok, "sent": sdk.stats().sent}, f)
"""


def test_fork_child_has_its_own_sender_and_never_resends_the_parents_points(
    server: ServerProcess, tmp_path: Path
) -> None:
    name, run = unique("fork"), unique("fork")
    out = str(tmp_path / "result")
    env = clean_env(
        SEMATIC_METRICS_URL=server.url, SEMATIC_METRICS_API_KEY=API_KEY, NAME=name, RUN=run, OUT=out
    )
    result = run_script(FORK_SCRIPT, env, timeout=90)
    assert result.returncode == 0, result.stderr
    child = json.loads(Path(out + ".child").read_text())
    parent = json.loads(Path(out + ".parent").read_text())
    assert child == {"before": 0, "ok": True, "sent": 3}
    assert parent == {"status": 0, "mp": 0, "ok": True, "sent": 5}
    content = get(server, f"/api/v1/metrics/{name}", group_by="run_id")
    assert sorted(content["series"]) == sorted(
        [[5.0, [f"{run}-parent"]], [3.0, [f"{run}-child"]], [4.0, [f"{run}-mp"]]]
    )


@pytest.mark.parametrize(
    "step",
    [True, 1.5, -1, "3", math.nan, 2**63],
    ids=["bool", "fraction", "negative", "string", "nan", "over-int64"],
)
def test_a_bad_step_raises_at_the_call(step: Any) -> None:
    with sematic_metrics.run(record=False), pytest.raises(InvalidInputError, match="step"):
        sematic_metrics.log_metric("loss", 0.5, step=step)


@pytest.mark.parametrize(
    "timestamp", [True, "now", math.nan, math.inf, -3e9], ids=["bool", "string", "nan", "inf", "before-1900"]
)
def test_a_bad_timestamp_raises_at_the_call(timestamp: Any) -> None:
    with sematic_metrics.run(record=False), pytest.raises(InvalidInputError, match="timestamp"):
        sematic_metrics.log_metric("loss", 0.5, timestamp=timestamp)


def test_steps_and_timestamps_reach_the_store(server: ServerProcess, configure: Any) -> None:
    configure(server.url)
    name = unique("stepped")
    with sematic_metrics.run(record=False) as info:
        sematic_metrics.log_metric(name, 1.0, step=0, timestamp=1_600_000_000.25)
        # A whole float is a step at run time, though the annotation says int.
        sematic_metrics.log_metric(name, 2.0, step=7.0, timestamp=1_600_000_001.5)  # type: ignore[arg-type]
        sematic_metrics.log_metric(name, 3.0)  # no step: stored without one, at the current time
    assert sematic_metrics.flush(timeout=30)
    answer = httpx.post(
        server.url + "/api/v1/sql",
        json={
            "sql": "SELECT value, step, toUnixTimestamp64Micro(metric_time) AS us FROM metric_points "
            "WHERE name = {n:String} AND run_id = {r:String} ORDER BY value",
            "params": {"n": name, "r": info.run_id},
            "format": "json",
        },
        headers={"X-API-KEY": API_KEY},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()["data"]
    assert [(r["value"], r["step"]) for r in rows] == [(1.0, 0), (2.0, 7), (3.0, None)]
    assert [int(r["us"]) for r in rows[:2]] == [1_600_000_000_250_000, 1_600_000_001_500_000]
    assert int(rows[2]["us"]) > 1_700_000_000_000_000
