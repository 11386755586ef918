"""The cluster form of the schema, derived from the schema files when it runs.

The schema files stay the single source; with ``SEMATIC_METRICS_CLICKHOUSE_CLUSTER``
set, every DDL statement the store runs is rewritten:

- ``CREATE TABLE t ... ENGINE = XMergeTree(args)`` becomes a local table
  ``t_local ON CLUSTER c`` with ``ENGINE = ReplicatedXMergeTree('/clickhouse/tables/
  {shard}/{database}/{table}', '{replica}', args)``, plus ``t ON CLUSTER c AS
  t_local ENGINE = Distributed(c, db, t_local, cityHash64(<sorting key>))``. The
  Distributed table keeps the original name, so views, inserts and named queries
  run unchanged. Hashing the sorting key puts rows that merge together on one
  shard and splits a retried insert the same way, so deduplication tokens hold.
- ``CREATE MATERIALIZED VIEW mv TO t AS SELECT ... FROM s`` is attached to the
  local source and writes to the local target on every node (a materialized
  view without a TO table is refused: its rows could not be read across shards).
- Views, databases and other tables get ``ON CLUSTER``; views read the
  Distributed tables.
- ``ALTER``, ``DELETE``, ``TRUNCATE`` and ``OPTIMIZE`` of a sharded table go to
  the local table ``ON CLUSTER`` (column changes to the Distributed one too);
  ``DROP`` drops both.
Everything else (INSERT, SELECT) and statements already naming a cluster run as
written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from sematic_metrics.errors import ConfigError
from sematic_metrics.service.sqlfiles import TABLES, q, render, schema_dir, split_statements

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
_NAME = r"(`?)([A-Za-z_][A-Za-z0-9_]*)\1"
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_FLAGS = re.IGNORECASE | re.DOTALL
_CREATE_TABLE = re.compile(rf"^\s*CREATE\s+TABLE\s+{_IF_NOT_EXISTS}{_NAME}", _FLAGS)
_CREATE_MV = re.compile(rf"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+{_IF_NOT_EXISTS}{_NAME}", _FLAGS)
_CREATE_OTHER = re.compile(
    rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:VIEW|DATABASE|DICTIONARY|FUNCTION)\s+{_IF_NOT_EXISTS}{_NAME}",
    _FLAGS,
)
_ALTER = re.compile(rf"^\s*ALTER\s+TABLE\s+{_NAME}", _FLAGS)
_LOCAL_ONLY = re.compile(
    rf"^\s*(?:DELETE\s+FROM|TRUNCATE\s+(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?|OPTIMIZE\s+TABLE)\s*{_NAME}", _FLAGS
)
_DROP = re.compile(rf"^\s*DROP\s+(?:TABLE|VIEW|DICTIONARY|DATABASE)\s+(?:IF\s+EXISTS\s+)?{_NAME}", _FLAGS)
_COLUMN_ALTER = re.compile(r"^\s*(?:ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", _FLAGS)
_CLAUSE = r"\b(?:PARTITION\s+BY|PRIMARY\s+KEY|ORDER\s+BY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b"


class ClusterDDL:
    """Rewrites statements for a cluster; knows which tables are sharded."""

    def __init__(self, cluster: str, database: str, sharded: Iterable[str] = ()) -> None:
        self.cluster = cluster
        self.database = database
        self.sharded: set[str] = set(sharded)

    @classmethod
    def for_schema(cls, cluster: str, database: str, directory: Path | None = None) -> ClusterDDL:
        """A rewriter that already knows the tables the tables/ files and the ledgers shard."""
        directory = directory or schema_dir()
        ddl = cls(cluster, database)
        for name in ("ledger_tables", "ledger_definitions"):
            ddl.rewrite(q(name))
        for path in sorted((directory / TABLES).glob("[0-9][0-9][0-9]_*.sql")):
            for statement in split_statements(render(path.read_text(), directory, str(path))):
                ddl.rewrite(statement)
        return ddl

    def local(self, table: str) -> str:
        return table + LOCAL_SUFFIX if table in self.sharded else table

    def rewrite(self, sql: str) -> list[str]:
        if _find_top(sql, r"\bON\s+CLUSTER\s+[`'\"\w]"):
            return [sql]
        on = f" ON CLUSTER {self.cluster}"
        if m := _CREATE_TABLE.match(sql):
            return self._table(sql, m)
        if m := _CREATE_MV.match(sql):
            return [self._materialized_view(sql, m)]
        if m := _CREATE_OTHER.match(sql):
            return [sql[: m.end()] + on + sql[m.end() :]]
        if m := _ALTER.match(sql):
            name, rest = m.group(2), sql[m.end() :]
            head = sql[: m.start(1)]
            statements = [f"{head}{self.local(name)}{on}{rest}"]
            if name in self.sharded and _COLUMN_ALTER.match(rest):
                statements.append(f"{head}{name}{on}{rest}")
            return statements
        if m := _LOCAL_ONLY.match(sql):
            return [f"{sql[: m.start(1)]}{self.local(m.group(2))}{on}{sql[m.end() :]}"]
        if m := _DROP.match(sql):
            name = m.group(2)
            statements = [sql[: m.end()] + on + sql[m.end() :]]
            if sql.split()[1].upper() == "TABLE" and name in self.sharded:
                statements.append(f"{sql[: m.start(1)]}{self.local(name)}{on}{sql[m.end() :]}")
            return statements
        return [sql]

    def _table(self, sql: str, m: re.Match[str]) -> list[str]:
        name, head, rest = m.group(2), sql[: m.start(1)], sql[m.end() :]
        on = f" ON CLUSTER {self.cluster}"
        if _find_top(rest, r"\bENGINE\s*=") is None:
            raise ConfigError(
                f"cluster mode: table {name} has no ENGINE clause; give it one in its schema file"
            )
        replicated = _replicated_engine(rest)
        if replicated is None:
            return [f"{head}{name}{on}{rest}"]
        comment = _find_top(rest, r"\bCOMMENT\s+'")
        comment_text = ""
        if comment is not None:
            quote = comment.end() - 1
            comment_text = f"\nCOMMENT {rest[quote : _string_end(rest, quote) + 1]}"
        distributed = (
            f"{head}{name}{on} AS {name}{LOCAL_SUFFIX}\n"
            f"ENGINE = Distributed('{self.cluster}', '{self.database}', '{name}{LOCAL_SUFFIX}', "
            f"{_sharding_key(rest)}){comment_text}"
        )
        self.sharded.add(name)
        return [f"{head}{name}{LOCAL_SUFFIX}{on}{replicated}", distributed]

    def _materialized_view(self, sql: str, m: re.Match[str]) -> str:
        rest = sql[m.end() :]
        target = re.match(rf"\s*TO\s+{_NAME}", rest, _FLAGS)
        if target is not None:
            start = target.start(2) - len(target.group(1))
            rest = f"{rest[:start]}{self.local(target.group(2))}{rest[target.end() :]}"
        elif _find_top(rest, r"\bENGINE\s*=") is not None:
            # Its rows would stay on each node with nothing to read them across shards.
            raise ConfigError(
                f"cluster mode: materialized view {m.group(2)} stores its own rows; "
                "give it a TO table in its schema file so they are sharded"
            )
        rest = self.localize_sources(rest)
        return f"{sql[: m.end()]} ON CLUSTER {self.cluster}{rest}"

    def localize_sources(self, text: str) -> str:
        """The text with the sharded tables it reads (FROM, JOIN) replaced by their local tables."""
        code = _scan(text)[0]
        pieces, last = [], 0
        for ref in re.finditer(rf"\b(?:FROM|JOIN)\s+{_NAME}", text, _FLAGS):
            if code[ref.start()] and ref.group(2) in self.sharded:
                start = ref.start(2) - len(ref.group(1))
                pieces += [text[last:start], self.local(ref.group(2))]
                last = ref.end()
        return "".join(pieces) + text[last:]


def _replicated_engine(text: str) -> str | None:
    """The text with its MergeTree-family ENGINE made Replicated; None for other engines."""
    engine = _find_top(text, r"\bENGINE\s*=\s*(\w+)(\s*\()?")
    if (
        engine is None
        or not engine.group(1).endswith("MergeTree")
        or engine.group(1).startswith("Replicated")
    ):
        return None
    args, after = "", engine.end(1)
    if engine.group(2):
        close = _matching(text, engine.end() - 1)
        args, after = text[engine.end() : close].strip(), close + 1
    replicated = f"ENGINE = Replicated{engine.group(1)}({REPLICA_PATH}{', ' + args if args else ''})"
    return text[: engine.start()] + replicated + _replicated_settings(text[after:])


def _replicated_settings(text: str) -> str:
    settings = _find_top(text, r"\bSETTINGS\b")
    if settings is None:
        return text
    end_match = _find_top(text, r"\bCOMMENT\b", settings.end())
    end = end_match.start() if end_match else len(text)
    clause = re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", text[:end])
    return clause + text[end:]


def _sharding_key(rest: str) -> str:
    """cityHash64 of the sorting key's stored columns: rows with one key share a shard.

    Computed columns (MATERIALIZED, ALIAS) are left out, since a Distributed
    table shards the rows as inserted; they derive from the stored ones anyway.
    """
    order = _find_top(rest, r"\bORDER\s+BY\s+")
    if order is None:
        return "rand()"
    end_match = _find_top(rest, _CLAUSE, order.end())
    key = rest[order.end() : end_match.start() if end_match else len(rest)].strip()
    if key.startswith("(") and _matching(key, 0) == len(key) - 1:
        key = key[1:-1].strip()
    derived = _derived_columns(rest)
    parts = [part for part in _split_top(key) if part and part.strip("`") not in derived]
    if not parts or parts == ["tuple()"]:
        return "rand()"
    return f"cityHash64({', '.join(parts)})"


def _derived_columns(rest: str) -> set[str]:
    """Names of MATERIALIZED, ALIAS and EPHEMERAL columns in the column list."""
    stripped = rest.lstrip()
    if not stripped.startswith("("):
        return set()
    columns = stripped[1 : _matching(stripped, 0)]
    derived = set()
    for column in _split_top(columns):
        code = _scan(column)[1]
        words = column.split()
        if words and any(
            code[m.start()] for m in re.finditer(r"\b(?:MATERIALIZED|ALIAS|EPHEMERAL)\b", column, _FLAGS)
        ):
            derived.add(words[0].strip("`"))
    return derived


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses, strings and comments."""
    top = _scan(text)[1]
    parts, start = [], 0
    for i, ch in enumerate(text):
        if ch == "," and top[i]:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def code_positions(sql: str) -> list[bool]:
    """Per character: whether it is SQL code (outside strings, quoted names and comments)."""
    return _scan(sql)[0]


def _scan(sql: str) -> tuple[list[bool], list[bool]]:
    """Per character: outside strings and comments; and also at parenthesis depth 0."""
    code, top = [False] * len(sql), [False] * len(sql)
    depth, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _string_end(sql, i) + 1
            continue
        if sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        depth += (ch == "(") - (ch == ")")
        code[i] = True
        top[i] = depth == 0 and ch != ")"
        i += 1
    return code, top


def _string_end(sql: str, start: int) -> int:
    quote, i = sql[start], start + 1
    while i < len(sql) and sql[i] != quote:
        i += 2 if sql[i] == "\\" else 1
    return i


def _matching(sql: str, open_at: int) -> int:
    code = _scan(sql)[0]
    depth = 0
    for i in range(open_at, len(sql)):
        if code[i]:
            depth += (sql[i] == "(") - (sql[i] == ")")
            if depth == 0:
                return i
    raise ConfigError(f"unbalanced parentheses in schema statement: {sql[:120]!r}")


def _find_top(sql: str, pattern: str, start: int = 0) -> re.Match[str] | None:
    top = _scan(sql)[1]
    for m in re.finditer(pattern, sql, _FLAGS):
        if m.start() >= start and top[m.start()]:
            return m
    return None
