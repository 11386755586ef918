"""Locate schema/, fill in its markers, and load its named queries (aiosql style).

schema/ is split by lifecycle: ``tables/`` (run once, see migrate.py),
``definitions/`` (views, brought to their file's text at every start),
``queries/`` (named queries, ``-- name: x`` headers) and ``fragments/`` (SQL
text shared by several files).

A file may say ``{{name}}`` where fixed text belongs: the fragment
``fragments/name.sql`` (its comment lines left out), or a constant of
``sematic_metrics.rules.SQL_CONSTANTS``. Markers in comment lines are left as
written. Everything composed is fixed text from fixed files; values are still
bound ``{name:Type}`` parameters.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sematic_metrics.errors import ConfigError
from sematic_metrics.rules import SQL_CONSTANTS, WELL_KNOWN_LABELS

TABLES = "tables"
DEFINITIONS = "definitions"
QUERIES = "queries"
FRAGMENTS = "fragments"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MARKER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


@functools.cache
def schema_dir() -> Path:
    """The installed copy inside the wheel, else the source tree's schema/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schema", here.parent.parent / "schema"):
        if (candidate / TABLES).is_dir() and (candidate / QUERIES).is_dir():
            return candidate
    raise FileNotFoundError(f"schema/ not found next to {here}; reinstall sematic-metrics")


def is_comment(line: str) -> bool:
    return line.lstrip().startswith("--")


def render(text: str, directory: Path | None = None, where: str = "", _seen: tuple[str, ...] = ()) -> str:
    """The text with every ``{{marker}}`` outside comment lines filled in."""
    directory = directory or schema_dir()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in SQL_CONSTANTS:
            return SQL_CONSTANTS[name]
        if name in _seen:
            raise ConfigError(f"{where}: fragment {name} includes itself ({' -> '.join([*_seen, name])})")
        return fragment(name, directory, where, (*_seen, name))

    return "\n".join(line if is_comment(line) else _MARKER.sub(fill, line) for line in text.split("\n"))


def fragment(name: str, directory: Path | None = None, where: str = "", _seen: tuple[str, ...] = ()) -> str:
    """The text of fragments/name.sql without its comment lines, markers filled in."""
    directory = directory or schema_dir()
    path = directory / FRAGMENTS / f"{name}.sql"
    if not path.is_file():
        known = sorted([*SQL_CONSTANTS, *(p.stem for p in (directory / FRAGMENTS).glob("*.sql"))])
        raise ConfigError(
            f"{where or 'schema'}: {{{{{name}}}}} is neither a fragment in {directory / FRAGMENTS} "
            f"nor a rule; use one of {', '.join(known)}"
        )
    body = "\n".join(line for line in path.read_text().splitlines() if not is_comment(line)).strip()
    if name in _LABEL_CONDITIONS:
        _check_label_filter(body, path, _LABEL_CONDITIONS[name])
    return render(body, directory, str(path), _seen or (name,))


# The label-filter fragments and the condition each has per well-known label.
_LABEL_CONDITIONS = {
    "label_filter": (
        "{column} = {{filter_values:Array(String)}}[indexOf({{filter_keys:Array(String)}}, '{label}')]"
    ),
    "series_label_filter": "(NOT {{has_{column}:Bool}} OR {column} = {{f_{column}:String}})",
}


def _check_label_filter(body: str, path: Path, template: str) -> None:
    """Every well-known label of rules.py has its column condition in the fragment."""
    for label, column in WELL_KNOWN_LABELS.items():
        condition = template.format(column=column, label=label)
        if condition not in body:
            raise ConfigError(
                f"{path}: the well-known label {label!r} (sematic_metrics/rules.py) has no condition "
                f"`{condition}`; add one so the filter matches its column"
            )


def strip_sql(text: str) -> str:
    """Drop comment-only lines and the trailing semicolon."""
    lines = [line for line in text.splitlines() if not is_comment(line)]
    return "\n".join(lines).strip().rstrip(";").strip()


def split_statements(text: str) -> list[str]:
    """Split a schema file into statements ending with ';' at end of line."""
    statements, current = [], []
    for line in text.splitlines():
        if is_comment(line):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append(strip_sql("\n".join(current)))
            current = []
    tail = strip_sql("\n".join(current))
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


def load_queries(path: Path, directory: Path | None = None) -> dict[str, str]:
    """Split a file on ``-- name: x`` headers into {x: statement}, markers filled in."""
    text = path.read_text()
    marks = list(_NAME.finditer(text))
    queries: dict[str, str] = {}
    for i, mark in enumerate(marks):
        name = mark.group(1)
        if name in queries:
            raise ConfigError(f"{path}: two queries are named {name!r}; rename one")
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        queries[name] = render(strip_sql(text[mark.end() : end]), directory, f"{path} ({name})")
    return queries


def load_all_queries(directory: Path | None = None) -> dict[str, str]:
    """Named queries of every file in queries/; a name used twice is an error."""
    directory = directory or schema_dir()
    found: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for path in sorted((directory / QUERIES).glob("*.sql")):
        for name, sql in load_queries(path, directory).items():
            if name in origin:
                raise ConfigError(
                    f"two named queries are called {name!r}: in {origin[name]} and in {path}; rename one"
                )
            found[name], origin[name] = sql, path
    return found


@functools.cache
def queries() -> dict[str, str]:
    """The named queries of the installed schema/, loaded once."""
    return load_all_queries()


def q(name: str) -> str:
    return queries()[name]
