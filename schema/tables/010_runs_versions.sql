-- run_versions: every stored version of every run, fed by POST /api/v1/runs;
-- replaces the runs table of 004_runs.sql (its rows are copied below, then it
-- is dropped; definitions/109_runs.sql keeps the name `runs` as a view).
--
-- Nothing is replaced or merged away: the views pick each run's state by
-- aggregating its versions (definitions/110_runs_latest.sql), so a result is
-- exact as soon as an INSERT is acknowledged, whatever the parts, merges or
-- shards, and whichever server worker stored which version. Sorted by id, so
-- the versions of one run are adjacent, and not partitioned: a partition key
-- taken from a run's fields could differ between two of its versions.
-- arrived_at (the ClickHouse server's clock at INSERT) and position (the
-- record's index in its request) give the arrival order, the last tie-break
-- between two versions. Small granules keep reads by id small.
CREATE TABLE IF NOT EXISTS run_versions
(
    id              String                        CODEC(ZSTD(1)) COMMENT 'Run id',
    root_id         String                        CODEC(ZSTD(1)) COMMENT 'Id of the root run of the pipeline run; equals id for a root run',
    parent_id       Nullable(String)              CODEC(ZSTD(1)) COMMENT 'Id of the parent run; null for a root run',
    function_path   LowCardinality(String)        COMMENT 'Dotted path of the run''s function; a root run''s function_path names its pipeline',
    name            String                        CODEC(ZSTD(1)) COMMENT 'Display name of the run',
    future_state    Enum8('CREATED' = 0, 'SCHEDULED' = 1, 'RAN' = 2, 'RETRYING' = 3,
                          'RESOLVED' = 4, 'FAILED' = 5, 'NESTED_FAILED' = 6, 'CANCELED' = 7)
                                                  COMMENT 'Sematic state of the run in this version',
    original_run_id Nullable(String)              CODEC(ZSTD(1)) COMMENT 'Set when the run is a cached or cloned copy of that run',
    created_at      DateTime64(6, 'UTC')          CODEC(ZSTD(1)) COMMENT 'When the run was created (UTC)',
    started_at      Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run started executing',
    resolved_at     Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run and all its nested runs succeeded',
    failed_at       Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run failed',
    ended_at        Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run reached a terminal state',
    updated_at      DateTime64(6, 'UTC')          CODEC(ZSTD(1)) COMMENT 'When the sender made this version',
    is_root         Bool MATERIALIZED id = root_id COMMENT 'true when this version says it is a root run (id = root_id)',
    user_id         LowCardinality(String) DEFAULT '' COMMENT 'Name of the API key that stored the record, when keys are configured',
    batch_id        String DEFAULT ''             CODEC(ZSTD(1)) COMMENT 'Idempotency key of the request that stored the record',
    inserted_at     DateTime DEFAULT now()        CODEC(DoubleDelta, ZSTD(1)) COMMENT 'When the server stored the record',
    arrived_at      DateTime64(9, 'UTC') DEFAULT now64(9) CODEC(ZSTD(1)) COMMENT 'Arrival: the ClickHouse server''s clock when the INSERT ran',
    position        UInt32 DEFAULT 0              CODEC(ZSTD(1)) COMMENT 'Arrival within one INSERT: the record''s index in its request',
    PROJECTION by_pipeline
    (
        SELECT id, function_path, is_root
        ORDER BY is_root, function_path, id
    )
)
ENGINE = MergeTree
ORDER BY id
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 256
COMMENT 'Versions of runs as stored; read a run''s state through runs_latest';

-- An empty stand-in for runs, created only when an interrupted run of this
-- file had dropped it already, so that the file can run again.
CREATE TABLE IF NOT EXISTS runs
(
    id String, root_id String, parent_id Nullable(String), function_path LowCardinality(String),
    name String, future_state Enum8('CREATED' = 0, 'SCHEDULED' = 1, 'RAN' = 2, 'RETRYING' = 3,
    'RESOLVED' = 4, 'FAILED' = 5, 'NESTED_FAILED' = 6, 'CANCELED' = 7),
    original_run_id Nullable(String), created_at DateTime64(6, 'UTC'),
    started_at Nullable(DateTime64(6, 'UTC')), resolved_at Nullable(DateTime64(6, 'UTC')),
    failed_at Nullable(DateTime64(6, 'UTC')), ended_at Nullable(DateTime64(6, 'UTC')),
    updated_at DateTime64(6, 'UTC'), user_id LowCardinality(String), batch_id String,
    inserted_at DateTime
)
ENGINE = MergeTree
ORDER BY id
COMMENT 'Empty stand-in while 010_runs_versions.sql runs';

-- Copy every version the runs table of 004_runs.sql still holds (its merges
-- dropped older versions). Their arrival is the second they were stored, then
-- their order in the old table.
-- A copy interrupted and run again skips the versions copied already. On a
-- cluster the copy is written to the shards before the statement returns
-- (distributed_foreground_insert) and GLOBAL NOT IN reads the copied versions
-- of every shard.
INSERT INTO run_versions
    (id, root_id, parent_id, function_path, name, future_state, original_run_id,
     created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
     user_id, batch_id, inserted_at, arrived_at, position)
SETTINGS distributed_foreground_insert = 1
SELECT id, root_id, parent_id, function_path, name, future_state, original_run_id,
       created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
       user_id, batch_id, inserted_at, toDateTime64(inserted_at, 9, 'UTC'), toUInt32(_part_offset)
FROM runs
WHERE (id, updated_at, future_state, inserted_at) GLOBAL NOT IN
      (SELECT id, updated_at, future_state, inserted_at FROM run_versions);

DROP TABLE IF EXISTS runs;
