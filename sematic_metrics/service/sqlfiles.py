"""Locate schema/ and load named queries from its .sql files (aiosql style)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def schema_dir() -> Path:
    """The installed copy inside the wheel, else the source tree's schema/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schema", here.parent.parent / "schema"):
        if (candidate / "queries.sql").is_file():
            return candidate
    raise FileNotFoundError(f"schema/ not found next to {here}; reinstall sematic-metrics")


def load_queries(path: Path) -> dict[str, str]:
    """Split a file on ``-- name: x`` headers into {x: statement}."""
    text = path.read_text()
    marks = list(_NAME.finditer(text))
    queries: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        queries[mark.group(1)] = strip_sql(text[mark.end() : end])
    return queries


def strip_sql(text: str) -> str:
    """Drop comment-only lines and the trailing semicolon."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").strip()


def split_statements(text: str) -> list[str]:
    """Split a migration file into statements ending with ';' at end of line."""
    statements, current = [], []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append(strip_sql("\n".join(current)))
            current = []
    tail = strip_sql("\n".join(current))
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


@functools.cache
def queries() -> dict[str, str]:
    """Named queries of every non-numbered .sql file in schema/."""
    found: dict[str, str] = {}
    for path in sorted(schema_dir().glob("*.sql")):
        if not path.name[:1].isdigit():
            found.update(load_queries(path))
    return found


def q(name: str) -> str:
    return queries()[name]
