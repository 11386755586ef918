-- Queries of the pipeline endpoints (sematic_metrics/pipelines.py), loaded by
-- name. Every value is a bound {name:Type} parameter. The SETTINGS clause lets
-- FINAL deduplicate each monthly partition of runs on its own.

-- name: pipelines_list
SELECT function_path, run_count, success_rate, avg_run_time_s,
       toUnixTimestamp64Micro(last_run_at) AS last_run_us
FROM pipeline_stats
ORDER BY last_run_at DESC, function_path
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- name: pipeline_window
SELECT run_count, success_rate, avg_run_time_s, count_by_state
FROM pipeline_stats_between(from_us = {from_us:Int64}, to_us = {to_us:Int64})
WHERE function_path = {function_path:String}
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- name: pipeline_known
SELECT 1 FROM runs WHERE is_root AND function_path = {function_path:String} LIMIT 1;

-- name: pipeline_function_runtimes
SELECT function_path, avg_run_time_s
FROM pipeline_function_runtimes(function_path = {function_path:String})
ORDER BY function_path
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- name: run_lookup
SELECT id, root_id, function_path
FROM runs
WHERE id = {run_id:String}
   OR id = (SELECT any(root_id) FROM runs WHERE id = {run_id:String})
LIMIT 1 BY id;

-- name: run_identities
SELECT id, any(root_id), any(function_path), toUnixTimestamp64Micro(any(created_at))
FROM runs
WHERE id IN {ids:Array(String)}
GROUP BY id;

-- name: run_known_batches
SELECT batch_id, max(runs) FROM run_batches
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

-- name: pipeline_series
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us,
       if({gauge:Bool}, avg_value, sum_value) AS value
FROM pipeline_series(
    metric = {metric:String},
    by_run_id = {by_run_id:Bool}, by_function_path = {by_function_path:Bool},
    by_root_id = {by_root_id:Bool}, by_root_function_path = {by_root_function_path:Bool},
    width_us = {width_us:Int64}, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8})
ORDER BY bucket_us, g_run_id, g_function_path, g_root_id, g_root_function_path
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- name: pipeline_series_extents
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, first_us, last_us, distinct_times
FROM pipeline_series(
    metric = {metric:String},
    by_run_id = {by_run_id:Bool}, by_function_path = {by_function_path:Bool},
    by_root_id = {by_root_id:Bool}, by_root_function_path = {by_root_function_path:Bool},
    width_us = 0, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8})
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- name: pipeline_points_any
SELECT 1
FROM pipeline_points(
    metric = {metric:String}, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8})
LIMIT 1
SETTINGS do_not_merge_across_partitions_select_final = 1;
