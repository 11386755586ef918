-- ingest_batches_mv: fills ingest_batches (tables/002) in the same INSERT as
-- the points of a request that carried an Idempotency-Key, so a retried
-- request is recognised and stored once.
CREATE MATERIALIZED VIEW ingest_batches_mv TO ingest_batches AS
SELECT batch_id, count() AS points, max(inserted_at) AS inserted_at
FROM metric_points
WHERE batch_id != ''
GROUP BY batch_id;
