-- run_batches_mv: fills run_batches (tables/004) in the same INSERT as the run
-- records (tables/010 run_versions) of a request that carried an Idempotency-Key.
CREATE MATERIALIZED VIEW run_batches_mv TO run_batches AS
SELECT batch_id, count() AS runs, max(inserted_at) AS inserted_at
FROM run_versions
WHERE batch_id != ''
GROUP BY batch_id;
