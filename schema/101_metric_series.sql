-- metric_series: the aggregation behind GET /api/v1/metrics/{name}.
-- A parameterized view: filter by name (empty for all names), a half-open time
-- window in epoch microseconds and a map of label filters; group by any of the
-- well-known labels and by time buckets of width_us microseconds (0: one row
-- per group). Buckets start at multiples of the width since the Unix epoch.
-- avg_value is the gauge aggregate, sum_value the count aggregate; NaN and
-- infinities are skipped by both.
--
-- Label filters (`filter_keys` / `filter_values`, parallel arrays): keys run_id, root_id, function_path,
-- root_function_path, __scope__, user_id match their columns, any other key
-- matches the labels map; an empty value matches a missing label.
-- `root`: 1 keeps points with run_id = root_id, 0 those with run_id != root_id,
-- -1 keeps both.
CREATE VIEW IF NOT EXISTS metric_series AS
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
    avgIf(value, isFinite(value))                            AS avg_value,
    sumIf(value, isFinite(value))                            AS sum_value,
    count()                                                  AS points,
    toUnixTimestamp64Micro(min(metric_time))                 AS first_us,
    toUnixTimestamp64Micro(max(metric_time))                 AS last_us,
    length(groupUniqArray(301)(metric_time))                 AS distinct_times
FROM metric_points
WHERE ({name:String} = '' OR name = {name:String})
  AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
  AND (indexOf({filter_keys:Array(String)}, 'run_id') = 0
       OR run_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'run_id')])
  AND (indexOf({filter_keys:Array(String)}, 'root_id') = 0
       OR root_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_id')])
  AND (indexOf({filter_keys:Array(String)}, 'function_path') = 0
       OR function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'function_path')])
  AND (indexOf({filter_keys:Array(String)}, 'root_function_path') = 0
       OR root_function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_function_path')])
  AND (indexOf({filter_keys:Array(String)}, '__scope__') = 0
       OR scope = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, '__scope__')])
  AND (indexOf({filter_keys:Array(String)}, 'user_id') = 0
       OR user_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'user_id')])
  -- The first arrayAll is constant: when every filter key is a column, the
  -- per-row labels lookup is skipped.
  AND (arrayAll(
         k -> k IN ('run_id', 'root_id', 'function_path', 'root_function_path', '__scope__', 'user_id'),
         {filter_keys:Array(String)})
       OR arrayAll(
         (k, v) -> k IN ('run_id', 'root_id', 'function_path', 'root_function_path', '__scope__', 'user_id')
                   OR labels[k] = v,
         {filter_keys:Array(String)}, {filter_values:Array(String)}))
  AND ({root:Int8} < 0 OR toInt8(run_id = root_id) = {root:Int8})
GROUP BY g_name, g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us;
