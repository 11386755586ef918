"""Core figures for issue 2: bytes per point on disk, and ingest points/s end to
end over HTTP beside a raw in-process ``insert_arrow`` of the same points.

Each round inserts fresh points (new runs) three ways, one after the other, so
the ratios compare measurements taken under the same machine load:
raw ``insert_arrow`` in an engine child process, then the compact form and the
Sematic form posted to two ``sematic-metrics serve`` processes (own data dirs).

    .venv/bin/python benchmarks/bench_core.py            # 100 runs x 10k steps = 1M points a round
    .venv/bin/python benchmarks/bench_core.py --quick    # 10 runs x 10k steps, 2 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import _ingest


def measure(
    runs: int, steps: int, batch: int, clients: int, forms: list[str], workdir: Path, rounds: int
) -> dict[str, Any]:
    """The issue-2 figures: one client count, both forms, storage."""
    result = _ingest.measure(workdir, runs, steps, batch, [clients], rounds, tuple(forms))
    result["load_average"] = os.getloadavg()
    return result


def report(result: dict[str, Any], command: str) -> str:
    lines = [
        f"command: {command}",
        f"points: {result['points_per_measurement']:,} gauge points a measurement ({result['runs']} runs x "
        f"{result['steps']:,} steps of a noisy decaying loss, 1 s apart), {len(result['rounds'])} rounds, "
        f"load average at the end {', '.join(f'{x:.1f}' for x in result['load_average'])}",
        "",
        "storage: bytes_on_disk of the active parts of metric_points after OPTIMIZE FINAL / rows",
    ]
    for label, s in result["storage"].items():
        lines.append(
            f"  {label}: {s['bytes_per_point']:.3f} B/point "
            f"({s['bytes_on_disk']:,} B, {s['parts']} active part, {'/'.join(s['part_types'])})"
        )
        for c in s["columns"]:
            lines.append(
                f"      {c['name']:<20} {c['bytes_per_point']:8.4f} B/point "
                f"({c['compressed']:>10,} B compressed, {c['uncompressed']:>11,} B uncompressed)"
            )
    lines += ["", "ingest, points/s per round (a point counts once its request got a 2xx):"]
    keys = list(result["http"])
    for i, r in enumerate(result["rounds"]):
        cells = [f"raw {r['raw']['rate']:>10,.0f}"] + [
            f"{k} {r[k]['rate']:>10,.0f} ({r[k]['rate'] / r['raw']['rate']:.2f} of raw)" for k in keys
        ]
        lines.append(f"  round {i + 1}: " + "  ".join(cells))
    lines += [
        "",
        "ingest, medians over rounds:",
        f"  raw insert_arrow, one {result['points_per_measurement']:,}-row insert in-process: "
        f"{result['raw_rate']:,.0f} points/s",
        f"  raw insert_arrow, {result['batch']:,}-row inserts in-process (one pass): "
        f"{result['raw_batched_rate']:,.0f} points/s",
    ]
    for h in result["http"].values():
        lines.append(
            f"  {h['form']} form over HTTP, {h['clients']} clients x {result['batch']:,}-point requests: "
            f"{h['rate']:,.0f} points/s, ratio to raw {h['ratio_to_raw']:.2f} (median of per-round ratios); "
            f"{h['body_bytes_per_point']:.0f} body B/point, request p50 {h['request_p50_s'] * 1000:.0f} ms "
            f"p95 {h['request_p95_s'] * 1000:.0f} ms; errors {h['errors']}"
        )
    for form, s in result["stored"].items():
        lines.append(
            f"  {form} server: stored {s['stored']:,} rows {'=' if s['ok'] else '!='} acked {s['acked']:,}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 runs a round, 2 rounds")
    parser.add_argument("--runs", type=int, default=None, help="runs a round (default 100)")
    parser.add_argument("--steps", type=int, default=10_000, help="points a run")
    parser.add_argument("--batch", type=int, default=10_000, help="points a request")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--forms", default=",".join(_ingest.FORMS))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    runs = args.runs or (10 if args.quick else 100)
    rounds = args.rounds or (2 if args.quick else 3)
    workroot = Path(__file__).resolve().parent / ".data"
    workroot.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-core-", dir=workroot) as tmp:
        result = measure(runs, args.steps, args.batch, args.clients, args.forms.split(","), Path(tmp), rounds)
    print(report(result, " ".join(["python", *sys.argv])))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
