"""The dashboard in headless Chromium (Debian's package, driven by Playwright)
against the real server. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from sematic_metrics.service.demo import run_record
from tests._support import CHROMIUM, CHROMIUM_ARGS, REPO, SHOTS, UPLOT

ARGS = CHROMIUM_ARGS
ROOT = REPO
VENDOR = UPLOT
WAIT_MS = 30_000  # generous: only a failure waits this long

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's Chromium at /usr/bin/chromium: "
            "apt-get install -y chromium (.ci/run installs it)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, live: Any) -> Iterator[Page]:
    assert VENDOR.exists(), (
        "uPlot is missing from sematic_metrics/service/static/vendor/: run scripts/install_assets.sh"
    )
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()  # closes the page's live stream before the server stops
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def load_all_charts(page: Page) -> None:
    """Scroll every chart into view (they load lazily) and wait until each is drawn."""
    for card in page.query_selector_all(".chart-card"):
        card.scroll_into_view_if_needed()
        page.wait_for_function("(card) => card.dataset.points !== undefined", arg=card)
    page.evaluate("window.scrollTo(0, 0)")


# -- what the page shows, in the page's own formats ----------------------------
def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    total = math.floor(s + 0.5)
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    minutes = total // 60
    return f"{minutes // 60} h {minutes % 60} min"


def close(value: str, expected: float | None) -> bool:
    if expected is None:
        return value == ""
    return math.isclose(float(value), expected, rel_tol=1e-9)


# -- data ----------------------------------------------------------------------
def post_runs(client: httpx.Client, records: list[dict[str, Any]]) -> None:
    response = client.post("/api/v1/runs", json={"runs": records})
    assert response.status_code == 200, response.text


def post_points(
    client: httpx.Client,
    labels: dict[str, str],
    names: list[str],
    values: list[float],
    times: list[float],
    types: list[int] | None = None,
) -> float:
    body = {
        "labels": labels,
        "points": {
            "name": names,
            "value": values,
            "metric_type": types if types is not None else [1] * len(names),
            "metric_time": times,
        },
    }
    response = client.post("/api/v1/metrics", json=body)
    assert response.status_code == 200, response.text
    return time.time()  # the acknowledgement


def run_labels(run_id: str, pipeline: str, scope: str = "0") -> dict[str, str]:
    return {
        "run_id": run_id,
        "root_id": run_id,
        "function_path": pipeline,
        "root_function_path": pipeline,
        "__scope__": scope,
    }


def pipelines_fixture(client: httpx.Client) -> None:
    now = time.time()
    records = []
    a, b = "tests.pipeline_a", "tests.pipeline_b"
    for i, (state, duration) in enumerate(
        [("RESOLVED", 60.0), ("RESOLVED", 90.0), ("RESOLVED", 120.0), ("FAILED", 30.0), ("CANCELED", 10.0)]
    ):
        records.append(run_record(f"a{i}", f"a{i}", a, state, now - 7200 + i * 600, duration))
        records.append(
            run_record(f"a{i}.step", f"a{i}", f"{a}.step", state, now - 7190 + i * 600, duration / 2, f"a{i}")
        )
    records.append(run_record("a-clone", "a-clone", a, "RESOLVED", now - 1200, 5.0, original_run_id="a0"))
    records.append(run_record("a-now", "a-now", a, "SCHEDULED", now - 60, 0.0))
    records.append(run_record("b0", "b0", b, "RESOLVED", now - 9000, 4000.0))
    records.append(run_record("b1", "b1", b, "NESTED_FAILED", now - 3000, 50.0))
    post_runs(client, records)
    for i in range(3):
        post_points(
            client,
            run_labels(f"a{i}", a, scope="1"),
            ["final_accuracy"],
            [0.9 + i / 100],
            [now - 7000 + i * 600],
        )


# -- tests ---------------------------------------------------------------------
def test_pipeline_figures_match_the_api(client: httpx.Client, live: Any, page: Page) -> None:
    pipelines_fixture(client)
    page.goto(f"{live.url}/dashboard/")
    page.wait_for_selector("#pipelines tbody tr")
    expected = client.get("/api/v1/pipelines").json()["content"]
    rows = page.eval_on_selector_all(
        "#pipelines tbody tr",
        """rows => rows.map(tr => ({
            pipeline: tr.dataset.pipeline,
            cells: Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map(
                td => [td.dataset.field, [td.dataset.value ?? null, td.textContent]]))
        }))""",
    )
    assert [r["pipeline"] for r in rows] == [p["function_path"] for p in expected]
    for row, want in zip(rows, expected, strict=True):
        cells = row["cells"]
        assert cells["run_count"] == [str(want["run_count"]), fmt_count(want["run_count"])]
        assert close(cells["success_rate"][0], want["success_rate"])
        assert cells["success_rate"][1] == fmt_pct(want["success_rate"])
        assert close(cells["avg_run_time_s"][0], want["avg_run_time_s"])
        assert cells["avg_run_time_s"][1] == fmt_duration(want["avg_run_time_s"])
        assert close(cells["last_run_at"][0], want["last_run_at"])
    a = next(p for p in expected if p["function_path"] == "tests.pipeline_a")
    assert (a["run_count"], a["success_rate"], a["avg_run_time_s"]) == (7, 0.75, 90.0)
    screenshot(page, "1-pipelines-index")

    page.click('tr[data-pipeline="tests.pipeline_a"] td[data-field="run_count"]')
    page.wait_for_url("**/pipelines/tests.pipeline_a")
    page.wait_for_selector("#figures")
    want = client.get("/api/v1/pipelines/tests.pipeline_a/metrics").json()["content"]
    shown = page.eval_on_selector_all(
        "#figures .stat",
        "cards => cards.map(c => [c.dataset.stat, c.dataset.value, c.querySelector('.value').textContent])",
    )
    figures = {"run_count": fmt_count, "success_rate": fmt_pct, "avg_run_time_s": fmt_duration}
    assert [key for key, _, _ in shown] == list(figures)
    for key, value, text in shown:
        assert close(value, want[key]), key
        assert text == figures[key](want[key])
    states = page.eval_on_selector_all(
        ".states .state", "els => els.map(e => [e.dataset.state, Number(e.dataset.count)])"
    )
    assert dict(states) == want["count_by_state"]

    page.wait_for_selector("#runs tbody tr")
    runs = client.get("/api/v1/pipelines/tests.pipeline_a/runs").json()["content"]
    listed = page.eval_on_selector_all(
        "#runs tbody tr", "rows => rows.map(r => [r.dataset.run, r.querySelector('.state').dataset.state])"
    )
    assert listed == [[r["id"], r["future_state"]] for r in runs]
    assert listed[0] == ["a-now", "SCHEDULED"]

    chart = page.wait_for_selector('.chart-card[data-metric="final_accuracy"]')
    assert chart is not None
    chart.scroll_into_view_if_needed()
    page.wait_for_selector('.chart-card[data-metric="final_accuracy"][data-points="3"]')
    assert "average per bucket" in chart.inner_text()
    screenshot(page, "2-pipeline")


def test_point_posted_while_run_page_is_open_is_painted(client: httpx.Client, live: Any, page: Page) -> None:
    pipeline = "tests.train"
    now = time.time()
    post_runs(client, [run_record("live1", "live1", pipeline, "SCHEDULED", now - 200, 0.0)])
    base = int(now) - 300  # every point, the live ones too, lies in the past
    times = [float(base + 2 * i) for i in range(50)]
    post_points(
        client,
        run_labels("live1", pipeline),
        ["loss"] * 50,
        [2 * math.exp(-i / 15) for i in range(50)],
        times,
    )
    post_points(client, run_labels("live1", pipeline), ["examples"] * 50, [32.0] * 50, times, [0] * 50)

    page.goto(f"{live.url}/dashboard/runs/live1")
    page.wait_for_selector("#live.on")
    page.wait_for_selector('.chart-card[data-metric="loss"][data-points="50"]')
    page.wait_for_selector('.chart-card[data-metric="examples"][data-points="50"]')
    assert "average per bucket" in page.inner_text('.chart-card[data-metric="loss"] .kind')
    assert "sum per bucket" in page.inner_text('.chart-card[data-metric="examples"] .kind')
    series_requests: list[str] = []
    page.on("request", lambda r: series_requests.append(r.url) if "/api/v1/metrics" in r.url else None)

    t_new = float(base + 120)
    post_points(client, run_labels("live1", pipeline), ["loss"], [0.125], [t_new])
    page.wait_for_function(
        "x => document.querySelector('.chart-card[data-metric=\"loss\"]').dataset.lastX === x",
        arg=str(int(t_new)),
    )
    assert page.get_attribute('.chart-card[data-metric="loss"]', "data-last-y") == "0.125"

    # An updated bucket carries its full aggregate: a second count at an existing time sums.
    post_points(client, run_labels("live1", pipeline), ["examples"], [10.0], [times[10]], [0])
    page.wait_for_function(
        """x => { const line = document.querySelector('.chart-card[data-metric="examples"]').chart.lines[0];
                  return line.value[line.x.indexOf(x)] === 42; }""",
        arg=times[10],
    )
    assert series_requests == [], "live updates must not refetch whole series"

    # Values on hover, drag to zoom (kept across live updates), double-click to reset.
    loss = '.chart-card[data-metric="loss"]'
    box = page.locator(f"{loss} .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    assert page.inner_text(f"{loss} .tooltip td.num >> nth=0") not in ("", "—")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    zoom = f"document.querySelector('{loss}').chart.plot.scales.x"
    zoomed = page.evaluate(f"[{zoom}.min, {zoom}.max]")
    assert times[0] < zoomed[0] < zoomed[1] < t_new
    inside = float(int((zoomed[0] + zoomed[1]) / 2))  # a zoomed chart holds its range: a point in it
    post_points(client, run_labels("live1", pipeline), ["loss"], [0.25], [inside])
    page.wait_for_function(f"document.querySelector('{loss}').chart.lines[0].x.includes({inside})")
    assert page.evaluate(f"[{zoom}.min, {zoom}.max]") == zoomed
    page.dblclick(f"{loss} .u-over")
    page.wait_for_function(f"{zoom}.max >= {t_new}")

    # EMA smoothing adds a smoothed series; the log scale switches the y distribution.
    page.fill(".toolbar input[type=range]", "0.6")
    page.wait_for_function(
        f"document.querySelector('{loss}').chart.plot.series.some((s) => s.label.endsWith(' raw'))"
    )
    page.check(".toolbar input[type=checkbox]")
    page.wait_for_function(f"document.querySelector('{loss}').chart.plot.scales.y.distr === 3")

    page.click('.tabs button[data-tab="details"]')
    assert "tests.train" in page.inner_text(".crumbs")
    page.click('.tabs button[data-tab="metrics"]')
    load_all_charts(page)
    screenshot(page, "3-run")


def test_run_page_shows_pipeline_panel(client: httpx.Client, live: Any, page: Page) -> None:
    pipelines_fixture(client)
    page.goto(f"{live.url}/dashboard/runs/a1")
    panel = client.get("/api/v1/runs/a1/metrics").json()["content"]
    page.wait_for_selector('#pipeline-panel dd[data-field="total_count"]')
    assert page.inner_text('#pipeline-panel dd[data-field="total_count"]') == fmt_count(panel["total_count"])
    runtime = '#pipeline-panel dd[data-field="avg_run_time_s"]'
    page.wait_for_function("sel => document.querySelector(sel).textContent !== '—'", arg=runtime)
    assert page.inner_text('#pipeline-panel dd[data-field="success_rate"]') == "75.0%"
    assert page.inner_text('#pipeline-panel dd[data-field="avg_run_time_s"]') == "1 min 30 s"
    assert "tests.pipeline_a.step" in page.inner_text("#pipeline-panel")
    page.wait_for_selector("#no-metrics")


def test_missing_chart_library_says_how_to_install_it(client: httpx.Client, live: Any, page: Page) -> None:
    post_points(client, run_labels("r1", "tests.p"), ["loss"], [1.0], [time.time() - 5])
    page.route("**/static/vendor/uPlot.esm.js", lambda route: route.fulfill(status=404, body="missing"))
    page.goto(f"{live.url}/dashboard/runs/r1")
    notice = page.wait_for_selector("#vendor-missing")
    assert notice is not None
    assert "make install" in notice.inner_text()
    assert "scripts/install_assets.sh" in notice.inner_text()


def test_api_key_is_asked_for_and_sent(browser: Browser, keyed_live: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        with keyed_live.client(headers={"X-API-KEY": "alice-secret-key"}) as client:
            pipelines_fixture(client)
            post_points(client, run_labels("a1", "tests.pipeline_a"), ["loss"], [1.0], [time.time() - 5])
        page.goto(f"{keyed_live.url}/dashboard/")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", "reader-secret-key")
        page.click('#key-dialog button[value="save"]')
        page.wait_for_selector('#pipelines tr[data-pipeline="tests.pipeline_a"]')
        assert page.evaluate("localStorage.getItem('sematic-metrics.api-key')") == "reader-secret-key"
        page.goto(f"{keyed_live.url}/dashboard/runs/a1")  # the live stream takes the key as ?api_key=
        page.wait_for_selector("#live.on")
        page.wait_for_selector('.chart-card[data-metric="loss"][data-points="1"]')
    finally:
        context.close()


def test_hundred_metrics_of_300_points_render_lazily(client: httpx.Client, live: Any, page: Page) -> None:
    names = [f"metric_{i:03d}" for i in range(100)]
    base = time.time() - 400
    body_names, values, times = [], [], []
    for name in names:
        for i in range(300):
            body_names.append(name)
            values.append(math.sin(i / 20) + hash(name) % 7)
            times.append(base + i)
    post_points(client, run_labels("big", "tests.big"), body_names, values, times)

    started = time.monotonic()
    page.goto(f"{live.url}/dashboard/runs/big")
    page.wait_for_selector('.chart-card[data-metric="metric_000"][data-points="300"]')
    first = time.monotonic() - started
    assert page.eval_on_selector_all(".chart-card", "cards => cards.length") == 100
    created = page.eval_on_selector_all(".chart-card .uplot", "plots => plots.length")
    assert created < 30, f"{created} charts were created before being scrolled to"

    # Frame gaps while scrolling through everything and a live step of all 100 metrics.
    page.evaluate(
        """() => { window.__gaps = []; let last = performance.now();
                   const tick = now => { window.__gaps.push(now - last); last = now;
                                         if (!window.__stop) requestAnimationFrame(tick); };
                   requestAnimationFrame(tick); }"""
    )
    started = time.monotonic()
    load_all_charts(page)
    everything = time.monotonic() - started
    before = page.get_attribute('.chart-card[data-metric="metric_000"]', "data-last-y")
    post_points(client, run_labels("big", "tests.big"), names, [50.0] * 100, [base + 299] * 100)
    page.wait_for_function(
        "y => document.querySelector('.chart-card[data-metric=\"metric_000\"]').dataset.lastY !== y",
        arg=before,
    )
    gaps = page.evaluate("() => { window.__stop = true; return window.__gaps.slice(1); }")
    gaps.sort()
    print(
        f"\n100 x 300: first chart {first * 1000:.0f} ms, all drawn after scrolling {everything:.1f} s, "
        f"frames {len(gaps)}, median {gaps[len(gaps) // 2]:.1f} ms, "
        f"p95 {gaps[int(len(gaps) * 0.95)]:.1f} ms, max {gaps[-1]:.1f} ms"
    )
    assert page.eval_on_selector_all(".chart-card[data-points]", "cards => cards.length") == 100
