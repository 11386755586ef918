-- metric_points: one row per logged metric point, the source of truth.
-- Sorted by (name, root_function_path, run_id, metric_time), so both hot
-- queries read a contiguous range: one metric of one run over time, and one
-- metric across all runs of a pipeline.
CREATE TABLE IF NOT EXISTS metric_points
(
    name               LowCardinality(String)          COMMENT 'Metric name, e.g. loss',
    metric_type        {{metric_type_enum}} COMMENT 'COUNT is summed per bucket, GAUGE is averaged per bucket',
    metric_time        DateTime64(6, 'UTC')            CODEC(DoubleDelta, ZSTD(1)) COMMENT 'When the value was measured (UTC)',
    value              Float64                         CODEC(Gorilla, ZSTD(1)) COMMENT 'The value as sent; NaN and Inf are kept and skipped by aggregates',
    step               Nullable(Int64)                 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'Optional training step',
    run_id             LowCardinality(String)          COMMENT 'Label run_id',
    root_id            LowCardinality(String)          COMMENT 'Label root_id: the pipeline run the point belongs to',
    function_path      LowCardinality(String)          COMMENT 'Label function_path',
    root_function_path LowCardinality(String)          COMMENT 'Label root_function_path: the pipeline',
    scope              LowCardinality(String)          COMMENT 'Label __scope__: 0 for run scope, 1 for pipeline scope',
    user_id            LowCardinality(String)          COMMENT 'Label user_id, set by the server from the API key name when keys are configured',
    labels             Map(LowCardinality(String), String) CODEC(ZSTD(1)) COMMENT 'All other labels',
    batch_id           String                          CODEC(ZSTD(1)) COMMENT 'Idempotency key of the request that stored the point',
    inserted_at        DateTime DEFAULT now()          CODEC(DoubleDelta, ZSTD(1)) COMMENT 'When the server stored the point'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(metric_time)
ORDER BY (name, root_function_path, run_id, metric_time)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'One row per metric point; aggregate through the metric_series and metric_buckets views';
