"""The benchmark harness still runs end to end at tiny sizes (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def run_suite(out: Path, *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--tiny", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def figures(results: Any, section: str) -> list[Any]:
    return [f for f in results["figures"] if f["section"] == section]


def test_tiny_suite_writes_every_section(tmp_path: Path) -> None:
    results = run_suite(tmp_path, "--only", "ingest,query,sdk")
    assert results["mode"] == "tiny"
    for section in ("ingest", "storage", "query", "live"):
        assert figures(results, section), f"no {section} figures"
    for figure in figures(results, "ingest") + figures(results, "query"):
        assert figure["value"] is not None and figure["value"] > 0, figure
    ingest = results["details"]["ingest"]
    for form in ("compact", "sematic"):
        assert ingest["stored"][form]["ok"], ingest["stored"][form]
    compact = [f for f in figures(results, "ingest") if f["name"].startswith("compact")]
    assert compact and all(f["ratio"] is not None and f["met"] is not None for f in compact)
    markdown = (tmp_path / "results.md").read_text()
    assert "## 1. Ingest" in markdown and "## 3. Query" in markdown and "| Figure |" in markdown


def test_missing_peers_are_reported_not_fatal(tmp_path: Path) -> None:
    empty = tmp_path / "no-peers"
    empty.mkdir()
    results = run_suite(tmp_path, "--only", "peers", "--peer-root", str(empty))
    peers = results["details"]["peers"]
    assert peers["ours"]["ingest_compact"]["points"] == peers["points"]
    for name in ("sematic", "mlflow"):
        assert "not installed" in peers[name]["skipped"]
    markdown = (tmp_path / "results.md").read_text()
    assert "Sematic 0.41 (SQLite) was not measured" in markdown
    assert "MLflow (SQLite) was not measured" in markdown
