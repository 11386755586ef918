-- metric_buckets: the analyst's view of a metric as time buckets, one row per
-- bucket and run, with the value a dashboard plots: the average for gauges,
-- the sum for counts (NaN and infinities skipped).
-- Example: SELECT * FROM metric_buckets(name = 'loss', bucket_s = 60)
--          WHERE run_id = 'abc' ORDER BY bucket;
CREATE VIEW IF NOT EXISTS metric_buckets AS
SELECT
    name,
    metric_type,
    run_id,
    root_id,
    function_path,
    root_function_path,
    toStartOfInterval(metric_time, toIntervalSecond({bucket_s:UInt32})) AS bucket,
    if(metric_type = 'GAUGE', avgIf(value, isFinite(value)), sumIf(value, isFinite(value))) AS value,
    count() AS points
FROM metric_points
WHERE name = {name:String}
GROUP BY name, metric_type, run_id, root_id, function_path, root_function_path, bucket;
