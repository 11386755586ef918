"""A realistic demo: a few pipelines, runs in every state, and one training
run that keeps logging live.

``sematic-metrics demo`` (or ``make demo``) starts the service in this process
on the embedded engine, in its own database (``sematic_metrics_demo``,
emptied first), feeds it through the SDK like any pipeline, prints the dashboard's
address and keeps the live run logging until interrupted. ``--url`` feeds a
server that is already running instead.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import sematic_metrics
from sematic_metrics.errors import SematicMetricsError
from sematic_metrics.service.config import Settings
from sematic_metrics.wire import MetricScope, MetricType

GAUGE, COUNT = 1, 0
PIPELINES = {
    "demo.pipelines.train_classifier": ("load_data", "train_model", "evaluate"),
    "demo.pipelines.etl_daily": ("extract", "transform", "load"),
    "demo.pipelines.hyperparameter_sweep": ("sample_params", "train_trial", "pick_best"),
    "demo.pipelines.batch_inference": ("load_model", "predict", "write_results"),
}
LIVE_PIPELINE = "demo.pipelines.train_classifier"
# Outcome weights per pipeline: every Sematic state appears somewhere.
OUTCOMES = {
    "demo.pipelines.train_classifier": {"RESOLVED": 14, "FAILED": 3, "NESTED_FAILED": 2, "CANCELED": 1},
    "demo.pipelines.etl_daily": {"RESOLVED": 26, "FAILED": 2},
    "demo.pipelines.hyperparameter_sweep": {"RESOLVED": 5, "CANCELED": 3, "NESTED_FAILED": 2},
    "demo.pipelines.batch_inference": {"RESOLVED": 8, "FAILED": 1},
}
IN_PROGRESS = {
    "demo.pipelines.etl_daily": "RETRYING",
    "demo.pipelines.hyperparameter_sweep": "RAN",
    "demo.pipelines.batch_inference": "CREATED",
}
TRAIN_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate", "grad_norm")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sematic-metrics demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="feed this running server instead of starting one")
    parser.add_argument("--api-key", default="", help="API key to send (X-API-KEY)")
    parser.add_argument("--host", default=None, help="bind address of the demo server (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port of the demo server (default 8000)")
    parser.add_argument("--database", default="sematic_metrics_demo", help="database the demo fills")
    parser.add_argument("--keep", action="store_true", help="keep what the demo database holds")
    parser.add_argument("--metrics", type=int, default=12, help="metrics logged by the live run")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between live steps")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: never)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def live_metric_names(count: int) -> list[str]:
    names = [*TRAIN_METRICS, "examples_seen", "tokens_processed"]
    extra = [f"layer_{i:02d}.grad_norm" for i in range(max(0, count - len(names)))]
    return (names + extra)[: max(1, count)]


def curve(name: str, step: float, rng: random.Random, offset: float = 0.0) -> tuple[float, int]:
    """A plausible value of a training metric at a step, and its type."""
    s = step + offset
    noise = rng.gauss(0, 1)
    if name == "examples_seen":
        return 256.0, COUNT
    if name == "tokens_processed":
        return float(int(256 * 512 * (0.9 + 0.2 * rng.random()))), COUNT
    if name == "loss":
        return 2.3 * math.exp(-s / 220) + 0.25 + 0.04 * noise, GAUGE
    if name == "val_loss":
        return 2.3 * math.exp(-s / 260) + 0.32 + 0.03 * noise, GAUGE
    if name == "accuracy":
        return min(0.995, 0.98 - 0.88 * math.exp(-s / 180) + 0.01 * noise), GAUGE
    if name == "val_accuracy":
        return min(0.99, 0.95 - 0.85 * math.exp(-s / 210) + 0.01 * noise), GAUGE
    if name == "learning_rate":
        return 3e-4 * min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, 3000) / 3000)), GAUGE
    # grad norms: decaying with spikes
    spike = 4.0 if rng.random() < 0.01 else 0.0
    return abs(1.5 * math.exp(-s / 400) + 0.3 + 0.15 * noise + spike), GAUGE


class Feeder:
    """Feeds the service through the SDK, like any pipeline: run records with
    ``log_run`` and points with ``log_metric`` (backdated with ``timestamp``)."""

    def __init__(self, url: str, api_key: str = "") -> None:
        sematic_metrics.configure(url=url, api_key=api_key or None, batch_size=20_000)

    def runs(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            sematic_metrics.log_run(
                r["id"],
                r["function_path"],
                r["future_state"],
                r["created_at"],
                root_id=r["root_id"],
                parent_id=r["parent_id"],
                name=r["name"],
                started_at=r["started_at"],
                ended_at=r["ended_at"],
                original_run_id=r["original_run_id"],
            )

    def points(
        self,
        labels: dict[str, str],
        names: list[str],
        values: list[float],
        times: list[float],
        types: list[int],
        steps: list[int] | None = None,
    ) -> None:
        """Log points of one root run; the SDK's sender batches them."""
        scope = MetricScope.PIPELINE if labels.get("__scope__") == "1" else MetricScope.RUN
        with sematic_metrics.run(
            run_id=labels["run_id"], function_path=labels["function_path"], record=False
        ):
            for i, (name, value, t, kind) in enumerate(zip(names, values, times, types, strict=True)):
                step = None if steps is None else steps[i]
                sematic_metrics.log_metric(name, value, scope, MetricType(kind), step=step, timestamp=t)

    def flush(self) -> None:
        if not sematic_metrics.flush(timeout=None):  # the service runs in this process: wait
            raise RuntimeError(f"the demo's points did not reach the service: {sematic_metrics.stats()}")
        failed = sematic_metrics.stats()
        if failed.rejected or failed.runs_rejected:
            raise RuntimeError(f"the service rejected demo data: {failed}")


def run_record(
    run_id: str,
    root_id: str,
    function_path: str,
    state: str,
    created: float,
    duration: float,
    parent_id: str | None = None,
    original_run_id: str | None = None,
) -> dict[str, Any]:
    started = created + 2.0
    end = started + duration
    terminal = state in ("RESOLVED", "FAILED", "NESTED_FAILED", "CANCELED")
    return {
        "id": run_id,
        "root_id": root_id,
        "parent_id": parent_id,
        "function_path": function_path,
        "name": function_path.rsplit(".", 1)[-1],
        "future_state": state,
        "original_run_id": original_run_id,
        "created_at": created,
        "started_at": None if state == "CREATED" else started,
        "resolved_at": end if state == "RESOLVED" else None,
        "failed_at": end if state in ("FAILED", "NESTED_FAILED") else None,
        "ended_at": end if terminal else None,
        "updated_at": end if terminal else started,
    }


def labels_of(
    run_id: str, root_id: str, function_path: str, root_path: str, scope: str = "0"
) -> dict[str, str]:
    return {
        "run_id": run_id,
        "root_id": root_id,
        "function_path": function_path,
        "root_function_path": root_path,
        "__scope__": scope,
    }


def fill_history(feeder: Feeder, rng: random.Random, now: float) -> int:
    """Finished and in-progress runs of every pipeline, with their metrics."""
    records: list[dict[str, Any]] = []
    total = 0
    for pipeline, steps in PIPELINES.items():
        outcomes = OUTCOMES[pipeline]
        states = [s for s, n in outcomes.items() for _ in range(n)]
        rng.shuffle(states)
        base = {"demo.pipelines.etl_daily": 95.0, "demo.pipelines.batch_inference": 240.0}.get(
            pipeline, 600.0
        )
        for i, state in enumerate(states):
            root = uuid.uuid4().hex
            created = now - (len(states) - i) * 3 * 3600 - rng.uniform(0, 1800)
            duration = base * rng.uniform(0.7, 1.4)
            cloned = pipeline == "demo.pipelines.batch_inference" and i % 4 == 3 and state == "RESOLVED"
            original = records[-4]["id"] if cloned and len(records) >= 4 else None
            records.append(
                run_record(root, root, pipeline, state, created, duration, original_run_id=original)
            )
            offset = 2.0
            for n, step in enumerate(steps):
                child_state = state
                if state == "NESTED_FAILED":
                    child_state = "FAILED" if n == len(steps) - 1 else "RESOLVED"
                elif state in ("FAILED", "CANCELED") and n < len(steps) - 1:
                    child_state = "RESOLVED"
                share = duration / len(steps)
                child = run_record(
                    uuid.uuid4().hex,
                    root,
                    f"{pipeline}.{step}",
                    child_state,
                    created + offset,
                    share * 0.9,
                    root,
                )
                records.append(child)
                offset += share
            total += log_finished_run(feeder, rng, pipeline, root, state, created, duration)
        running = IN_PROGRESS.get(pipeline)
        if running:
            root = uuid.uuid4().hex
            records.append(run_record(root, root, pipeline, running, now - 300, 0))
    feeder.runs(records)
    feeder.flush()
    return total


def log_finished_run(
    feeder: Feeder,
    rng: random.Random,
    pipeline: str,
    run_id: str,
    state: str,
    created: float,
    duration: float,
) -> int:
    """Metrics of a finished run: a training curve, or counters for the others."""
    if state == "CANCELED":
        return 0
    names: list[str] = []
    values: list[float] = []
    times: list[float] = []
    types: list[int] = []
    stepnums: list[int] | None = None
    start = created + 2.0
    if pipeline in (LIVE_PIPELINE, "demo.pipelines.hyperparameter_sweep"):
        steps = 240 if state == "RESOLVED" else 90
        offset = rng.uniform(-30, 30)
        stepnums = []
        for step in range(steps):
            t = start + duration * step / steps
            for name in (*TRAIN_METRICS, "examples_seen"):
                value, kind = curve(name, step, rng, offset)
                names.append(name)
                values.append(value)
                times.append(t)
                types.append(kind)
                stepnums.append(step)
    else:
        for minute in range(max(2, int(duration // 10))):
            t = start + minute * 10
            for name, value in (
                ("rows_processed", float(rng.randint(8_000, 12_000))),
                ("bad_rows", float(rng.randint(0, 30))),
                ("batch_latency_ms", rng.lognormvariate(4.2, 0.25)),
            ):
                names.append(name)
                values.append(value)
                times.append(t)
                types.append(COUNT if name != "batch_latency_ms" else GAUGE)
    if state == "RESOLVED":  # a pipeline-scope metric: one point per successful run
        final = (
            "final_accuracy"
            if pipeline in (LIVE_PIPELINE, "demo.pipelines.hyperparameter_sweep")
            else "rows_total"
        )
        value = rng.uniform(0.9, 0.97) if final == "final_accuracy" else float(rng.randint(300_000, 420_000))
        scope = labels_of(run_id, run_id, pipeline, pipeline, scope="1")
        feeder.points(scope, [final], [value], [start + duration], [GAUGE])
    if names:
        feeder.points(labels_of(run_id, run_id, pipeline, pipeline), names, values, times, types, stepnums)
    return len(names)


class LiveRun:
    """A training run that keeps logging: history first, then one step per tick."""

    def __init__(self, feeder: Feeder, rng: random.Random, metric_count: int, now: float) -> None:
        self.feeder = feeder
        self.rng = rng
        self.id = "live-" + uuid.uuid4().hex[:12]
        self.names = live_metric_names(metric_count)
        self.created = now - 602
        self.step = 0
        self.pace = 1.0
        self.labels = labels_of(self.id, self.id, LIVE_PIPELINE, LIVE_PIPELINE)
        self.children = [
            run_record(
                uuid.uuid4().hex,
                self.id,
                f"{LIVE_PIPELINE}.load_data",
                "RESOLVED",
                self.created + 2,
                40,
                self.id,
            ),
            run_record(
                uuid.uuid4().hex,
                self.id,
                f"{LIVE_PIPELINE}.train_model",
                "SCHEDULED",
                self.created + 45,
                0,
                self.id,
            ),
        ]

    def begin(self, interval: float, history_s: float = 600.0) -> None:
        self.pace = min(1.0, interval / 2)  # the curves advance as if one step took 2 s
        record = run_record(self.id, self.id, LIVE_PIPELINE, "SCHEDULED", self.created, 0)
        self.feeder.runs([record, *self.children])
        start = time.time() - history_s
        steps = int(history_s / interval)
        self.log([start + i * interval for i in range(steps)])

    def log(self, times: list[float]) -> None:
        names: list[str] = []
        values: list[float] = []
        stamps: list[float] = []
        types: list[int] = []
        steps: list[int] = []
        for t in times:
            for name in self.names:
                value, kind = curve(name, self.step * self.pace, self.rng)
                names.append(name)
                values.append(value)
                stamps.append(t)
                types.append(kind)
                steps.append(self.step)
            self.step += 1
        self.feeder.points(self.labels, names, values, stamps, types, steps)
        self.feeder.flush()

    def finish(self) -> None:
        now = time.time()
        record = run_record(self.id, self.id, LIVE_PIPELINE, "RESOLVED", self.created, now - self.created - 2)
        children = [
            {**child, "future_state": "RESOLVED", "resolved_at": now, "ended_at": now, "updated_at": now}
            for child in self.children
        ]
        self.feeder.runs([record, *children])


@contextlib.contextmanager
def serve(settings: Settings, fresh: bool) -> Iterator[str]:
    """The service on a thread of this process; yields its URL."""
    import uvicorn

    from sematic_metrics.service._sse import Server
    from sematic_metrics.service.app import create_app
    from sematic_metrics.service.store import Store

    if fresh:
        with Store(replace(settings, database="default")) as store:
            store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", lifespan="on")
    server = Server(config)
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SematicMetricsError(
                f"the demo server did not start on {settings.host}:{settings.port}; "
                "is the port taken? Pick another with --port"
            )
        time.sleep(0.05)
    try:
        yield f"http://{settings.host}:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def feed(url: str, args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    feeder = Feeder(url, args.api_key)
    started = time.monotonic()
    points = fill_history(feeder, rng, time.time())
    live = LiveRun(feeder, rng, args.metrics, time.time())
    live.begin(interval=args.interval)
    finished = sum(n for outcomes in OUTCOMES.values() for n in outcomes.values())
    print(
        f"demo: {finished} finished runs, {points} points, in {time.monotonic() - started:.1f} s", flush=True
    )
    print(f"demo: dashboard    {url}/dashboard/", flush=True)
    print(
        f"demo: live run     {url}/dashboard/runs/{live.id}"
        f"  (a step every {args.interval:g} s; Ctrl+C stops)",
        flush=True,
    )
    deadline = time.monotonic() + args.duration if args.duration > 0 else math.inf
    try:
        while time.monotonic() < deadline:
            time.sleep(args.interval)
            live.log([time.time()])
    except KeyboardInterrupt:
        pass
    live.finish()
    feeder.flush()
    print(f"demo: live run resolved after {live.step} steps", flush=True)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl+C: resolve the live run, stop serving
    if args.url:
        return feed(args.url.rstrip("/"), args)
    settings = Settings.from_env()
    settings = replace(
        settings,
        database=args.database,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
    )
    if not args.api_key and settings.api_keys:
        writer = next((k for k in settings.api_keys if "write" in k.scopes or "admin" in k.scopes), None)
        args.api_key = writer.key if writer else ""
    try:
        with serve(settings, fresh=not args.keep) as url:
            return feed(url, args)
    except SematicMetricsError as exc:
        print(f"sematic-metrics demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
