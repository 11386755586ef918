"""The live stream: SSE of new and updated buckets of one run, against the real server."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from sematic_metrics.service import _stream_extents, _tiers
from sematic_metrics.service.store import Store
from tests._support import T0, compact, run_labels, wait_until

WAIT_S = 30.0  # generous: only a failure waits this long


class Events:
    """Reads one SSE connection on a thread; events and comments land in a queue."""

    def __init__(self, url: str, run_id: str, last_event_id: str | None = None, **params: str) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.client = httpx.Client(timeout=httpx.Timeout(60, read=None))
        self.response = self.client.send(
            self.client.build_request(
                "GET", f"{url}/api/v1/stream", params={"run_id": run_id, **params}, headers=headers
            ),
            stream=True,
        )
        self.items: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.last_id: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.items.put({"comment": line[1:].strip()})
                elif line.startswith("id: "):
                    event["id"] = line[4:]
                elif line.startswith("event: "):
                    event["event"] = line[7:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif line.startswith("retry: "):
                    self.items.put({"retry": int(line[7:])})
                elif line == "" and event:
                    self.items.put(event)
                    event = {}
        except httpx.HTTPError:
            pass
        self.items.put(None)

    def next(self, kind: str = "buckets") -> dict[str, Any]:
        """The next event of a kind (skipping others); fails if the stream ends first."""
        deadline = time.monotonic() + WAIT_S
        while True:
            item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            assert item is not None, f"stream ended while waiting for {kind!r}"
            if item.get("event") == kind or (kind == "comment" and "comment" in item):
                if "id" in item:
                    self.last_id = item["id"]
                return item
            if "id" in item:
                self.last_id = item["id"]

    def ended(self) -> bool:
        """True once the server closed the stream (waits for it)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            if item is None:
                return True
        return False

    def close(self) -> None:
        # Closing a socket another thread is reading from does not end the
        # connection on Linux; shutting it down does.
        sock = self.response.extensions["network_stream"].get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.client.close()


@pytest.fixture
def events(live: Any) -> Iterator[Any]:
    opened: list[Events] = []

    def open_stream(run_id: str, last_event_id: str | None = None, **params: str) -> Events:
        stream = Events(live.url, run_id, last_event_id, **params)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def post(
    client: httpx.Client,
    run_id: str,
    names: list[str],
    values: list[float],
    times: Sequence[float],
    types: list[int] | None = None,
) -> None:
    body = compact(run_labels(run_id), names, values, times, types)
    response = client.post("/api/v1/metrics", json=body)
    assert response.status_code == 200, response.text


def api_points(client: httpx.Client, run_id: str, name: str) -> list[list[float]]:
    """The chart data the dashboard loads: [[bucket start, value], ...]."""
    response = client.get(
        f"/api/v1/metrics/{name}", params={"labels": json.dumps({"run_id": run_id}), "rollup": "auto"}
    )
    assert response.status_code == 200, response.text
    return [[float(labels[0]), value] for value, labels in response.json()["content"]["series"]]


def metric(event: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in event["data"]["metrics"] if m["name"] == name]
    assert found, f"{name} not in {event['data']}"
    return found[0]


def test_run_id_is_required(client: httpx.Client) -> None:
    response = client.get("/api/v1/stream")
    assert response.status_code == 400
    assert "run_id" in response.json()["error"]


def test_ready_first_then_buckets_of_the_subscribed_run_only(client: httpx.Client, events: Any) -> None:
    post(client, "r1", ["loss"], [5.0], [T0])
    stream = events("r1")
    ready = stream.next("ready")
    assert ready["data"] == {"run_id": "r1", "resumed": False}
    assert ready["id"]
    post(client, "other", ["loss", "acc"], [1.0, 0.5], [T0 + 1, T0 + 1])
    post(client, "r1", ["loss"], [4.0], [T0 + 1])
    event = stream.next()
    assert event["data"]["run_id"] == "r1"
    assert [m["name"] for m in event["data"]["metrics"]] == ["loss"]
    loss = metric(event, "loss")
    assert loss == {
        "name": "loss",
        "metric_type": "GAUGE",
        "width_s": 0,
        "reset": False,
        "points": [[T0 + 1, 4.0]],
        "min": [4.0],
        "max": [4.0],
        "first": [4.0],
        "last": [4.0],
        "count": [1],
    }


@pytest.mark.parametrize(
    ("metric_type", "expected"),
    [(1, 2.0), (0, 4.0)],
    ids=["gauge-average", "count-sum"],
)
@pytest.mark.backends
def test_updated_raw_bucket_carries_full_aggregate(
    client: httpx.Client, events: Any, metric_type: int, expected: float
) -> None:
    post(client, "r1", ["m", "m"], [1.0, 2.0], [T0, T0 + 1], [metric_type] * 2)
    stream = events("r1")
    stream.next("ready")
    post(client, "r1", ["m"], [3.0], [T0], [metric_type])  # same timestamp as the first point
    loss = metric(stream.next(), "m")
    assert loss["points"] == [[T0, expected]]
    assert loss["metric_type"] == ("GAUGE" if metric_type else "COUNT")
    assert [T0, expected] in api_points(client, "r1", "m")


@pytest.mark.backends
def test_updated_wide_bucket_matches_the_api(client: httpx.Client, events: Any) -> None:
    # 400 distinct seconds: rollup=auto buckets them 2 s wide.
    times = [T0 + i for i in range(400)]
    post(client, "r1", ["loss"] * 400, [float(i) for i in range(400)], times)
    stream = events("r1")
    stream.next("ready")
    post(client, "r1", ["loss"], [1000.0], [T0 + 398.5])
    loss = metric(stream.next(), "loss")
    assert loss["width_s"] == 2
    assert loss["reset"] is False
    assert loss["points"] == [[T0 + 398, (398 + 399 + 1000) / 3]]
    assert loss["points"][0] in api_points(client, "r1", "loss")


@pytest.mark.backends
def test_width_change_and_new_metric_send_whole_series(client: httpx.Client, events: Any) -> None:
    post(client, "r1", ["loss"] * 300, [float(i) for i in range(300)], [T0 + i for i in range(300)])
    stream = events("r1")
    stream.next("ready")
    # The 301st distinct time switches rollup=auto from raw times to buckets: 700 s span -> 3 s.
    post(client, "r1", ["loss", "lr"], [7.0, 0.1], [T0 + 700, T0 + 700])
    event = stream.next()
    loss, lr = metric(event, "loss"), metric(event, "lr")
    assert loss["reset"] is True and loss["width_s"] == 3
    assert loss["points"] == api_points(client, "r1", "loss")
    assert lr["reset"] is True and lr["points"] == [[T0 + 700, 0.1]]


def test_nan_bucket_is_null(client: httpx.Client, events: Any) -> None:
    stream = events("r1")
    stream.next("ready")
    response = client.post(
        "/api/v1/metrics",
        json=compact(run_labels("r1"), ["loss"], ["NaN"], [T0]),
    )
    assert response.status_code == 200
    assert metric(stream.next(), "loss")["points"] == [[T0, None]]


def test_resume_with_last_event_id_replays_missed_events(client: httpx.Client, events: Any) -> None:
    first = events("r1")
    first.next("ready")
    post(client, "r1", ["loss"], [1.0], [T0])
    first.next()
    seen = first.last_id
    first.close()
    post(client, "r1", ["loss"], [2.0], [T0 + 1])
    post(client, "r1", ["loss"], [3.0], [T0 + 2])
    again = events("r1", last_event_id=seen)
    assert again.next("ready")["data"] == {"run_id": "r1", "resumed": True}
    replayed = [again.next(), again.next()]
    points = [p for event in replayed for p in metric(event, "loss")["points"]]
    assert points == [[T0 + 1, 2.0], [T0 + 2, 3.0]]
    post(client, "r1", ["loss"], [4.0], [T0 + 3])
    assert metric(again.next(), "loss")["points"] == [[T0 + 3, 4.0]]


@pytest.mark.parametrize(
    "last_id", ["00000000-1", "garbage", "too-old"], ids=["other-epoch", "garbage", "evicted"]
)
def test_unresumable_id_asks_client_to_reload(
    client: httpx.Client, events: Any, live: Any, last_id: str
) -> None:
    live.service.hub.replay_events = 1
    first = events("r1")
    first.next("ready")
    post(client, "r1", ["loss"], [1.0], [T0])
    first.next()
    if last_id == "too-old":
        last_id = first.last_id
        post(client, "r1", ["loss"], [2.0], [T0 + 1])
        post(client, "r1", ["loss"], [3.0], [T0 + 2])
        first.next()
        first.next()  # two newer events: the buffer of one no longer holds what follows last_id
    again = events("r1", last_event_id=last_id)
    ready = again.next("ready")
    assert ready["data"] == {"run_id": "r1", "resumed": False}
    assert ready["id"]


def test_keep_alive_comments(live: Any, events: Any) -> None:
    live.service.hub.keepalive_s = 0.2
    stream = events("r1")
    assert stream.items.get(timeout=WAIT_S) == {"retry": 1000}
    stream.next("ready")
    assert stream.next("comment")["comment"] == "keep-alive"


def test_stream_ends_after_max_duration_and_disconnect_unsubscribes(live: Any, events: Any) -> None:
    hub = live.service.hub
    hub.max_stream_s = 0.5
    stream = events("r1")
    stream.next("ready")
    assert stream.ended()
    hub.max_stream_s = 600
    second = events("r1")
    second.next("ready")
    assert len(hub.runs["r1"].subscribers) == 1
    second.close()
    wait_until(lambda: not hub.runs["r1"].subscribers, WAIT_S, "the closed stream is unsubscribed")


def test_openapi_documents_the_stream(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    described = paths["/api/v1/stream"]["get"]
    assert "Last-Event-ID" in described["description"]
    assert "text/event-stream" in described["responses"]["200"]["content"]


# -- the extents a stream starts from (_stream_extents) ------------------------------------
# name: (points, seconds between points; 0: four shared times). The tiers answer
# some metrics alone and send the others to the raw points.
_EXTENT_CASES = {
    "few": (50, 1.0),  # at most 300 points: raw
    "shared": (400, 0.0),  # 400 points at 4 times: raw, 4 times
    "dense": (1000, 0.1),  # 1000 times in 2 minute buckets: raw, too many times
    "long": (400, 60.0),  # 400 minute buckets: the tiers alone
    "two_a_minute": (302, 30.0),  # 151 buckets of 2 times: more than 300, the tiers alone
    "boundary": (300, 30.0),  # 150 buckets of 2: not known to exceed 300, raw: 300 times
    "before_1970": (400, 60.0),  # starts before 1970: raw, which leaves those out
}


def test_stream_extents_from_the_tiers_equal_the_raw_points(store: Store) -> None:
    for run_id in ("r1", "r2"):
        for name, (n, step_s) in _EXTENT_CASES.items():
            t0 = -600.0 if name == "before_1970" else T0 + (0 if run_id == "r1" else 86_400)
            store.command(
                "INSERT INTO metric_points (name, metric_type, metric_time, value, run_id, root_id, "
                "function_path, root_function_path, scope, user_id, labels, batch_id) "
                "SELECT {name:String}, 'GAUGE', fromUnixTimestamp64Micro(toInt64(({t0:Float64} "
                "+ if({step:Float64} = 0, number % 4, number * {step:Float64})) * 1e6), 'UTC'), "
                "if(number % 7 = 0, nan, toFloat64(number)), {run:String}, {run:String}, 'p', 'p', "
                "'0', '', map(), {batch:String} FROM numbers({n:UInt32})",
                {"name": name, "t0": t0, "step": step_s, "run": run_id, "n": n, "batch": f"{run_id}-{name}"},
            )
    assert _tiers.ready(store)
    for run_id in ("r1", "r2"):
        tiers = {row["name"]: row for row in _stream_extents.load(store, run_id)}
        raw = {row["name"]: row for row in _stream_extents._raw(store, run_id, None)}
        assert tiers.keys() == raw.keys() == set(_EXTENT_CASES)
        for name in _EXTENT_CASES:
            assert tiers[name] == raw[name], name
        assert raw["long"]["times"] is None and raw["dense"]["times"] is None
        assert raw["two_a_minute"]["times"] is None and len(raw["boundary"]["times"]) == 300
        assert raw["shared"]["times"] is not None and len(raw["shared"]["times"]) == 4
        assert raw["before_1970"]["first_us"] == 0
