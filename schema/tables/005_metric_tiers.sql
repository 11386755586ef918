-- metric_tiers: rollup tiers of metric_points, filled at insert by
-- metric_tiers_mv (definitions/020_metric_tiers_mv.sql). One row per series,
-- axis, tier width and bucket; rows of one key are combined by background
-- merges, and every read combines them itself (sum, min, max,
-- sumKahanMerge with GROUP BY), so an acknowledged insert is read right away.
--   axis 'time': width in microseconds, 60 s, 1 h and 1 day; buckets start at
--                multiples of the width since the Unix epoch.
--   axis 'step': width in steps, 100, 10^4 and 10^6; points without a step
--                are in the time tiers only.
-- Per bucket: every point (points), the finite ones (finite), their sum
-- (compensated: sumKahan state), min and max, and first / last as the tuple
-- (x, metric_time_us, value) of the smallest / largest finite point, x being
-- the step on the step axis and 0 on the time axis (ties on (x, time) go to
-- the smaller value for first, the larger for last). A bucket without a finite
-- value holds the sentinels +inf / -inf: readers return null when finite = 0.
-- origin is 0 for rows written by the view; backfilled rows carry the
-- metric_points partition they came from (see tier_backfills).
-- min_x / max_x: the x extent of every point of the row, NaN included.
-- last_seen (the newest metric_time of the row) carries the retention TTL.
CREATE TABLE IF NOT EXISTS metric_tiers
(
    name               LowCardinality(String)      COMMENT 'Metric name',
    axis               Enum8('time' = 0, 'step' = 1) COMMENT 'time: widths in microseconds; step: widths in steps',
    width              Int64                       COMMENT 'Tier width in x units (microseconds or steps)',
    root_function_path LowCardinality(String)      COMMENT 'Label root_function_path',
    run_id             LowCardinality(String)      COMMENT 'Label run_id',
    bucket             Int64                       CODEC(DoubleDelta, ZSTD(1)) COMMENT 'Bucket start in x units, a multiple of width',
    root_id            LowCardinality(String)      COMMENT 'Label root_id',
    function_path      LowCardinality(String)      COMMENT 'Label function_path',
    scope              LowCardinality(String)      COMMENT 'Label __scope__',
    user_id            LowCardinality(String)      COMMENT 'Label user_id',
    labels_hash        UInt64                      CODEC(ZSTD(1)) COMMENT 'cityHash64 of labels: part of the key',
    origin             UInt32                      CODEC(ZSTD(1)) COMMENT '0: written at insert; YYYYMM: backfilled from that partition',
    labels             SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)) COMMENT 'All other labels (labels_hash is their key)',
    points             SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)) COMMENT 'Points, NaN and infinities included',
    finite             SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)) COMMENT 'Finite points',
    total              AggregateFunction(sumKahan, Float64) CODEC(ZSTD(1)) COMMENT 'Compensated sum of the finite values',
    low                SimpleAggregateFunction(min, Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'Smallest finite value (+inf if none)',
    high               SimpleAggregateFunction(max, Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'Largest finite value (-inf if none)',
    first              SimpleAggregateFunction(min, Tuple(x Int64, t Int64, v Float64)) CODEC(ZSTD(1)) COMMENT 'Smallest (x, time_us, value) of a finite point',
    last               SimpleAggregateFunction(max, Tuple(x Int64, t Int64, v Float64)) CODEC(ZSTD(1)) COMMENT 'Largest (x, time_us, value) of a finite point',
    min_x              SimpleAggregateFunction(min, Int64) CODEC(Delta, ZSTD(1)) COMMENT 'Smallest x of any point (time_us or step)',
    max_x              SimpleAggregateFunction(max, Int64) CODEC(Delta, ZSTD(1)) COMMENT 'Largest x of any point (time_us or step)',
    last_seen          SimpleAggregateFunction(max, DateTime) CODEC(DoubleDelta, ZSTD(1)) COMMENT 'Newest metric_time of the row (retention)'
)
ENGINE = AggregatingMergeTree
ORDER BY (name, axis, width, root_function_path, run_id, bucket, root_id, function_path, scope, user_id, labels_hash, origin)
SETTINGS index_granularity = 2048, non_replicated_deduplication_window = 10000
COMMENT 'Rollup tiers of metric_points (time: 60 s, 1 h, 1 day; step: 100, 10^4, 10^6); read with GROUP BY';

-- tier_backfills: the metric_points partitions that held points when the
-- tiers were created, to be aggregated into metric_tiers by the service
-- (service/_tiers.py) while ingest goes on. Only rows with _block_number <=
-- max_block are read: the view has every later row (block numbers only grow,
-- and enable_block_number_column keeps each row's number through merges).
CREATE TABLE IF NOT EXISTS tier_backfills
(
    partition  String                 COMMENT 'metric_points partition id (YYYYMM)',
    max_block  UInt64                 COMMENT 'Highest block number of metric_points when the tiers were created',
    state      Enum8('pending' = 0, 'started' = 1, 'done' = 2) COMMENT 'Progress of this partition',
    points     UInt64                 COMMENT 'Points aggregated (when done)',
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the state was recorded'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY partition
COMMENT 'Backfill of metric_tiers from points stored before the tiers existed';

ALTER TABLE metric_points MODIFY SETTING enable_block_number_column = 1;

INSERT INTO tier_backfills (partition, max_block, state, points)
SELECT partition_id, (SELECT max(max_block_number) FROM system.parts
                      WHERE database = currentDatabase() AND table = 'metric_points' AND active),
       'pending', 0
FROM system.parts
WHERE database = currentDatabase() AND table = 'metric_points' AND active
GROUP BY partition_id;
