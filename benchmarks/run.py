"""The benchmark suite: every figure of issue 6, measured in one run, each
beside what it is compared with. Writes benchmarks/results.md and
benchmarks/results.json.

    .venv/bin/python benchmarks/run.py             # full run (11-15 min here)
    .venv/bin/python benchmarks/run.py --quick     # small sizes, under 2 minutes
    .venv/bin/python benchmarks/run.py --only ingest,storage

Sections: ingest, peers, query, pipelines, sdk (the SDK per-call cost and the
live latency). Storage figures come from the ingest and peers sections.
Peers run from their own virtualenvs, benchmarks/.venv-sematic and
benchmarks/.venv-mlflow (``--install-peers`` creates them); a missing peer is
reported in results.md with the reason.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _ingest
import _peers
import _query
import _report
import _results
import _server

HERE = Path(__file__).resolve().parent
SECTION_NAMES = ("ingest", "peers", "query", "pipelines", "sdk")


@dataclass(frozen=True)
class Sizes:
    ingest_runs: int
    ingest_steps: int
    ingest_clients: tuple[int, ...]
    ingest_rounds: int
    peer_runs: int
    peer_steps: int
    peer_reps: int
    peer_budget_s: float
    other_runs: int
    other_steps: int
    targets: tuple[int, ...]
    query_reps: int
    sdk_calls: int
    sdk_sematic_points: int
    live_probes: int
    pipelines_args: tuple[str, ...] | None


SIZES = {
    "full": Sizes(
        100, 10_000, (1, 8, 32), 3, 20, 10_000, 20, 60.0, 1000, 100_000, (1_000_000, 10_000_000), 20,
        300_000, 300, 30, ("--requests", "30"),
    ),
    "quick": Sizes(
        10, 10_000, (1, 8, 32), 1, 2, 5_000, 5, 10.0, 20, 50_000, (100_000, 1_000_000), 10,
        30_000, 50, 5, None,
    ),
    "tiny": Sizes(2, 1_000, (1, 2), 1, 1, 1_000, 2, 5.0, 2, 1_000, (1_000,), 2, 2_000, 3, 1, None),
}  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sdk(workdir: Path, s: Sizes) -> dict[str, Any]:
    data_dir = workdir / "sdk" / "data"
    data_dir.mkdir(parents=True)
    with _server.ours(data_dir, workdir / "sdk" / "server.log") as port:
        argv = [
            sys.executable, str(HERE / "_sdk.py"), "--port", str(port), "--calls", str(s.sdk_calls),
            "--sematic-points", str(s.sdk_sematic_points), "--probes", str(s.live_probes),
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"_sdk.py failed: {proc.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def run_pipelines(s: Sizes) -> dict[str, Any]:
    script = HERE / "bench_pipelines.py"
    if s.pipelines_args is None:
        return {
            "skipped": "left out of the quick run (it waits for background merges to settle); the full run "
            "calls it, or run `python benchmarks/bench_pipelines.py --quick` alone"
        }
    if not script.exists():
        return {"skipped": "benchmarks/bench_pipelines.py is not present"}
    argv = [sys.executable, str(script), *s.pipelines_args]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    out = {"command": " ".join(["python", "benchmarks/bench_pipelines.py", *s.pipelines_args])}
    if proc.returncode != 0:
        return {**out, "skipped": f"bench_pipelines.py exited {proc.returncode}: {proc.stderr[-1500:]}"}
    return {**out, "output": proc.stdout.strip(), "seconds": time.perf_counter() - t0}


def render(source: Path, out_dir: Path) -> int:
    """Figures and notes again from the raw answers of an earlier run."""
    saved = json.loads(source.read_text())
    results = _results.Results(mode=saved["mode"], command=saved["command"])
    results.timings = saved["section_seconds"]
    _report.fill(results, saved["details"])
    results.machine = saved["machine"]
    out_dir.mkdir(parents=True, exist_ok=True)
    results.write(out_dir)
    log(f"rewrote {out_dir / 'results.md'} from {source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under 2 minutes")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for the harness test")
    parser.add_argument("--only", default="", help=f"comma list of sections: {', '.join(SECTION_NAMES)}")
    parser.add_argument("--skip", default="", help="comma list of sections to leave out")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for results.md and results.json (default: benchmarks/ for a full run, "
        "benchmarks/.data/results-quick/ for --quick, so a quick run never replaces the full results)",
    )
    parser.add_argument("--install-peers", action="store_true", help="create missing peer virtualenvs first")
    parser.add_argument(
        "--peer-root", type=Path, default=HERE, help="where the .venv-sematic and .venv-mlflow peers live"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data under benchmarks/.data")
    parser.add_argument(
        "--render", type=Path, default=None, help="rewrite results.md from this results.json; measure nothing"
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(args.render, args.out or args.render.parent)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    out_dir = args.out or (HERE if mode == "full" else HERE / ".data" / f"results-{mode}")
    only = [x for x in args.only.split(",") if x] or list(SECTION_NAMES)
    skip = [x for x in args.skip.split(",") if x]
    unknown = sorted(set(only + skip) - set(SECTION_NAMES))
    if unknown:
        parser.error(f"unknown sections {unknown}; use {', '.join(SECTION_NAMES)}")
    sections = [x for x in SECTION_NAMES if x in only and x not in skip]
    command = " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    results = _results.Results(mode=mode, command=command)
    if args.install_peers and "peers" in sections:
        for name in _server.PEERS:
            if _server.peer_missing(name, args.peer_root):
                log(f"installing peer {name} into {args.peer_root / f'.venv-{name}'} ...")
                try:
                    _server.install_peer(name, args.peer_root)
                except Exception as exc:
                    log(f"  could not install {name}: {exc}")
    workroot = HERE / ".data"
    workroot.mkdir(exist_ok=True)
    started = time.perf_counter()
    raw: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{mode}-", dir=workroot))
    try:
        steps = {
            "ingest": lambda: {
                **_ingest.measure(
                    workdir / "ingest", sizes.ingest_runs, sizes.ingest_steps, 10_000,
                    list(sizes.ingest_clients), sizes.ingest_rounds,
                ),
                "server_cpu": _ingest.server_cpu(10_000),
            },
            "peers": lambda: _peers.measure(
                workdir / "peers", sizes.peer_runs, sizes.peer_steps, 8, sizes.peer_reps, sizes.peer_budget_s,
                args.peer_root,
            ),
            "query": lambda: _query.measure(
                workdir, sizes.other_runs, sizes.other_steps, list(sizes.targets), sizes.query_reps
            ),
            "pipelines": lambda: run_pipelines(sizes),
            "sdk": lambda: run_sdk(workdir, sizes),
        }  # fmt: skip
        for name in sections:
            t0 = time.perf_counter()
            log(f"[{time.perf_counter() - started:6.0f} s] {name} ...")
            try:
                raw[name] = steps[name]()
            except Exception as exc:
                raw[name] = {"failed": f"{type(exc).__name__}: {exc}"}
                log(f"  {name} failed: {exc}")
            results.timings[name] = time.perf_counter() - t0
            log(f"[{time.perf_counter() - started:6.0f} s] {name} done in {results.timings[name]:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _report.fill(results, raw)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.write(out_dir)
    log(f"wrote {out_dir / 'results.md'} and results.json in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
