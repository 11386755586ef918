-- Superseded by 010_runs_versions.sql, which copies the rows of runs into
-- run_versions and drops it (the name runs is then a view of run_versions:
-- definitions/109_runs.sql); run_batches below stays.
--
-- runs: one row per stored version of a Sematic run, fed by POST /api/v1/runs.
-- A ReplacingMergeTree versioned by updated_at: the version with the latest
-- updated_at is the run's state (on a tie, the last inserted), and an older
-- version arriving late never wins. Background merges drop old versions
-- eventually; read through runs_latest (or `FROM runs FINAL`), which is right
-- before any merge has happened.
--
-- id, root_id, function_path and created_at never change between versions of
-- a run (the server rejects a record that changes them), so all versions of a
-- run share one sorting key and one monthly partition. FINAL can then
-- deduplicate each partition on its own (do_not_merge_across_partitions_select_final)
-- and read a month that is one merged part without merging; a month whose
-- parts all are a minute old is merged into one part (min_age_to_force_merge_*).
-- Sorting: a pipeline's root runs are one range (is_root, function_path), and
-- the nested runs of one root run and function are another. Small granules
-- keep one pipeline's reads small. succeeded, run_time_s and outcome_at are
-- computed per version at insert time so the statistics read no strings.
CREATE TABLE IF NOT EXISTS runs
(
    id              String                        CODEC(ZSTD(1)) COMMENT 'Run id',
    root_id         String                        CODEC(ZSTD(1)) COMMENT 'Id of the root run of the pipeline run; equals id for a root run',
    parent_id       Nullable(String)              CODEC(ZSTD(1)) COMMENT 'Id of the parent run; null for a root run',
    function_path   LowCardinality(String)        COMMENT 'Dotted path of the run''s function; a root run''s function_path names its pipeline',
    name            String                        CODEC(ZSTD(1)) COMMENT 'Display name of the run',
    future_state    Enum8('CREATED' = 0, 'SCHEDULED' = 1, 'RAN' = 2, 'RETRYING' = 3,
                          'RESOLVED' = 4, 'FAILED' = 5, 'NESTED_FAILED' = 6, 'CANCELED' = 7)
                                                  COMMENT 'Sematic state of the run',
    original_run_id Nullable(String)              CODEC(ZSTD(1)) COMMENT 'Set when the run is a cached or cloned copy of that run',
    created_at      DateTime64(6, 'UTC')          CODEC(DoubleDelta, ZSTD(1)) COMMENT 'When the run was created (UTC)',
    started_at      Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run started executing',
    resolved_at     Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run and all its nested runs succeeded',
    failed_at       Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run failed',
    ended_at        Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)) COMMENT 'When the run reached a terminal state',
    updated_at      DateTime64(6, 'UTC')          CODEC(ZSTD(1)) COMMENT 'Version of the record: the latest updated_at wins',
    is_root         Bool MATERIALIZED id = root_id COMMENT 'true for a root run (id = root_id): a pipeline run',
    succeeded       Nullable(UInt8) MATERIALIZED
                        if(future_state IN ('RESOLVED', 'FAILED', 'NESTED_FAILED') AND original_run_id IS NULL,
                           toUInt8(future_state = 'RESOLVED'), NULL)
                                                  COMMENT 'Counted outcome: 1 RESOLVED, 0 FAILED or NESTED_FAILED; null when in progress, CANCELED or a cached/cloned copy',
    run_time_s      Nullable(Float64) MATERIALIZED
                        if(future_state = 'RESOLVED' AND original_run_id IS NULL,
                           dateDiff('microsecond', started_at, resolved_at) / 1e6, NULL)
                                                  COMMENT 'resolved_at - started_at in seconds for a RESOLVED run that is not a copy',
    outcome_at      Nullable(DateTime64(6, 'UTC')) MATERIALIZED
                        if(future_state IN ('RESOLVED', 'FAILED', 'NESTED_FAILED') AND original_run_id IS NULL,
                           coalesce(if(future_state = 'RESOLVED', resolved_at, failed_at), ended_at, updated_at), NULL)
                                                  COMMENT 'When the counted outcome happened: resolved_at or failed_at, else ended_at, else updated_at',
    user_id         LowCardinality(String) DEFAULT '' COMMENT 'Name of the API key that stored the record, when keys are configured',
    batch_id        String DEFAULT ''             CODEC(ZSTD(1)) COMMENT 'Idempotency key of the request that stored the record',
    inserted_at     DateTime DEFAULT now()        CODEC(DoubleDelta, ZSTD(1)) COMMENT 'When the server stored the record',
    INDEX runs_id_bloom id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (is_root, function_path, root_id, id)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024,
         min_age_to_force_merge_seconds = 60, min_age_to_force_merge_on_partition_only = 1
COMMENT 'Versions of Sematic runs; read the latest state through runs_latest';

-- run_batches: one row per stored POST /api/v1/runs request that carried an
-- Idempotency-Key, filled by run_batches_mv (definitions/012_run_batches_mv.sql)
-- in the same INSERT as its runs, so a retried request is recognised and stored
-- once.
CREATE TABLE IF NOT EXISTS run_batches
(
    batch_id    String                                 COMMENT 'Idempotency-Key of the request',
    runs        SimpleAggregateFunction(max, UInt64)   COMMENT 'Run records the request stored',
    inserted_at SimpleAggregateFunction(max, DateTime) COMMENT 'When the request was stored'
)
ENGINE = AggregatingMergeTree
ORDER BY batch_id
TTL inserted_at + INTERVAL 30 DAY
COMMENT 'Idempotency keys of stored runs requests (kept 30 days)';
