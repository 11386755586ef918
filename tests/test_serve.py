"""Round trips through a real `sematic-metrics serve` process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support import T0, ServerProcess, compact, run_labels


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data") as server:
        yield server


def test_round_trip_through_serve_process(served: ServerProcess) -> None:
    body = compact(run_labels("r1"), ["loss"] * 3, [3.0, 2.0, 1.0], [T0, T0 + 1, T0 + 2])
    with httpx.Client(base_url=served.url, timeout=30) as c:
        assert c.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "k1"}).status_code == 200
        content = c.get("/api/v1/metrics/loss", params={"rollup": "auto", "to_time": T0 + 10}).json()
    assert content["content"]["series"] == [[3.0, [str(T0)]], [2.0, [str(T0 + 1)]], [1.0, [str(T0 + 2)]]]


def test_data_survives_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    body = compact(run_labels("r1"), ["m"] * 2, [1.0, 2.0], [T0, T0 + 1], types=[0, 0])
    for attempt in range(2):
        with server:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                response = c.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": "same"})
                assert response.json()["content"]["duplicate"] is (attempt == 1)
                series = c.get("/api/v1/metrics/m", params={"to_time": T0 + 5}).json()["content"]["series"]
                assert series == [[3.0, []]]
            # uvicorn re-raises SIGTERM after a clean shutdown
            assert server.stop() in (0, -signal.SIGTERM)


def test_second_process_on_same_data_dir_fails_clearly(served: ServerProcess, tmp_path: Path) -> None:
    second = ServerProcess(served.data_dir, log_path=tmp_path / "second.log")
    with pytest.raises(RuntimeError, match="server exited with 2") as info:
        second.start()
    assert str(served.data_dir.resolve()) in str(info.value)
    assert "in use" in str(info.value)
