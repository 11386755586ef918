-- metric_buckets: the analyst's view of a metric as time buckets, one row per
-- bucket and run, with the value a dashboard plots: the average for gauges,
-- the sum for counts (NaN and infinities skipped, compensated summation).
-- Example: SELECT * FROM metric_buckets(name = 'loss', bucket_s = 60)
--          WHERE run_id = 'abc' ORDER BY bucket;
CREATE VIEW metric_buckets AS
SELECT
    name,
    metric_type,
    run_id,
    root_id,
    function_path,
    root_function_path,
    toStartOfInterval(metric_time, toIntervalSecond({bucket_s:UInt32})) AS bucket,
    -- Compensated (Kahan) sums: the average of a constant is that constant.
    if(metric_type = 'GAUGE',
       sumKahanIf(value, isFinite(value)) / countIf(isFinite(value)),
       sumKahanIf(value, isFinite(value)))                             AS value,
    count() AS points
FROM metric_points
WHERE name = {name:String}
GROUP BY name, metric_type, run_id, root_id, function_path, root_function_path, bucket;
