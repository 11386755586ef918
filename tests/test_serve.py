"""Round trips through a real `sematic-metrics serve` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._points import T0, compact, run_labels
from tests.conftest import free_port

CLI = [sys.executable, "-m", "sematic_metrics.cli"]


def start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "SEMATIC_METRICS_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    code = proc.wait(30)
    if proc.stdout:
        proc.stdout.close()
    return code


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    proc = start(tmp_path / "data", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, tmp_path / "data", proc
    finally:
        stop(proc)


def test_round_trip_through_serve_process(served: tuple[str, Path, subprocess.Popen[str]]) -> None:
    url, _, _ = served
    body = compact(run_labels("r1"), ["loss"] * 3, [3.0, 2.0, 1.0], [T0, T0 + 1, T0 + 2])
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "k1"}).status_code == 200
        content = c.get("/api/v1/metrics/loss", params={"rollup": "auto", "to_time": T0 + 10}).json()
    assert content["content"]["series"] == [[3.0, [str(T0)]], [2.0, [str(T0 + 1)]], [1.0, [str(T0 + 2)]]]


def test_data_survives_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    body = compact(run_labels("r1"), ["m"] * 2, [1.0, 2.0], [T0, T0 + 1], types=[0, 0])
    for attempt in range(2):
        proc = start(tmp_path / "data", port)
        try:
            wait_healthy(url, proc)
            with httpx.Client(base_url=url, timeout=30) as c:
                response = c.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "same"})
                assert response.json()["content"]["duplicate"] is (attempt == 1)
                assert c.get("/api/v1/metrics/m", params={"to_time": T0 + 5}).json()["content"]["series"] == [
                    [3.0, []]
                ]
        finally:
            assert stop(proc) in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown


def test_second_process_on_same_data_dir_fails_clearly(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    _, data_dir, _ = served
    second = start(data_dir, free_port())
    output, _ = second.communicate(timeout=60)
    if second.stdout:
        second.stdout.close()
    assert second.returncode == 2
    assert str(data_dir.resolve()) in output
    assert "in use" in output
