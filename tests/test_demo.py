"""The demo: a few pipelines, runs in every state and a live run, through the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from sematic_metrics import sdk
from sematic_metrics.service import demo

STATES = {"CREATED", "SCHEDULED", "RAN", "RETRYING", "RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED"}


def test_demo_feeds_pipelines_runs_in_every_state_and_a_live_run(
    client: httpx.Client, live: Any, capsys: Any
) -> None:
    args = demo.parse_args(["--duration", "1", "--interval", "0.2", "--metrics", "5"])
    try:
        assert demo.feed(live.url, args) == 0
    finally:  # the demo configured this process's SDK: leave it as the other tests expect
        sdk.shutdown(timeout=10)
        sdk.configure(url=None, api_key=None, batch_size=None)
    printed = capsys.readouterr().out
    live_id = printed.split("/runs/")[1].split()[0]

    pipelines = client.get("/api/v1/pipelines").json()["content"]
    assert {p["function_path"] for p in pipelines} == set(demo.PIPELINES)
    states: set[str] = set()
    for p in pipelines:
        figures = client.get(f"/api/v1/pipelines/{p['function_path']}/metrics").json()["content"]
        states |= set(figures["count_by_state"])
    # The live run was SCHEDULED while it logged and is RESOLVED once the demo ends.
    assert states | {"SCHEDULED"} == STATES

    run = client.get(f"/api/v1/runs/{live_id}/record").json()["content"]
    assert run["future_state"] == "RESOLVED"
    names = client.get("/api/v1/metrics", params={"labels": json.dumps({"run_id": live_id})}).json()[
        "content"
    ]
    assert set(demo.live_metric_names(5)) <= set(names)
    scoped = {"__scope__": "1", "root_function_path": demo.LIVE_PIPELINE}
    assert client.get("/api/v1/metrics", params={"labels": json.dumps(scoped)}).json()["content"] == [
        "final_accuracy"
    ]


def test_demo_command_serves_its_own_store(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    env["SEMATIC_METRICS_DATA_DIR"] = str(tmp_path / "data")  # its own engine: its own directory
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sematic_metrics.service.demo",
            "--port",
            "0",
            "--duration",
            "1",
            "--metrics",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo: dashboard    http://127.0.0.1:" in done.stdout
    assert "demo: live run resolved after" in done.stdout
