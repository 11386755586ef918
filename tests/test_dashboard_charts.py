"""The dashboard's charts in headless Chromium (Debian's package, driven by
Playwright) against the real server and GET /api/v1/series: the step axis,
zooming down to raw points, the min-max band, run comparison, edge cases and
a live point. Screenshots go to test-artifacts/screenshots/charts-*.png."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from sematic_metrics.service.demo import run_record
from tests._support import CHROMIUM, CHROMIUM_ARGS, REPO, SHOTS, T0, UPLOT, compact

ARGS = CHROMIUM_ARGS
ROOT = REPO
VENDOR = UPLOT
WAIT_MS = 30_000  # generous: only a failure waits this long
PIPELINE = "charts.pipelines.train"
EDGES = "charts.pipelines.edges"
GAUGE, COUNT = 1, 0
STEPS = 2000

pytestmark = pytest.mark.browser


# -- data -------------------------------------------------------------------------
def labels(run_id: str, pipeline: str = PIPELINE) -> dict[str, str]:
    return {"run_id": run_id, "root_id": run_id, "function_path": pipeline, "root_function_path": pipeline}


def spike(step: int) -> float:
    """A noisy loss curve (every other step 50% above, then below, the trend)
    with a spike every 500 steps that averaging would hide."""
    if step % 500 == 250:
        return 10.0
    return 2.0 / (1 + step / 200) * (1.5 if step % 2 else 0.5)


def training_runs() -> list[dict[str, Any]]:
    """Four runs of one pipeline, three hours apart: loss and tokens logged with
    steps; the oldest run logs loss without steps; lr is logged against time only."""
    runs = []
    for i in range(4):
        run_id = f"run{i}" + "0" * 24 + f"{i:04x}"
        created = T0 + i * 3 * 3600.0
        runs.append({"id": run_id, "created": created, "steps": i > 0, "name": f"trial-{i}"})
    return runs


def seed(client: httpx.Client) -> dict[str, Any]:
    """Store the runs and points every test here reads; returns their ids."""
    runs = training_runs()
    records = []
    for run in runs:
        record = run_record(run["id"], run["id"], PIPELINE, "RESOLVED", run["created"], 600.0)
        record["name"] = run["name"]
        records.append(record)
    edge_id = "edges" + "0" * 27
    records.append(run_record(edge_id, edge_id, EDGES, "RESOLVED", T0, 60.0))
    assert client.post("/api/v1/runs", json={"runs": records}).status_code == 200
    for run in runs:
        start = run["created"] + 2.0
        steps = list(range(STEPS))
        times = [start + 0.25 * s for s in steps]
        names = ["loss"] * STEPS + ["tokens"] * STEPS + ["lr"] * STEPS
        values = [spike(s) * (1 + 0.1 * int(run["id"][-1], 16)) for s in steps]
        values += [512.0] * STEPS + [1e-3 * (1 - s / STEPS) for s in steps]
        types = [GAUGE] * STEPS + [COUNT] * STEPS + [GAUGE] * STEPS
        step_col: list[int | None] = [s if run["steps"] else None for s in steps]
        step_col += [*steps, *([None] * STEPS)]
        body = compact(labels(run["id"]), names, values, times * 3, types, step_col)
        assert client.post("/api/v1/metrics", json=body).status_code == 200
    edges: dict[str, tuple[list[Any], list[float], list[int | None], int]] = {
        "one_point": ([0.5], [T0 + 1], [5], GAUGE),
        "two_points": ([0.5, 0.7], [T0 + 1, T0 + 2], [0, 10], GAUGE),
        "same_step": ([float(v) for v in range(50)], [T0 + 1 + i for i in range(50)], [7] * 50, GAUGE),
        "same_instant": ([float(v) for v in range(50)], [T0 + 3] * 50, [None] * 50, GAUGE),
        "nan_only": (["NaN"] * 20, [T0 + i for i in range(20)], list(range(20)), GAUGE),
        "nan_gaps": (
            ["NaN" if 40 <= i < 60 else math.sin(i / 10) for i in range(100)],
            [T0 + i for i in range(100)],
            list(range(100)),
            GAUGE,
        ),
        "events": ([1.0] * 1501, [T0 + i * 0.01 for i in range(1501)], list(range(1501)), COUNT),
    }
    for name, (values, times, edge_steps, kind) in edges.items():
        kinds = [kind] * len(values)
        body = compact(labels(edge_id, EDGES), [name] * len(values), values, times, kinds, edge_steps)
        assert client.post("/api/v1/metrics", json=body).status_code == 200, name
    return {"runs": [r["id"] for r in runs], "edges": edge_id}


# -- browser ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


class Watched:
    """A page with its console errors, page errors and /api/v1/series requests recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.series: list[dict[str, str]] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("request", self._request)

    def _request(self, request: Request) -> None:
        url = urllib.parse.urlsplit(request.url)
        if url.path == "/api/v1/series":
            self.series.append(dict(urllib.parse.parse_qsl(url.query)))


@pytest.fixture
def seeded(live: Any) -> dict[str, Any]:
    with live.client() as client:
        return seed(client)


@pytest.fixture
def watched(browser: Browser, live: Any) -> Iterator[Watched]:
    assert VENDOR.exists(), (
        "uPlot is missing from sematic_metrics/service/static/vendor/: run scripts/install_assets.sh"
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield Watched(page)
    context.close()


def card(page: Page, metric: str) -> Any:
    return page.locator(f'.chart-card[data-metric="{metric}"]')


def wait_loaded(page: Page, metric: str) -> None:
    card(page, metric).scroll_into_view_if_needed()
    page.wait_for_function(
        """(m) => {
            const c = document.querySelector(`.chart-card[data-metric="${m}"]`);
            return c && c.dataset.state === "loaded" && c.querySelector("canvas, .placeholder");
        }""",
        arg=metric,
    )


def shot(page: Page, name: str, target: Any = None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    (target or page).screenshot(path=str(SHOTS / f"charts-{name}.png"))


BAND_PIXELS = """([metric, bucket]) => {
    // In the plot's pixel column at a bucket: the share of painted pixels
    // between the bucket's max and min (the band) and above its max.
    const chart = document.querySelector(`.chart-card[data-metric="${metric}"]`).chart;
    const u = chart.plot;
    const line = chart.lines[0];
    const i = line.x.indexOf(bucket);
    const x = Math.round(u.valToPos(line.x[i], "x", true));
    const top = Math.round(u.valToPos(line.max[i], "y", true));
    const bottom = Math.round(u.valToPos(line.min[i], "y", true));
    const column = u.ctx.getImageData(x, 0, 1, u.ctx.canvas.height).data;
    const painted = (from, to) => {
        let n = 0;
        for (let y = from; y < to; y++) if (column[4 * y + 3] > 0) n += 1;
        return n / Math.max(1, to - from);
    };
    return {
        inside: painted(top + 2, bottom - 1),
        above: painted(Math.round(u.bbox.top), top - 4),
        rows: bottom - top,
        min: line.min[i], max: line.max[i], value: line.value[i],
    };
}"""


def chart_eval(page: Page, metric: str, expression: str) -> Any:
    """``expression`` evaluated with ``c``, the chart of ``metric`` (charts.js MetricChart)."""
    find = "document.querySelector(`.chart-card[data-metric='${m}']`).chart"
    return page.evaluate(f"(m) => {{ const c = {find}; return {expression}; }}", metric)


# -- tests ------------------------------------------------------------------------
def test_step_axis_and_band_from_min_max(live: Any, seeded: dict[str, Any], watched: Watched) -> None:
    page = watched.page
    run = seeded["runs"][1]
    page.goto(f"{live.url}/dashboard/runs/{run}")
    wait_loaded(page, "loss")
    chart = card(page, "loss")
    assert chart.get_attribute("data-axis") == "step"
    assert chart_eval(page, "loss", "c.plot.axes[0].label") == "step"
    loss_requests = [r for r in watched.series if r["name"] == "loss"]
    assert loss_requests[0]["x"] == "step"
    # About one bucket per pixel of the plot.
    plot_px = chart_eval(page, "loss", "c.plot.bbox.width / devicePixelRatio")
    assert 0.9 * plot_px <= int(loss_requests[-1]["buckets"]) <= 1.1 * plot_px
    # lr was logged without steps: its chart falls back to time.
    wait_loaded(page, "lr")
    assert card(page, "lr").get_attribute("data-axis") == "time"
    # The band: each bucket is shaded from its min to its max, not just its average.
    width = int(float(chart.get_attribute("data-width") or "0"))
    assert width > 1, "2000 steps in a few hundred pixels are bucketed"
    pixels = page.evaluate(BAND_PIXELS, ["loss", 60 - 60 % width])
    assert pixels["max"] > pixels["value"] > pixels["min"], pixels
    assert pixels["rows"] >= 8, pixels
    assert pixels["inside"] > 0.9, pixels  # shaded between min and max
    assert pixels["above"] < 0.3, pixels  # above the max: only grid lines
    # A spike inside a bucket is the bucket's max, though its average hides it.
    spike = page.evaluate(BAND_PIXELS, ["loss", 250 - 250 % width])
    assert spike["max"] == pytest.approx(10.0 * 1.1) and spike["value"] < 10.0
    shot(page, "run-step-axis-bands")
    assert watched.errors == []


def drag(page: Page, metric: str, start: float, end: float) -> None:
    """Drag across the plot of a chart, from and to fractions of its width."""
    box = card(page, metric).locator(".u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
    page.mouse.up()


def test_zoom_asks_a_narrower_range_until_raw_points(
    live: Any, seeded: dict[str, Any], watched: Watched
) -> None:
    page = watched.page
    page.goto(f"{live.url}/dashboard/runs/{seeded['runs'][2]}")
    wait_loaded(page, "loss")
    chart = card(page, "loss")
    assert float(chart.get_attribute("data-width") or "0") > 0
    spans = [float(STEPS)]
    while chart.get_attribute("data-width") != "0":
        assert len(spans) < 6, f"still bucketed after {len(spans) - 1} zooms: {spans}"
        asked = len(watched.series)
        drag(page, "loss", 0.40, 0.50)
        page.wait_for_function(
            """(last) => {
                const c = document.querySelector('.chart-card[data-metric="loss"]');
                const r = c.chart.range;
                return c.dataset.state === "loaded" && r && r.hi - r.lo < last;
            }""",
            arg=spans[-1],
        )
        wait_loaded(page, "loss")
        zoomed = [r for r in watched.series[asked:] if r["name"] == "loss"]
        assert zoomed, "zooming asks the series again"
        span = float(zoomed[-1]["to"]) - float(zoomed[-1]["from"])
        assert span < spans[-1], "each zoom asks a narrower range"
        spans.append(span)
    assert "raw points" in chart.locator(".resolution").inner_text()
    page.mouse.move(0, 0)  # the tooltip off the picture
    shot(page, "zoomed", chart)
    asked = len(watched.series)
    chart.locator(".u-over").dblclick()
    page.wait_for_function(
        "() => { const c = document.querySelector('.chart-card[data-metric=\"loss\"]');"
        " return !c.classList.contains('zoomed') && c.dataset.state === 'loaded'; }"
    )
    reset = [r for r in watched.series[asked:] if r["name"] == "loss"]
    assert reset and "from" not in reset[-1], "double-click asks the whole series again"
    assert float(chart.get_attribute("data-width") or "0") > 0
    assert watched.errors == []


def test_pipeline_page_compares_runs(live: Any, seeded: dict[str, Any], watched: Watched) -> None:
    page = watched.page
    page.goto(f"{live.url}/dashboard/pipelines/{PIPELINE}")
    wait_loaded(page, "loss")
    selected = page.locator("#runs input[type=checkbox]:checked")
    assert selected.count() == 4
    legend = card(page, "loss").locator(".legend .entry:not(.missing)")
    missing = card(page, "loss").locator(".legend .entry.missing")
    # The oldest run logged loss without steps: it is listed, not drawn, on the step axis.
    assert legend.count() + missing.count() == 4
    assert missing.count() == 1 and "no steps" in missing.inner_text()
    names = legend.all_inner_texts()
    assert all("trial-" in n for n in names)
    # One run less: one legend entry less, on every chart.
    page.locator(f'#runs input[data-run="{seeded["runs"][3]}"]').uncheck()
    page.wait_for_function(
        "() => document.querySelectorAll('.chart-card[data-metric=\"loss\"] .legend .entry').length === 3"
    )
    wait_loaded(page, "tokens")
    assert card(page, "tokens").locator(".legend .entry").count() == 3
    # Stable colours: a run has the same colour on every chart.
    colours = page.evaluate(
        """() => [...document.querySelectorAll('.chart-card')].map(c =>
            Object.fromEntries((c.chart.lines || []).map(l => [l.source.id, l.color])))"""
    )
    by_run: dict[str, set[str]] = {}
    for chart_colours in colours:
        for run, colour in chart_colours.items():
            by_run.setdefault(run, set()).add(colour)
    assert by_run and all(len(c) == 1 for c in by_run.values()), by_run
    page.locator("button[data-axis=relative]").click()
    page.wait_for_function("() => document.querySelector('.chart-card').dataset.axis === 'relative'")
    wait_loaded(page, "loss")
    shot(page, "pipeline-compare")
    assert watched.errors == []


@pytest.mark.parametrize(
    "metric",
    ["one_point", "two_points", "same_step", "same_instant", "nan_only", "nan_gaps", "events"],
    ids=["one-point", "two-points", "one-step", "one-instant", "nan-only", "nan-gaps", "count-partial"],
)
def test_edge_cases_render(live: Any, seeded: dict[str, Any], watched: Watched, metric: str) -> None:
    page = watched.page
    page.goto(f"{live.url}/dashboard/runs/{seeded['edges']}")
    wait_loaded(page, metric)
    chart = card(page, metric)
    x_range = page.evaluate(
        "(m) => { const c = document.querySelector(`.chart-card[data-metric='${m}']`).chart;"
        " return c.plot ? [c.plot.scales.x.min, c.plot.scales.x.max, c.axis] : null; }",
        metric,
    )
    if metric == "nan_only":  # said in words; a plot of it, if any, is checked below
        assert "none finite" in chart.inner_text()
        if x_range is None:
            shot(page, f"edge-{metric}", chart)
            assert watched.errors == []
            return
    assert x_range is not None
    lo, hi, axis = x_range
    assert hi > lo
    # Never an axis spanning years: at most the data's own extent plus a little room.
    assert hi - lo <= (STEPS if axis == "step" else 3600), x_range
    shot(page, f"edge-{metric}", chart)
    assert watched.errors == []


LIVE_CASES = [
    # metric, run key, new point (value, time, step): a step-axis chart, and raw points on the time axis
    pytest.param("loss", "train", (123.0, T0 + 3 * 3600 + 10_000.0, STEPS + 5000), id="step-axis"),
    pytest.param("same_instant", "edges", (99.0, T0 + 4.0, None), id="time-axis-raw"),
]


@pytest.mark.parametrize(("metric", "which", "new"), LIVE_CASES)
def test_live_point_reaches_open_chart_as_a_fresh_load_would(
    live: Any,
    seeded: dict[str, Any],
    watched: Watched,
    metric: str,
    which: str,
    new: tuple[float, float, int | None],
) -> None:
    page = watched.page
    run = seeded["runs"][1] if which == "train" else seeded["edges"]
    page.goto(f"{live.url}/dashboard/runs/{run}")
    wait_loaded(page, metric)
    page.wait_for_function("() => document.querySelector('#live').classList.contains('on')")
    last = chart_eval(page, metric, "c.lines[0].x.at(-1)")
    value, t, step = new
    asked_before = len(watched.series)
    with live.client() as client:
        pipeline = PIPELINE if which == "train" else EDGES
        body = compact(labels(run, pipeline), [metric], [value], [t], [GAUGE], [step])
        assert client.post("/api/v1/metrics", json=body).status_code == 200
    page.wait_for_function(
        """([m, last, v]) => {
            const l = document.querySelector(`.chart-card[data-metric="${m}"]`).chart.lines[0];
            return l.x.at(-1) > last && l.max.at(-1) === v;
        }""",
        arg=[metric, last, value],
    )
    reloads = [r for r in watched.series[asked_before:] if r["name"] == metric]
    if which == "edges":
        # Raw points on the time axis, as the stream sends them: merged, not fetched again.
        assert reloads == []
    # The chart holds what a fresh load of the same request answers: every statistic.
    asked = [r for r in watched.series if r["name"] == metric][-1]
    with live.client() as client:
        fresh = client.get("/api/v1/series", params=asked).json()["content"]["series"][0]
    keys = ["x", "value", "min", "max", "first", "last", "count"]
    shown = chart_eval(page, metric, f"Object.fromEntries({keys}.map((k) => [k, c.lines[0][k]]))")
    assert shown == {key: fresh[key] for key in shown}
    assert watched.errors == []


def test_run_page_adds_runs_pins_and_filters(live: Any, seeded: dict[str, Any], watched: Watched) -> None:
    page = watched.page
    run, other = seeded["runs"][1], seeded["runs"][2]
    page.goto(f"{live.url}/dashboard/runs/{run}")
    wait_loaded(page, "loss")
    assert not card(page, "loss").locator(".legend").is_visible(), "one run: no legend needed"
    # Another run of the same pipeline joins every chart, with its own colour.
    page.locator("#compare-picker summary").click()
    page.locator(f'#compare-picker input[data-run="{other}"]').check()
    page.wait_for_function(
        "() => document.querySelectorAll('.chart-card[data-metric=\"loss\"] .legend .entry').length === 2"
    )
    legend = card(page, "loss").locator(".legend").inner_text()
    assert "trial-1" in legend and "trial-2" in legend and other[:8] in legend
    # Pinned: first on the page, and still after a reload; the filter hides the rest.
    card(page, "tokens").locator("button.pin").click()
    assert page.locator(".chart-card").first.get_attribute("data-metric") == "tokens"
    page.reload()
    page.wait_for_selector('.chart-card[data-metric="tokens"]')
    assert page.locator(".chart-card").first.get_attribute("data-metric") == "tokens"
    page.locator(".toolbar input[type=search]").fill("los")
    assert page.locator(".chart-card:visible").count() == 1
    assert "1 of 3 metrics" in page.locator(".metric-count").inner_text()
    assert watched.errors == []


def test_download_gives_every_raw_point(live: Any, seeded: dict[str, Any], watched: Watched) -> None:
    page = watched.page
    run = seeded["runs"][1]
    page.goto(f"{live.url}/dashboard/runs/{run}")
    wait_loaded(page, "loss")
    chart = card(page, "loss")
    assert float(chart.get_attribute("data-width") or "0") > 0, "the chart shows buckets"
    chart.locator(".export summary").click()
    with page.expect_download() as download:
        chart.locator(".export button[data-format=csv]").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].split(",")[:4] == ['"x"', '"metric_time"', '"step"', '"value"']
    assert len(rows) == 1 + STEPS, "one row per logged point, not per bucket"
    assert download.value.suggested_filename.endswith(".csv")
    assert watched.errors == []


@pytest.mark.parametrize(
    ("state", "status", "in_progress"),
    [("SCHEDULED", "running", True), ("RAN", "running", True), ("FAILED", "failed", False)],
    ids=["scheduled", "ran", "failed"],
)
def test_run_state_is_named_by_the_api(
    live: Any, watched: Watched, state: str, status: str, in_progress: bool
) -> None:
    run_id = f"state-{state.lower()}"
    with live.client() as client:
        record = run_record(run_id, run_id, PIPELINE, state, T0, 60.0)
        assert client.post("/api/v1/runs", json={"runs": [record]}).status_code == 200
        body = compact(labels(run_id), ["loss"], [1.0], [T0 + 5], [GAUGE], [0])
        assert client.post("/api/v1/metrics", json=body).status_code == 200
        listed = client.get(f"/api/v1/pipelines/{PIPELINE}/runs").json()["content"]
        got = client.get(f"/api/v1/runs/{run_id}/record").json()["content"]
    assert [(r["status"], r["in_progress"]) for r in listed if r["id"] == run_id] == [(status, in_progress)]
    assert (got["status"], got["in_progress"]) == (status, in_progress)
    page = watched.page
    page.goto(f"{live.url}/dashboard/runs/{run_id}")
    page.wait_for_function("(s) => document.querySelector('h1 .state')?.textContent === s", arg=status)
    assert page.locator("h1 .state").get_attribute("data-state") == state
    page.goto(f"{live.url}/dashboard/pipelines/{PIPELINE}")
    row = page.locator(f'#runs tr[data-run="{run_id}"] .state')
    assert row.inner_text() == status
    assert watched.errors == []


def test_zoom_on_relative_time_asks_each_run_its_own_range(
    live: Any, seeded: dict[str, Any], watched: Watched
) -> None:
    page = watched.page
    page.goto(f"{live.url}/dashboard/pipelines/{PIPELINE}")
    page.locator("button[data-axis=relative]").click()
    wait_loaded(page, "lr")
    assert card(page, "lr").get_attribute("data-axis") == "relative"
    asked = len(watched.series)
    drag(page, "lr", 0.2, 0.4)
    page.wait_for_function(
        """() => {
            const c = document.querySelector('.chart-card[data-metric="lr"]').chart;
            return c.state === "loaded" && c.range && c.lines.length === 4;
        }"""
    )
    lo, hi = chart_eval(page, "lr", "[c.range.lo, c.range.hi]")
    zoomed = [r for r in watched.series[asked:] if r["name"] == "lr"]
    starts = sorted(float(r["from"]) for r in zoomed)
    # One request per run (they started hours apart), each at that run's start plus the range.
    assert len(starts) == 4 and starts[-1] - starts[0] >= 3 * 3 * 3600 - 1
    xs = chart_eval(page, "lr", "c.lines.flatMap((l) => l.x)")
    assert xs and all(lo - 2 <= x < hi for x in xs), (lo, hi, min(xs), max(xs))
    assert watched.errors == []
