"""Figures collected by the suite, written as results.json and results.md."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SERIES_FILE = "results-series.md"
SECTIONS = {
    "ingest": "1. Ingest: points/s over HTTP beside raw insert_arrow",
    "peers": "2. Peers: the same points through Sematic 0.41 and MLflow",
    "query": "3. Query: rollup=auto series of one run, over HTTP",
    "pipelines": "3b. Pipeline figures",
    "storage": "4. Storage: bytes per point on disk",
    "sdk": "5. SDK: per-call cost of log_metric",
    "live": "6. Live latency: SDK log -> visible through the query API",
}


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    beside: str = ""  # what the ratio compares against
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Results:
    mode: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)  # filled at write time unless re-rendered

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "command": self.command,
            "machine": self.machine or machine(),
            "section_seconds": self.timings,
            "figures": [asdict(f) for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }

    def write(self, directory: Path) -> None:
        (directory / "results.json").write_text(json.dumps(self.to_json(), indent=2, default=_default) + "\n")
        # The series engine's figures come from their own full run (bench_series.py --write).
        series = directory / SERIES_FILE
        extra = "\n" + series.read_text() if series.exists() else ""
        (directory / "results.md").write_text(self.markdown() + extra)

    def markdown(self) -> str:
        m = self.machine or machine()
        lines = [
            "# Benchmark results",
            "",
            f"Written by `{self.command}` ({self.mode} run). Every figure below was measured in this "
            f"one run on this machine: {m['cpus']} CPUs, {m['memory_gb']:.0f} GB RAM, Python {m['python']}, "
            f"load average at the end {m['load_average']}. The machine is shared, so absolute figures are "
            "noisy; ratios compare measurements taken back to back.",
            "",
            "Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ".",
            "",
        ]
        for key, title in SECTIONS.items():
            figures = [f for f in self.figures if f.section == key]
            notes = self.notes.get(key, [])
            if not figures and not notes:
                continue
            lines += [f"## {title}", ""]
            if figures:
                lines += [
                    "| Figure | Value | Beside | Ratio | Target | Met |",
                    "|---|---:|---|---:|---|:-:|",
                ]
                for f in figures:
                    met = "" if f.met is None else ("yes" if f.met else "**no**")
                    name = f.name + (f" ({f.note})" if f.note else "")
                    lines.append(
                        f"| {name} | {fmt(f.value)} {f.unit} | {f.beside} | {fmt_ratio(f.ratio)} | "
                        f"{f.target} | {met} |"
                    )
                lines.append("")
            lines += [n if n.startswith("```") else f"- {n}" for n in notes]
            if notes:
                lines.append("")
        return "\n".join(lines)


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or math.isnan(ratio):
        return ""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2f}x"


def machine() -> dict[str, Any]:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {
        "cpus": os.cpu_count(),
        "memory_gb": pages / 2**30,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _default(value: object) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
