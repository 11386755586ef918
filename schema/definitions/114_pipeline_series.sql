-- pipeline_series: pipeline_points aggregated exactly as metric_series
-- aggregates metric points (same parameters and columns, plus `metric`), so
-- sematic.run_count, sematic.func_success_rate and sematic.func_effective_runtime
-- have the labels / group_by / rollup semantics of custom metrics.
-- Example: daily success rate per pipeline
--   SELECT g_root_function_path, bucket_us, avg_value
--   FROM pipeline_series(metric = 'func_success_rate', by_run_id = false,
--                        by_function_path = false, by_root_id = false,
--                        by_root_function_path = true, width_us = 86400000000,
--                        from_us = 0, to_us = 4102444800000000,
--                        filter_keys = [], filter_values = [], root = -1)
--   ORDER BY bucket_us;
CREATE VIEW pipeline_series AS
SELECT
    if({by_run_id:Bool}, run_id, '')                         AS g_run_id,
    if({by_function_path:Bool}, function_path, '')           AS g_function_path,
    if({by_root_id:Bool}, root_id, '')                       AS g_root_id,
    if({by_root_function_path:Bool}, root_function_path, '') AS g_root_function_path,
    if({width_us:Int64} > 0,
       toUnixTimestamp64Micro(metric_time)
         - positiveModulo(toUnixTimestamp64Micro(metric_time), {width_us:Int64}),
       toInt64(0))                                           AS bucket_us,
    sumKahanIf(value, isFinite(value)) / countIf(isFinite(value)) AS avg_value,
    sumKahanIf(value, isFinite(value))                       AS sum_value,
    count()                                                  AS points,
    toUnixTimestamp64Micro(min(metric_time))                 AS first_us,
    toUnixTimestamp64Micro(max(metric_time))                 AS last_us,
    length(groupUniqArray(301)(metric_time))                 AS distinct_times
FROM pipeline_points(
    metric = {metric:String}, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)},
    root = {root:Int8})
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us;
