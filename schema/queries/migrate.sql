-- Queries of the schema runner (sematic_metrics/service/migrate.py). Every
-- value is a bound {name:Type} parameter.

-- name: ledger_tables
-- The ledger of tables/ files: each file runs once per database.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32   COMMENT 'Number of the schema file',
    name       String   COMMENT 'File name',
    checksum   String   COMMENT 'SHA-256 of the file when applied',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
COMMENT 'Schema files applied to this database';

-- name: ledger_definitions
-- The ledger of definitions/: the views the schema created. Only these are
-- ever replaced or dropped; views made by users are left alone.
CREATE TABLE IF NOT EXISTS schema_definitions
(
    name       String   COMMENT 'View or materialized view defined in schema/definitions',
    file       String   COMMENT 'Its definition file',
    checksum   String   COMMENT 'SHA-256 of its statement as created (markers filled in)',
    dropped    Bool     COMMENT 'true once its file was removed and the view dropped',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was created, replaced, recorded or dropped'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name
COMMENT 'Views created from schema/definitions files';

-- name: ledger_exists
SELECT name FROM system.tables
WHERE database = currentDatabase() AND name IN ('schema_migrations', 'schema_definitions');

-- name: applied_tables
SELECT version, argMax(checksum, applied_at) AS checksum
FROM schema_migrations
GROUP BY version;

-- name: record_table
INSERT INTO schema_migrations (version, name, checksum)
VALUES ({version:UInt32}, {name:String}, {checksum:String});

-- name: applied_definitions
SELECT name, argMax(file, applied_at) AS file, argMax(checksum, applied_at) AS checksum
FROM schema_definitions
GROUP BY name
HAVING NOT argMax(dropped, applied_at);

-- name: record_definitions
-- Ledger rows of the views one migrate created, replaced, dropped or found
-- unrecorded, in one INSERT (parallel arrays). Written after the views: a
-- migrate stopped before it finds them as the files say and records them then.
INSERT INTO schema_definitions (name, file, checksum, dropped)
SELECT entry.1, entry.2, entry.3, entry.4
FROM (SELECT arrayJoin(arrayZip({name:Array(String)}, {file:Array(String)},
                                {checksum:Array(String)}, {dropped:Array(Bool)})) AS entry);

-- name: engine_definitions
-- The views of this database as the engine holds them, their SELECT in the
-- engine's own normalized form.
SELECT name, engine, create_table_query,
       formatQuerySingleLineOrNull(as_select) AS select_text
FROM system.tables
WHERE database = currentDatabase() AND engine IN ('View', 'MaterializedView');

-- name: normalize
-- The engine's normalized form of each statement (null when it does not parse).
SELECT arrayMap(s -> formatQuerySingleLineOrNull(s), {statements:Array(String)}) AS normalized;

-- name: table_ddl
-- The retention check reads the DDL of the table holding the rows (the local
-- table on a cluster), so it is bound by name.
SELECT create_table_query FROM system.tables
WHERE database = currentDatabase() AND name = {table:String};
