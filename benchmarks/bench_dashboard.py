"""The dashboard in headless Chromium on a large store (issue 14's speed targets).

Loads points through the raw path (``Store.insert_arrow``, the rollup tiers
fill as on ingest) into its own temporary data directory, serves the app under
uvicorn in a thread of this process (one embedded engine per process), and
drives Debian's Chromium with Playwright:

- run page, ``--metrics`` metrics of ``--points`` points each (with steps):
  time from navigation until every chart of the first screen is drawn
  (target 1 s), then scrolling through every chart, a screen per frame:
  longest frame, p95 frame, long tasks, and when the charts in view at the
  end are drawn (charts scrolled past before their answer give way);
- pipeline page, ``--runs`` runs x ``--pipeline-metrics`` metrics of
  ``--points`` points, every run selected: time until every chart of the
  first screen has a line per run (target 2 s), and the last screen after
  jumping to the end.

Both pages are measured twice, with the series cache off so that every chart
is computed: right after the load (the first queries while the engine still
merges the parts the load wrote) and again once no merge runs. Times are read
in the page (``performance.now()`` since navigation). The machine is shared,
so figures are noisy; run it alone for the full sizes.

    .venv/bin/python benchmarks/bench_dashboard.py            # 100 x 100k; 20 runs x 10 x 100k
    .venv/bin/python benchmarks/bench_dashboard.py --quick    # 20 x 20k; 5 runs x 4 x 20k
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository root holds tests/
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from sematic_metrics.service.config import Settings  # noqa: E402
from sematic_metrics.service.migrate import migrate  # noqa: E402
from sematic_metrics.service.points_body import SCHEMA  # noqa: E402
from sematic_metrics.service.store import Store  # noqa: E402
from tests._support import CHROMIUM as _CHROMIUM  # noqa: E402
from tests._support import CHROMIUM_ARGS, LiveServer  # noqa: E402

CHROMIUM = str(_CHROMIUM)
ARGS = CHROMIUM_ARGS
BASE_TIME = 1_704_070_800.0
RUN_PIPELINE = "bench.dashboard.single"
COMPARE_PIPELINE = "bench.dashboard.compare"
FIRST_SCREEN_TARGET_S = 1.0
COMPARE_TARGET_S = 2.0
FRAME_TARGET_MS = 50.0  # RAIL: a frame within 50 ms keeps scrolling responsive


def points_table(run_id: str, pipeline: str, names: list[str], n: int, seed: int) -> pa.Table:
    """``n`` points with steps for each metric of one run: a noisy decaying curve."""
    rng = np.random.default_rng(seed)
    m = len(names)
    step = np.tile(np.arange(n, dtype=np.int64), m)
    micros = np.round((BASE_TIME + seed * 7200 + step * 0.1) * 1e6).astype(np.int64)
    scale = np.repeat(rng.uniform(0.5, 5.0, m), n)
    values = scale * (np.exp(-step / (n / 4)) + 0.05) * (1 + 0.1 * rng.standard_normal(m * n))
    name_of_row = pa.array(np.repeat(np.arange(m, dtype=np.int32), n))
    zeros = pa.array(np.zeros(m * n, dtype=np.int32))

    def const(text: str) -> pa.Array:
        return pa.array([text], pa.string()).take(zeros)

    empty = pa.array([], pa.string())
    columns = {
        "name": pa.array(names, pa.string()).take(name_of_row),
        "metric_type": pa.array(np.ones(m * n, dtype=np.int8), pa.int8()),
        "metric_time": pa.array(micros, pa.int64()).cast(SCHEMA.field("metric_time").type),
        "value": pa.array(values, pa.float64()),
        "step": pa.array(step, pa.int64()),
        "run_id": const(run_id),
        "root_id": const(run_id),
        "function_path": const(pipeline),
        "root_function_path": const(pipeline),
        "scope": const("0"),
        "user_id": const(""),
        "labels": pa.MapArray.from_arrays(pa.array(np.zeros(m * n + 1, dtype=np.int32)), empty, empty).cast(
            SCHEMA.field("labels").type
        ),
        "batch_id": const(""),
    }
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def run_record(run_id: str, pipeline: str, index: int, n: int) -> dict[str, Any]:
    start = BASE_TIME + index * 7200
    return {
        "id": run_id,
        "root_id": run_id,
        "function_path": pipeline,
        "name": f"trial-{index}",
        "future_state": "RESOLVED",
        "created_at": start - 1,
        "started_at": start,
        "resolved_at": start + n * 0.1,
        "ended_at": start + n * 0.1,
        "updated_at": start + n * 0.1,
    }


def load(store: Store, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    """The single run and the compared runs; returns the run's id and every run record."""
    t0 = time.monotonic()
    names = [f"group_{i // 10:02d}/metric_{i:03d}" for i in range(args.metrics)]
    single = "single" + "0" * 26
    rows = 0
    for i in range(0, len(names), 10):  # ten metrics an insert keeps memory bounded
        rows += store.insert_arrow(
            "metric_points", points_table(single, RUN_PIPELINE, names[i : i + 10], args.points, 0)
        )
    records = [run_record(single, RUN_PIPELINE, 0, args.points)]
    compared = [f"metric_{i:02d}" for i in range(args.pipeline_metrics)]
    for r in range(args.runs):
        run_id = f"cmp{r:03d}" + "0" * 26
        rows += store.insert_arrow(
            "metric_points", points_table(run_id, COMPARE_PIPELINE, compared, args.points, r + 1)
        )
        records.append(run_record(run_id, COMPARE_PIPELINE, r + 1, args.points))
    print(f"loaded {rows:,} points in {time.monotonic() - t0:.1f} s", flush=True)
    return single, records


FIRST_SCREEN = """(want) => {
    // Every chart card that intersects the viewport has drawn its lines.
    const cards = [...document.querySelectorAll('.chart-card')];
    if (!cards.length) return false;
    const inView = cards.filter((c) => {
        const r = c.getBoundingClientRect();
        return r.bottom > 0 && r.top < innerHeight;
    });
    const drawn = inView.every((c) => c.chart && c.chart.state === 'loaded' && c.chart.plot && !c.chart.stale
        && c.chart.lines.length >= want);
    return drawn ? { t: performance.now(), charts: inView.length } : false;
}"""

SCROLL = """async () => {
    // Scroll a screen per frame to the bottom; record every frame's duration and long tasks.
    const frames = [];
    const long = [];
    const observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) long.push(e.duration);
    });
    try { observer.observe({ type: 'longtask', buffered: false }); } catch {}
    const start = performance.now();
    let last = start;
    await new Promise((resolve) => {
        const tick = (now) => {
            frames.push(now - last);
            last = now;
            const before = scrollY;
            scrollBy(0, innerHeight * 0.8);
            if (scrollY === before && scrollY + innerHeight >= document.body.scrollHeight - 2) resolve();
            else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
    });
    // A few more frames while the last charts load.
    const frame = () => new Promise((r) => requestAnimationFrame((now) => {
        frames.push(now - last);
        last = now;
        r();
    }));
    for (let i = 0; i < 30; i++) await frame();
    observer.disconnect();
    return { start, frames, long };
}"""


REQUESTS = """() => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/'))
    .map((e) => ({
        url: e.name.replace(location.origin, ''),
        start: e.startTime,
        end: e.responseEnd,
        wait: e.responseStart - e.requestStart,
    }))"""


def critical_path(page: Page, until_ms: float) -> list[str]:
    """The API requests that ended before a mark, in the order they ended: what the figure waited on."""
    entries = [e for e in page.evaluate(REQUESTS) if e["end"] <= until_ms + 1]
    entries.sort(key=lambda e: e["end"])
    return [
        f"{e['start']:7.0f} -> {e['end']:7.0f} ms (server {e['wait']:5.0f} ms) {e['url'][:110]}"
        for e in entries
    ]


def measure_run_page(page: Page, url: str, run_id: str) -> dict[str, Any]:
    page.goto(f"{url}/dashboard/runs/{run_id}")
    first = page.wait_for_function(FIRST_SCREEN, arg=1, polling="raf", timeout=120_000).json_value()
    first["path"] = critical_path(page, first["t"])
    scrolled = page.evaluate(SCROLL)
    last = page.wait_for_function(FIRST_SCREEN, arg=1, polling="raf", timeout=600_000).json_value()
    frames = sorted(scrolled["frames"][1:])
    created = page.evaluate("() => document.querySelectorAll('.chart-card .uplot').length")
    return {
        "first_screen_s": first["t"] / 1000,
        "first_screen_charts": first["charts"],
        "first_screen_path": first["path"],
        "scroll_frames": len(frames),
        "scroll_max_frame_ms": frames[-1],
        "scroll_p95_frame_ms": frames[int(0.95 * (len(frames) - 1))],
        "scroll_median_frame_ms": statistics.median(frames),
        "long_tasks": len(scrolled["long"]),
        "long_task_ms": sum(scrolled["long"]),
        "last_screen_after_scroll_start_s": (last["t"] - scrolled["start"]) / 1000,
        "plots_created": created,
    }


def measure_pipeline_page(page: Page, url: str, run_ids: list[str]) -> dict[str, Any]:
    # Every run selected through the address (?runs=), as a shared link opens it.
    page.goto(f"{url}/dashboard/pipelines/{COMPARE_PIPELINE}?runs={','.join(run_ids)}")
    page.wait_for_selector(".chart-card")
    page.evaluate("() => document.querySelector('.charts').scrollIntoView()")
    first = page.wait_for_function(
        FIRST_SCREEN, arg=len(run_ids), polling="raf", timeout=120_000
    ).json_value()
    first["path"] = critical_path(page, first["t"])
    page.evaluate("() => scrollTo(0, document.body.scrollHeight)")
    done = page.wait_for_function(
        FIRST_SCREEN, arg=len(run_ids), polling="raf", timeout=600_000
    ).json_value()["t"]
    return {
        "first_screen_s": first["t"] / 1000,
        "first_screen_charts": first["charts"],
        "first_screen_path": first["path"],
        "all_drawn_s": done / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: 20 x 20k; 5 runs x 4 x 20k")
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pipeline-metrics", type=int, default=10)
    args = parser.parse_args(argv)
    if args.quick:
        args.metrics, args.points, args.runs, args.pipeline_metrics = 20, 20_000, 5, 4
    passes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        # Series cache off: every chart's answer is computed, on both passes.
        settings = Settings(
            data_dir=Path(tmp), database="bench_dashboard", read_pool_size=4, series_cache_mb=0
        )
        with Store(settings) as store:
            migrate(store)
            single, records = load(store, args)
            with LiveServer(settings) as live, live.client() as client:
                client.post("/api/v1/runs", json={"runs": records}).raise_for_status()
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                    compared = [r["id"] for r in records[1:]]
                    for label in ("right after the load", "once merges settled"):
                        if passes:
                            waited = settle(store)
                            label += f" ({waited:.0f} s after the first pass)"
                        context = browser.new_context(viewport={"width": 1400, "height": 1000})
                        run = measure_run_page(context.new_page(), live.url, single)
                        context.close()
                        context = browser.new_context(viewport={"width": 1400, "height": 1000})
                        pipe = measure_pipeline_page(context.new_page(), live.url, compared)
                        context.close()
                        passes.append((label, run, pipe))
                    browser.close()
    for label, run, pipe in passes:
        report(args, label, run, pipe)
    return 0


def settle(store: Store, limit_s: float = 600) -> float:
    """Wait until the engine has run no merge of this database for 3 s in a
    row; returns the seconds waited."""
    t0 = time.monotonic()
    quiet = 0
    while quiet < 3 and time.monotonic() - t0 < limit_s:
        busy = store.query("SELECT count() FROM system.merges WHERE database = currentDatabase()")[0][0]
        quiet = 0 if busy else quiet + 1
        time.sleep(1)
    return time.monotonic() - t0


def report(args: argparse.Namespace, label: str, run: dict[str, Any], pipe: dict[str, Any]) -> None:
    print()
    print(f"== {label}")
    print(f"run page, {args.metrics} metrics x {args.points:,} points")
    print(
        f"  first screen drawn ({run['first_screen_charts']} charts): "
        f"{run['first_screen_s']:.2f} s   target <= {FIRST_SCREEN_TARGET_S:.0f} s"
    )
    print(
        "  API requests before it (start -> end since navigation):", *run["first_screen_path"], sep="\n    "
    )
    print(
        f"  scrolling through all {args.metrics}: longest frame {run['scroll_max_frame_ms']:.0f} ms, "
        f"p95 {run['scroll_p95_frame_ms']:.0f} ms, median {run['scroll_median_frame_ms']:.0f} ms "
        f"({run['scroll_frames']} frames)   target p95 <= {FRAME_TARGET_MS:.0f} ms"
    )
    print(f"  long tasks while scrolling: {run['long_tasks']} ({run['long_task_ms']:.0f} ms in all)")
    print(
        f"  charts in view at the end drawn {run['last_screen_after_scroll_start_s']:.2f} s after the scroll "
        f"began ({run['plots_created']} of {args.metrics} charts created: those scrolled into view)"
    )
    print(f"pipeline page, {args.runs} runs x {args.pipeline_metrics} metrics x {args.points:,} points")
    print(
        f"  first screen drawn ({pipe['first_screen_charts']} charts, {args.runs} lines each): "
        f"{pipe['first_screen_s']:.2f} s   target <= {COMPARE_TARGET_S:.0f} s"
    )
    print(
        "  API requests before it (start -> end since navigation):", *pipe["first_screen_path"], sep="\n    "
    )
    print(f"  the last screen drawn after jumping to the end: {pipe['all_drawn_s']:.2f} s since navigation")


if __name__ == "__main__":
    sys.exit(main())
