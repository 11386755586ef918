"""Turn the raw section answers into figures, ratios, targets and notes."""

from __future__ import annotations

from typing import Any

from _results import Results

INGEST_TARGET = 0.5  # compact form at half the raw insert or more
PEER_TARGET = 50.0  # ours at 50x the peers' ingest or more
QUERY_TARGET_S = 0.050  # p50 at 10M points
STORAGE_TARGET = 4.0  # bytes per point


def fill(results: Results, raw: dict[str, Any]) -> None:
    results.details = raw
    for name, answer in raw.items():
        if "failed" in answer:
            results.note(_section_of(name), f"**The {name} section failed here:** {answer['failed']}")
    if "failed" not in raw.get("ingest", {"failed": ""}):
        ingest(results, raw["ingest"])
    if "failed" not in raw.get("peers", {"failed": ""}):
        peers(results, raw["peers"], raw.get("ingest", {}))
    if "failed" not in raw.get("query", {"failed": ""}):
        query(results, raw["query"])
    if "pipelines" in raw:
        pipelines(results, raw["pipelines"])
    if "failed" not in raw.get("sdk", {"failed": ""}):
        sdk(results, raw["sdk"])


def _section_of(name: str) -> str:
    return "live" if name == "sdk-live" else name


def ingest(results: Results, r: dict[str, Any]) -> None:
    n = r["points_per_measurement"]
    results.add(
        "ingest",
        "raw insert_arrow, in-process, one insert",
        r["raw_rate"],
        "points/s",
        note=f"{n:,} points, median of {len(r['rounds'])} round(s)",
    )
    results.add(
        "ingest",
        f"raw insert_arrow, in-process, {r['batch']:,}-row inserts",
        r["raw_batched_rate"],
        "points/s",
        beside="raw, one insert",
        ratio=r["raw_batched_rate"] / r["raw_rate"],
    )
    for h in r["http"].values():
        compact = h["form"] == "compact"
        results.add(
            "ingest",
            f"{h['form']} form over HTTP, {h['clients']} client{'s' if h['clients'] > 1 else ''}",
            h["rate"],
            "points/s",
            beside="raw insert_arrow, same round",
            ratio=h["ratio_to_raw"],
            target=f">= {INGEST_TARGET}x raw" if compact else "",
            met=h["ratio_to_raw"] >= INGEST_TARGET if compact else None,
            note=f"{h['body_bytes_per_point']:.0f} B/point on the wire, request p50 "
            f"{h['request_p50_s'] * 1000:.0f} ms" + (f", {h['errors']} errors" if h["errors"] else ""),
        )
    results.note(
        "ingest",
        f"Each measurement posts {n:,} fresh points ({r['runs']} runs x {r['steps']:,} steps of a noisy "
        f"decaying loss, 1 s apart) in {r['batch']:,}-point requests over keep-alive connections; a point "
        "counts once its request got a 2xx, which the service sends only after the INSERT returned. "
        "Ratios are the median of per-round ratios (raw insert and HTTP measured back to back).",
    )
    one = r["http"].get("compact/1")
    concurrent_met = any(
        h["ratio_to_raw"] >= INGEST_TARGET
        for h in r["http"].values()
        if h["form"] == "compact" and h["clients"] > 1
    )
    if one and one["ratio_to_raw"] < INGEST_TARGET:
        results.note(
            "ingest",
            f"One client sends its next request only after the last one was stored (request p50 "
            f"{one['request_p50_s'] * 1000:.0f} ms for {r['batch']:,} points), so one client's rate is "
            f"about {r['batch']:,} / that latency. Concurrent clients' requests are coalesced into one "
            "INSERT" + (", which is how the target is met above." if concurrent_met else "."),
        )
    for form, check in r["stored"].items():
        verdict = "equal" if check["ok"] else "**NOT equal**"
        results.note(
            "ingest",
            f"{form} server: {check['stored']:,} rows found in its data directory after the run, "
            f"{verdict} to the {check['acked']:,} points acknowledged.",
        )
    cpu = r.get("server_cpu", {})
    if cpu:
        parts = []
        for form, c in cpu.items():
            per = c["decode_s"] + c["build_s"]
            parts.append(
                f"{form} form {c['decode_s'] * 1000:.1f} ms decode + {c['build_s'] * 1000:.1f} ms validation "
                f"and Arrow build (a ceiling of {c['points'] / per:,.0f} points/s for that one thread)"
            )
        results.note(
            "ingest",
            f"Service CPU per {next(iter(cpu.values()))['points']:,}-point request before the INSERT, "
            "timed in-process on one thread: " + "; ".join(parts) + ". The service runs this work on its "
            "event loop, so it bounds the HTTP rate whatever the client count.",
        )
    storage(results, r)


def storage(results: Results, r: dict[str, Any]) -> None:
    for i, (label, s) in enumerate(r.get("storage", {}).items()):
        top = sorted(s["columns"], key=lambda c: -c["bytes_per_point"])[:4]
        breakdown = ", ".join(f"{c['name']} {c['bytes_per_point']:.2f}" for c in top)
        if "Wide" not in s["part_types"]:
            breakdown = "not available (a small table is one Compact part: all columns in one file)"
        results.add(
            "storage",
            f"ours, {label}",
            s["bytes_per_point"],
            "B/point",
            target=f"<= {STORAGE_TARGET:g} B" if i == 0 else "",
            met=s["bytes_per_point"] <= STORAGE_TARGET if i == 0 else None,
            note=f"{s['rows']:,} points after OPTIMIZE FINAL; largest columns (B/point): {breakdown}",
        )
    first = next(iter(r.get("storage", {}).values()), None)
    if first and first["bytes_per_point"] > STORAGE_TARGET and "Wide" in first["part_types"]:
        cols = {c["name"]: c["bytes_per_point"] for c in first["columns"]}
        other = first["bytes_per_point"] - cols.get("value", 0)
        results.note(
            "storage",
            f"What holds storage above {STORAGE_TARGET:g} B/point: the value column alone takes "
            f"{cols.get('value', 0):.2f} B/point (Gorilla + ZSTD on float32-origin noisy losses: the noise "
            f"bits do not compress); everything else together takes {other:.2f} B/point "
            f"(step {cols.get('step', 0):.2f}, run_id {cols.get('run_id', 0):.2f}, root_id "
            f"{cols.get('root_id', 0):.2f}, metric_time {cols.get('metric_time', 0):.3f}).",
        )
        experiment = next((v for k, v in r["storage"].items() if "experiment" in k), None)
        if experiment:
            ecols = {c["name"]: c["bytes_per_point"] for c in experiment["columns"]}
            results.note(
                "storage",
                "The experiment row measures the same points with two schema changes: step "
                f"CODEC(DoubleDelta, ZSTD(1)) ({cols.get('step', 0):.2f} -> {ecols.get('step', 0):.3f} "
                f"B/point) and run_id/root_id as LowCardinality(String) ({cols.get('run_id', 0):.2f} -> "
                f"{ecols.get('run_id', 0):.3f} B/point each): "
                f"{experiment['bytes_per_point']:.2f} B/point in all.",
            )


def _ingest_figure(results: Results, system: str, ours: float, data: dict[str, Any], what: str) -> None:
    i = data["ingest"]
    passes = ", ".join(
        f"{n} client{'s' if n != '1' else ''}: {r['rate']:,.0f}/s ({r['points']:,} of {r['of']:,} points"
        + (f", {r['errors']} failed requests" if r["errors"] else "")
        + ")"
        for n, r in data.get("ingest_by_clients", {}).items()
    )
    results.add(
        "peers",
        f"{system}: ingest ({what}), best of its client counts",
        i["rate"],
        "points/s",
        beside="ours, compact form",
        ratio=ours / i["rate"] if i["rate"] else None,
        target=f"ours >= {PEER_TARGET:g}x",
        met=(ours / i["rate"] >= PEER_TARGET) if i["rate"] else None,
        note=passes,
    )
    if data.get("error_causes"):
        results.note(
            "peers",
            f"{system} answered some requests with HTTP 500; its log says: "
            + "; ".join(f"`{c}`" for c in data["error_causes"])
            + ". Failed requests count as not stored; their time counts.",
        )


def peers(results: Results, p: dict[str, Any], ingest_section: dict[str, Any]) -> None:
    ours = p["ours"]
    rate = ours["ingest_compact"]["rate"]
    results.add(
        "peers",
        "ours: ingest, compact form",
        rate,
        "points/s",
        note=f"{ours['ingest_compact']['points']:,} points, {p['clients']} clients, 10k points/request",
    )
    results.add(
        "peers",
        "ours: ingest, Sematic form",
        ours["ingest_sematic"]["rate"],
        "points/s",
        beside="ours, compact form",
        ratio=ours["ingest_sematic"]["rate"] / rate if rate else None,
    )
    q50 = ours["query"]["p50_s"]
    results.add(
        "peers",
        "ours: one run's series, rollup=auto, p50",
        q50 * 1000,
        "ms",
        note=f"p95 {ours['query']['p95_s'] * 1000:.0f} ms, "
        f"{ours['query']['points_returned']} points returned",
    )
    results.add(
        "storage",
        "ours, the peers' points",
        ours["storage"]["bytes_per_point"],
        "B/point",
        note=f"{ours['storage']['rows']:,} points, after OPTIMIZE FINAL",
    )
    labels = {"sematic": "Sematic 0.41 (SQLite)", "mlflow": "MLflow (SQLite)"}
    for name, label in labels.items():
        data = p.get(name, {"skipped": "not run"})
        if "skipped" in data:
            results.add("peers", f"{label}: ingest", None, "points/s", note="not measured")
            results.note("peers", f"**{label} was not measured:** {data['skipped']}")
            continue
        what = "POST /api/v1/metrics, 10k points/request" if name == "sematic" else "log-batch, 1000/request"
        _ingest_figure(results, label, rate, data, what)
        if name == "sematic":
            same = ours["ingest_sematic"]["rate"]
            results.add(
                "peers",
                f"{label}: ingest, beside ours in the same (Sematic) form",
                data["ingest"]["rate"],
                "points/s",
                beside="ours, Sematic form",
                ratio=same / data["ingest"]["rate"] if data["ingest"]["rate"] else None,
            )
        query_what = "rollup=auto, p50" if name == "sematic" else "full metric history, p50"
        results.add(
            "peers",
            f"{label}: one run's series, {query_what}",
            data["query"]["p50_s"] * 1000,
            "ms",
            beside="ours, rollup=auto p50",
            ratio=data["query"]["p50_s"] / q50 if q50 else None,
            note=f"p95 {data['query']['p95_s'] * 1000:.0f} ms, "
            f"{data['query']['points_returned']} points returned",
        )
        st = data["storage"]
        results.add(
            "storage",
            f"{label} file, the same points",
            st["bytes_per_point"],
            "B/point",
            beside="ours, the peers' points",
            ratio=st["bytes_per_point"] / ours["storage"]["bytes_per_point"],
            note=f"growth of the SQLite files: {st['bytes']:,} B for {st['points']:,} points",
        )
    missed = [
        (labels[n], p[n]["ingest"]["rate"])
        for n in labels
        if "ingest" in p.get(n, {}) and p[n]["ingest"]["rate"] and rate / p[n]["ingest"]["rate"] < PEER_TARGET
    ]
    compact = [h for h in ingest_section.get("http", {}).values() if h["form"] == "compact"]
    if missed:
        best = max(compact, key=lambda h: h["rate"]) if compact else None
        text = (
            f"What holds the ingest ratio under {PEER_TARGET:g}x: ours is measured here with "
            f"{p['clients']} clients"
        )
        if ingest_section.get("raw_rate"):
            text += f" at {rate / ingest_section['raw_rate']:.2f}x the raw insert limit of section 1"
        text += "; "
        if best:
            text += (
                f"at its best in section 1 ({best['clients']} clients, {best['rate']:,.0f} points/s) it is "
                + ", ".join(f"{best['rate'] / r:.0f}x {name}" for name, r in missed)
                + ". "
            )
        text += (
            "Ours is bound by one INSERT path per process and by request parsing on the event loop "
            "(section 1's service CPU note); the peers by SQLite writes."
        )
        results.note("peers", text)
    results.note(
        "peers",
        f"Every system gets the same {p['points']:,} points ({p['runs']} runs x {p['steps']:,}) from "
        f"{p['clients']} keep-alive clients. Sematic is sent 10k points per request (its best case; its "
        "own client posts one point per log_metric call), MLflow 1000 per log-batch request (its limit). "
        f"The peers are measured with {' and '.join(str(n) for n in p.get('peer_clients', [p['clients']]))} "
        f"client(s), fresh runs per pass, and their best rate is compared. Each pass stops after "
        f"{p.get('budget_s', 0):g} s; the rate counts the points acknowledged by then. The read is "
        "the series of one run: ours and Sematic with rollup=auto over the run's own time window (with "
        "from_time=0 Sematic collapses a run into one bucket), MLflow its metric history (every point: "
        "it has no rollup); ours with the series cache off, so every read is computed. Ratios in the query "
        "rows are peer / ours (higher is better for us).",
    )


def query(results: Results, q: dict[str, Any]) -> None:
    total = q["total_points"]
    for points, t in q["targets"].items():
        points = int(points)
        big = points == max(int(k) for k in q["targets"])
        ip = t.get("in_process", {})
        results.add(
            "query",
            f"run with {points:,} points: p50",
            t["p50_s"] * 1000,
            "ms",
            beside="bare in-process scan of the run",
            ratio=t["p50_s"] / ip["direct_scan_s"] if ip.get("direct_scan_s") else None,
            target=f"<= {QUERY_TARGET_S * 1000:.0f} ms at 10M" if points == 10_000_000 else "",
            met=t["p50_s"] <= QUERY_TARGET_S if points == 10_000_000 else None,
            note=f"{t['series_points']} points returned",
        )
        results.add("query", f"run with {points:,} points: p95", t["p95_s"] * 1000, "ms")
        if "kept_p50_s" in t:
            results.add(
                "query",
                f"run with {points:,} points: a repeated read (answer kept by the series cache), p50",
                t["kept_p50_s"] * 1000,
                "ms",
            )
        if ip:
            results.add(
                "query",
                f"run with {points:,} points: in-process SQL of the metric_series view, pass 1 + pass 2",
                (ip["series_pass1_s"] + ip["series_pass2_s"]) * 1000,
                "ms",
                note=f"pass 1 (extents, distinct times) {ip['series_pass1_s'] * 1000:.0f} ms, pass 2 "
                f"(buckets) {ip['series_pass2_s'] * 1000:.0f} ms; "
                f"bare scan {ip['direct_scan_s'] * 1000:.0f} ms",
            )
        if big and t["p50_s"] > QUERY_TARGET_S and ip:
            results.note(
                "query",
                f"What holds the {points:,}-point read back: the metric_series view reads every point of "
                f"the run twice (in-process, its first pass takes {ip['series_pass1_s'] * 1000:.0f} ms and "
                f"its second {ip['series_pass2_s'] * 1000:.0f} ms), and even a bare one-pass scan of the "
                f"run's {points:,} points with the width known takes {ip['direct_scan_s'] * 1000:.0f} ms "
                "here. The service takes the extents from the rollup tiers and, above 4.9M points, the "
                "buckets too, with raw points only at bucket edges (Sematic's whole-second widths are not "
                "multiples of the 60 s tier); section 7 (bench_series.py) has those figures.",
            )
    results.note(
        "query",
        f"The table held {total:,} points ({q['other_points']:,} of other runs plus the target runs), loaded "
        f"through insert_arrow in {q['load_seconds']:.0f} s; reads over HTTP as Sematic's dashboard asks "
        "(labels={run_id}, rollup=auto, from_time absent), after two warm-up reads, with the series cache "
        "off (every read computed); the repeated-read rows are the same reads with it on.",
    )
    if q["other_points"] < 100_000_000:
        results.note(
            "query",
            f"This run loaded {q['other_points']:,} points of other runs, not the 100M of the full size.",
        )


def pipelines(results: Results, p: dict[str, Any]) -> None:
    if "skipped" in p:
        results.note("pipelines", f"Pipeline figures not measured: {p['skipped']}")
        return
    results.note("pipelines", f"From `{p['command']}` ({p['seconds']:.0f} s), its own output:")
    results.note("pipelines", "```\n" + p["output"] + "\n```")


def sdk(results: Results, s: dict[str, Any]) -> None:
    pc = s.get("per_call", {})
    if "skipped" in pc:
        results.note("sdk", f"SDK per-call cost not measured: {pc['skipped']}")
    elif pc:
        median = pc["median_ns"]
        results.add(
            "sdk",
            "log_metric, per call (median)",
            median,
            "ns",
            note=f"p90 {pc['p90_ns']:.0f} ns; {int(pc['calls']):,} calls, all delivered after "
            f"{pc['delivered_s']:.2f} s",
        )
        labels = {
            "keepalive": "Sematic-style synchronous POST per point, kept-alive connection",
            "new-connection": "Sematic-style synchronous POST per point, new connection",
            "sematic-0.41": "Sematic 0.41's save: POST + event POST, new connection",
        }
        for mode, ns in pc.get("sematic_style_ns", {}).items():
            results.add(
                "sdk", labels.get(mode, mode), ns / 1000, "us", beside="log_metric", ratio=ns / median
            )
        results.note(
            "sdk",
            "Per-call cost from benchmarks/bench_sdk.py's functions (time.perf_counter_ns over batches of "
            "calls while the sender thread delivers); the Sematic-style calls go to the same server.",
        )
    for live in s.get("live", []):
        age = live["max_age_s"]
        results.add(
            "live",
            f"SDK log -> visible in GET /api/v1/metrics (max_age_s={age:g}): p50",
            live["p50_s"] * 1000,
            "ms",
            note=f"p99 {live['p99_s'] * 1000:.0f} ms, {live['probes']} probes",
        )
        results.add("live", f"same, max_age_s={age:g}: p99", live["p99_s"] * 1000, "ms")
    if s.get("live"):
        results.note(
            "live",
            "Each probe logs one point in a fresh run, then polls the series every 2 ms until it appears. "
            "The SDK sends a point once it is max_age_s old (default 1 s) or its batch is full, so the "
            "default latency is about max_age_s plus one request and one read.",
        )
