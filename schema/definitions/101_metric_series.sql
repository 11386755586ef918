-- metric_series: the aggregation behind GET /api/v1/metrics/{name}.
-- A parameterized view: filter by name (empty for all names), a half-open time
-- window in epoch microseconds and a map of label filters; group by any of the
-- well-known labels and by time buckets of width_us microseconds (0: one row
-- per group). Buckets start at multiples of the width since the Unix epoch.
-- avg_value is the gauge aggregate, sum_value the count aggregate; NaN and
-- infinities are skipped by both, and both use compensated (Kahan) summation,
-- so the average of a constant is that constant.
--
-- Label filters (`filter_keys` / `filter_values`, parallel arrays) and `root`:
-- see fragments/label_filter.sql, included at {{label_filter}}.
CREATE VIEW metric_series AS
SELECT
    if({by_name:Bool}, name, '')                             AS g_name,
    if({by_run_id:Bool}, run_id, '')                         AS g_run_id,
    if({by_function_path:Bool}, function_path, '')           AS g_function_path,
    if({by_root_id:Bool}, root_id, '')                       AS g_root_id,
    if({by_root_function_path:Bool}, root_function_path, '') AS g_root_function_path,
    if({width_us:Int64} > 0,
       toUnixTimestamp64Micro(metric_time)
         - positiveModulo(toUnixTimestamp64Micro(metric_time), {width_us:Int64}),
       toInt64(0))                                           AS bucket_us,
    any(metric_type)                                         AS metric_type,
    sumKahanIf(value, isFinite(value)) / countIf(isFinite(value)) AS avg_value,
    sumKahanIf(value, isFinite(value))                       AS sum_value,
    count()                                                  AS points,
    toUnixTimestamp64Micro(min(metric_time))                 AS first_us,
    toUnixTimestamp64Micro(max(metric_time))                 AS last_us,
    length(groupUniqArray(301)(metric_time))                 AS distinct_times
FROM metric_points
WHERE ({name:String} = '' OR name = {name:String})
  AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
  AND {{label_filter}}
GROUP BY g_name, g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us;
