-- ingest_batches: one row per stored request that carried an Idempotency-Key,
-- filled by ingest_batches_mv (definitions/010_ingest_batches_mv.sql) in the
-- same INSERT as its points, so a retried request can be recognised and stored
-- once.
CREATE TABLE IF NOT EXISTS ingest_batches
(
    batch_id    String                COMMENT 'Idempotency-Key of the request',
    points      SimpleAggregateFunction(max, UInt64) COMMENT 'Points the request stored',
    inserted_at SimpleAggregateFunction(max, DateTime) COMMENT 'When the request was stored'
)
ENGINE = AggregatingMergeTree
ORDER BY batch_id
TTL inserted_at + INTERVAL 30 DAY
COMMENT 'Idempotency keys of stored requests (kept 30 days)';
