"""Bring the database to the schema files: tables once, definitions always.

``schema/tables/NNN_*.sql`` run once per database, in order, and are recorded
in ``schema_migrations`` with their checksum (an edited file only logs a
warning: a table holds data, change it with a new numbered file). Versions
101-115 are retired: they were the view files before definitions/ existed and
stay recorded in older databases.

``schema/definitions/*.sql`` hold views, parameterized views and materialized
views. At every start (the service's start, ``sematic-metrics migrate``) each
one is brought to exactly its file's text (markers filled in): created when
missing, replaced when what the engine reports differs from its file (an
edited file, or drift made by hand in the database), dropped when its file was
removed. The comparison is the engine's own: the SELECT the engine holds
(``system.tables.as_select``) and the file's SELECT, both normalized by
``formatQuerySingleLine``, plus the kind and, for a materialized view, its TO
table. ``schema_definitions`` records what the schema created, so a view a
user made is never dropped. Files run in name order, so a view that reads
another comes after it.

Replacing a materialized view loses and doubles no rows:

- Same TO table: ``ALTER TABLE mv MODIFY QUERY``, which swaps the query in
  place: there is no moment without the view, and each INSERT goes through the
  old query or the new one (tests/test_migrate.py checks the TO table after
  inserts on both sides of a replacement).
- Another TO table or kind: DROP then CREATE. Rows inserted between the two
  would miss the view, so this runs only while nothing writes: the service
  migrates before it accepts requests (its writers start after), and
  ``serve --workers N`` migrates once in the parent before any worker starts;
  the workers then find nothing to change. With several service instances on
  one database, run ``sematic-metrics migrate`` as a deploy step with the
  writers stopped (``migrate --check`` tells whether anything would change).

With a cluster configured, the store runs every statement in its cluster form
(``cluster.ClusterDDL``); ``plan`` gives the script for a fresh database
(``migrate --print --cluster``), ``changes`` what would change against the
connected one (``migrate --print`` and ``--check``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sematic_metrics.errors import ConfigError
from sematic_metrics.service import _tiers
from sematic_metrics.service.cluster import ClusterDDL, code_positions
from sematic_metrics.service.config import Settings
from sematic_metrics.service.sqlfiles import (
    DEFINITIONS,
    TABLES,
    load_all_queries,
    q,
    render,
    schema_dir,
    split_statements,
)
from sematic_metrics.service.store import Store

log = logging.getLogger(__name__)
_TABLE_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_DEFINITION_FILE = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")
RETIRED_VERSIONS = range(101, 116)
# Checksums of tables/ files as applied before their materialized views moved
# to definitions/: the tables they create are the same, so no warning.
_SPLIT_CHECKSUMS = {
    2: "66d6e93d453b29a80df013e3ad565146760c78b42bccee9bfee0d0ab33fc5176",
    3: "ff2f910932cc532bb8c6dda08a6f2ca77f71dc8715622b75b2b2f78ac19e9389",
    4: "079ce39940610a260aac3d607027429d61c3204ee4865a2e3838c9f770cff5e3",
}
_TTL = re.compile(r"\bTTL .*toIntervalDay\((?:_CAST\()?(\d+)")
_DEFINITION = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)(?:\s+TO\s+([A-Za-z_][A-Za-z0-9_]*))?\s+AS\s+(.+)$",
    re.IGNORECASE | re.DOTALL,
)
VIEW, MATERIALIZED_VIEW = "view", "materialized view"
_ENGINES = {"View": VIEW, "MaterializedView": MATERIALIZED_VIEW}
_ENGINE_TARGET = re.compile(r"^CREATE MATERIALIZED VIEW\s+\S+\s+TO\s+(?:`?\w+`?\.)?`?(\w+)`?")


@dataclass(frozen=True)
class Migration:
    """A tables/ file: runs once."""

    version: int
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.text)


@dataclass(frozen=True)
class Definition:
    """One view of a definitions/ file, markers filled in."""

    name: str
    kind: str
    target: str | None
    select: str
    file: str

    @property
    def statement(self) -> str:
        if self.kind == VIEW:
            return f"CREATE OR REPLACE VIEW {self.name} AS\n{self.select}"
        return f"CREATE MATERIALIZED VIEW {self.name} TO {self.target} AS\n{self.select}"

    @property
    def script_statement(self) -> str:
        """The statement for a script run against a fresh database (safe to run again)."""
        if self.kind == VIEW:
            return self.statement
        return self.statement.replace("CREATE MATERIALIZED VIEW", "CREATE MATERIALIZED VIEW IF NOT EXISTS", 1)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.statement.encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    """A difference between the database and the files, and the statements fixing it."""

    action: str  # "apply", "create", "replace" or "drop"
    kind: str  # "table file", VIEW or MATERIALIZED_VIEW
    name: str
    reason: str
    statements: tuple[str, ...]
    definition: Definition | None = None

    def describe(self) -> str:
        return f"{self.action} {self.kind} {self.name}: {self.reason}"


def discover(directory: Path | None = None) -> list[Migration]:
    """The tables/ files in order; numbers must be unique and not retired."""
    directory = directory or schema_dir()
    found = []
    for path in sorted((directory / TABLES).glob("*.sql")):
        match = _TABLE_FILE.match(path.name)
        if not match:
            raise ConfigError(f"{path}: a tables/ file is named NNN_name.sql (lower case); rename it")
        version = int(match.group(1))
        if version in RETIRED_VERSIONS:
            raise ConfigError(
                f"{path}: versions {RETIRED_VERSIONS.start}-{RETIRED_VERSIONS.stop - 1} are retired "
                "(older databases recorded their view files under them); pick another number"
            )
        text = render(path.read_text(), directory, str(path))
        found.append(Migration(version, path.name, path, text))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise ConfigError(f"two schema files share a number in {directory / TABLES}; renumber one")
    return found


def definitions(directory: Path | None = None) -> list[Definition]:
    """Every view of the definitions/ files, in file order."""
    directory = directory or schema_dir()
    found: dict[str, Definition] = {}
    for path in sorted((directory / DEFINITIONS).glob("*.sql")):
        where = f"{DEFINITIONS}/{path.name}"
        if not _DEFINITION_FILE.match(path.name):
            raise ConfigError(f"{path}: a definitions/ file is named NNN_name.sql (lower case); rename it")
        for statement in split_statements(render(path.read_text(), directory, str(path))):
            match = _DEFINITION.match(statement)
            if match is None and re.match(r"CREATE\s+MATERIALIZED\s+VIEW\b", statement, re.IGNORECASE):
                raise ConfigError(
                    f"{path}: a materialized view needs a TO table (in tables/) and nothing else before AS: "
                    "rows stored inside the view would be lost when it is replaced"
                )
            if match is None:
                raise ConfigError(
                    f"{path}: {statement.split(chr(10))[0][:80]!r} is not a view; definitions/ holds "
                    "CREATE VIEW name AS ... and CREATE MATERIALIZED VIEW name TO table AS ... "
                    "(tables go to tables/, queries to queries/)"
                )
            materialized, name, target, select = match.groups()
            if materialized and not target:
                raise ConfigError(
                    f"{path}: materialized view {name} needs a TO table (in tables/): rows stored "
                    "inside the view would be lost when it is replaced"
                )
            if target and not materialized:
                raise ConfigError(f"{path}: view {name} has a TO table; only a materialized view has one")
            if name in found:
                raise ConfigError(
                    f"two definitions of {name}: in {found[name].file} and in {where}; remove one"
                )
            kind = MATERIALIZED_VIEW if materialized else VIEW
            found[name] = Definition(name, kind, target, select.strip(), where)
    return list(found.values())


def plan(settings: Settings, directory: Path | None = None) -> list[tuple[str, str]]:
    """(source, statement) for every statement a fresh database needs, in order,
    in the cluster form when ``settings.cluster`` is set. Nothing is executed."""
    ddl = ClusterDDL(settings.cluster, settings.database) if settings.cluster else None
    sources = [("database", f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")]
    sources += [("database", f"USE `{settings.database}`")]
    sources += [("ledger", q("ledger_tables")), ("ledger", q("ledger_definitions"))]
    sources += [(f"{TABLES}/{m.name}", s) for m in discover(directory) for s in m.statements()]
    sources += [(d.file, d.script_statement) for d in definitions(directory)]
    return [(source, out) for source, sql in sources for out in (ddl.rewrite(sql) if ddl else [sql])]


def render_script(settings: Settings, directory: Path | None = None) -> str:
    """The plan as a script for clickhouse-client --multiquery."""
    target = f" on cluster {settings.cluster}" if settings.cluster else ""
    lines = [
        f"-- sematic-metrics schema for database {settings.database}{target}.",
        "-- Run with: clickhouse-client --multiquery < schema.sql",
        "-- Retention (SEMATIC_METRICS_TTL_DAYS) is applied by the service when it starts.",
    ]
    for source, statement in plan(settings, directory):
        lines += ["", f"-- {source}", statement + ";"]
    return "\n".join(lines) + "\n"


def _ledgers(store: Store) -> set[str]:
    return {str(row["name"]) for row in store.rows(q("ledger_exists"))}


def applied(store: Store) -> dict[int, str]:
    """Version -> checksum of the tables/ files recorded in this database."""
    if "schema_migrations" not in _ledgers(store):
        return {}
    return {int(row["version"]): str(row["checksum"]) for row in store.rows(q("applied_tables"))}


def _owned(store: Store) -> dict[str, tuple[str, str]]:
    """Name -> (file, checksum) of the views the schema created and did not drop."""
    if "schema_definitions" not in _ledgers(store):
        return {}
    rows = store.rows(q("applied_definitions"))
    return {str(row["name"]): (str(row["file"]), str(row["checksum"])) for row in rows}


def changes(store: Store, directory: Path | None = None) -> list[Change]:
    """What ``migrate`` would change in the connected database; nothing is executed."""
    load_all_queries(directory)  # two queries of one name: refuse before touching anything
    done = applied(store)
    pending = [
        Change("apply", "table file", f"{TABLES}/{m.name}", "not applied yet", tuple(m.statements()))
        for m in discover(directory)
        if m.version not in done
    ]
    return pending + _definition_changes(store, definitions(directory))[0]


def _definition_changes(
    store: Store, wanted: list[Definition]
) -> tuple[list[Change], list[dict[str, object]]]:
    """The changes the views need, and ledger rows to write for views that need none
    (a matching view not recorded yet; a recorded one gone with its file)."""
    owned = _owned(store)
    engine = {
        str(row["name"]): (str(row["engine"]), str(row["create_table_query"]), row["select_text"])
        for row in store.rows(q("engine_definitions"))
    }
    database = store.database
    selects = [_cluster_select(store, d) for d in wanted]
    normalized = store.rows(q("normalize"), {"statements": selects})[0]["normalized"]
    found: list[Change] = []
    bookkeeping: list[dict[str, object]] = []
    for definition, select, want in zip(wanted, selects, normalized, strict=True):
        if want is None:
            raise ConfigError(
                f"{definition.file}: the SELECT of {definition.name} does not parse; fix the file"
            )
        kind_name = (definition.kind, definition.name)
        current = engine.get(definition.name)
        if current is None:
            found.append(Change("create", *kind_name, "missing", (definition.statement,), definition))
            continue
        kind, ddl, have = current
        edited = definition.name in owned and owned[definition.name][1] != definition.checksum
        why = "its file changed" if edited else "the database differs from its file"
        target = _target(ddl)
        if _ENGINES.get(kind) != definition.kind or target != _cluster_target(store, definition):
            reason = f"{why} (the database has a {_ENGINES.get(kind, kind)}"
            reason += f" to {target})" if target else ")"
            statements = (_drop(definition.name), definition.statement)
            found.append(Change("replace", *kind_name, reason, statements, definition))
        elif _unqualified(str(have or ""), database) != want:
            found.append(Change("replace", *kind_name, why, _replace(store, definition, select), definition))
        elif definition.name not in owned or owned[definition.name] != (definition.file, definition.checksum):
            bookkeeping.append(_record(definition.name, definition))
    names = {d.name for d in wanted}
    for name, (file, _checksum) in sorted(owned.items(), reverse=True):
        if name in names:
            continue
        if name in engine:
            kind = _ENGINES.get(engine[name][0], VIEW)
            reason = f"its file {file} was removed"
            found.append(Change("drop", kind, name, reason, (_drop(name),)))
        else:
            bookkeeping.append(_record(name, None))
    return found, bookkeeping


def _record(name: str, definition: Definition | None) -> dict[str, object]:
    """A schema_definitions row: the view as created from its file, or dropped."""
    return {
        "name": name,
        "file": definition.file if definition else "",
        "checksum": definition.checksum if definition else "",
        "dropped": definition is None,
    }


def _cluster_select(store: Store, definition: Definition) -> str:
    """The SELECT as the engine will hold it: a materialized view on a cluster reads local tables."""
    if store.cluster is not None and definition.kind == MATERIALIZED_VIEW:
        return store.cluster.localize_sources(definition.select)
    return definition.select


def _cluster_target(store: Store, definition: Definition) -> str | None:
    if definition.target is None:
        return None
    return store.local_name(definition.target)


def _replace(store: Store, definition: Definition, select: str) -> tuple[str, ...]:
    if definition.kind == VIEW:
        return (definition.statement,)
    # In place: no moment without the view, so no insert misses it.
    on = f" ON CLUSTER {store.cluster.cluster}" if store.cluster is not None else ""
    return (f"ALTER TABLE {definition.name}{on} MODIFY QUERY\n{select}",)


def _drop(name: str) -> str:
    return f"DROP VIEW IF EXISTS {name}"


def _target(create_table_query: str) -> str | None:
    """The TO table of a materialized view as the engine reports it, without its database."""
    match = _ENGINE_TARGET.match(create_table_query)
    return match.group(1) if match else None


def _unqualified(sql: str, database: str) -> str:
    """The engine's SELECT without this database's name before table names."""
    code = code_positions(sql)
    pattern = re.compile(rf"(?<![\w.`])(?:`{re.escape(database)}`|{re.escape(database)})\.")
    pieces, last = [], 0
    for match in pattern.finditer(sql):
        if code[match.start()]:
            pieces.append(sql[last : match.start()])
            last = match.end()
    return "".join(pieces) + sql[last:]


def migrate(store: Store, directory: Path | None = None) -> list[str]:
    """Apply tables/ files not yet recorded, then bring every definition to its file.

    Returns what changed: the names of the table files applied, then one line
    per definition created, replaced or dropped. Empty when nothing changed.
    """
    load_all_queries(directory)  # two queries of one name: refuse at start
    store.command(q("ledger_tables"))
    store.command(q("ledger_definitions"))
    done = applied(store)
    ran: list[str] = []
    for migration in discover(directory):
        if migration.version in done:
            if done[migration.version] not in (migration.checksum, _SPLIT_CHECKSUMS.get(migration.version)):
                log.warning("schema file %s/%s changed after it was applied", TABLES, migration.name)
            continue
        for statement in migration.statements():
            store.command(statement)
        store.command(
            q("record_table"),
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
        log.info("applied schema file %s/%s", TABLES, migration.name)
        ran.append(migration.name)
    found, bookkeeping = _definition_changes(store, definitions(directory))
    for change in found:
        for statement in change.statements:
            store.command(statement)
        bookkeeping.append(_record(change.name, change.definition))
        log.info("schema: %s", change.describe())
        ran.append(change.describe())
    if bookkeeping:  # one INSERT: each costs a fresh database's migrate ~6 ms
        store.command(
            q("record_definitions"), {key: [row[key] for row in bookkeeping] for key in bookkeeping[0]}
        )
    apply_ttl(store)
    return ran


def apply_ttl(store: Store) -> None:
    """Set or remove the retention TTL only when it differs from the config."""
    _tiers.apply_ttl(store, store.settings.ttl_days)  # the rollup tiers too
    rows = store.rows(q("table_ddl"), {"table": store.local_name("metric_points")})
    ddl = str(rows[0]["create_table_query"]) if rows else ""
    match = _TTL.search(ddl)
    current = int(match.group(1)) if match else None
    wanted = store.settings.ttl_days
    if wanted == current:
        return
    if wanted:
        store.command(q("set_ttl"), {"days": wanted})
    elif " TTL " in ddl:
        store.command(q("remove_ttl"))
