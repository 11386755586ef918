-- Queries of the pipeline endpoints (sematic_metrics/pipelines.py), loaded by
-- name. Every value is a bound {name:Type} parameter. A run's identity (root_id,
-- function_path) is that of its first stored version, as in runs_latest.

-- name: pipelines_list
SELECT function_path, run_count, success_rate, avg_run_time_s,
       toUnixTimestamp64Micro(last_run_at) AS last_run_us
FROM pipeline_stats
ORDER BY last_run_at DESC, function_path;

-- name: pipeline_window
-- The figures of pipeline_stats_between for one pipeline; through
-- pipeline_runs_of, only that pipeline's runs are read. No row when no root
-- run was created in the window.
SELECT function_path,
       {{pipeline_figures}}
FROM pipeline_runs_of(function_path = {function_path:String})
WHERE created_at >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND created_at < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
GROUP BY function_path;

-- name: pipeline_known
SELECT 1 FROM run_versions WHERE is_root AND function_path = {function_path:String} LIMIT 1;

-- name: pipeline_function_runtimes
SELECT function_path, avg_run_time_s
FROM pipeline_function_runtimes(function_path = {function_path:String})
ORDER BY function_path;

-- name: run_lookup
-- A run and its root run.
SELECT id,
       argMin(root_id, {{run_arrival}})       AS root_id,
       argMin(function_path, {{run_arrival}}) AS function_path
FROM run_versions
WHERE id = {run_id:String}
   OR id = (SELECT argMin(root_id, {{run_arrival}}) FROM run_versions WHERE id = {run_id:String})
GROUP BY id;

-- name: run_identities
-- The stored identity of each run, checked against the records of a batch.
SELECT id,
       argMin(root_id, {{run_arrival}})       AS root_id,
       argMin(function_path, {{run_arrival}}) AS function_path,
       toUnixTimestamp64Micro(argMin(created_at, {{run_arrival}})) AS created_us
FROM run_versions
WHERE id IN {ids:Array(String)}
GROUP BY id;

-- name: run_known_batches
SELECT batch_id, max(runs) AS runs FROM run_batches
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
ORDER BY bucket_us, g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: pipeline_series_extents
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, first_us, last_us, distinct_times
FROM pipeline_series(
    metric = {metric:String},
    by_run_id = {by_run_id:Bool}, by_function_path = {by_function_path:Bool},
    by_root_id = {by_root_id:Bool}, by_root_function_path = {by_root_function_path:Bool},
    width_us = 0, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8});

-- name: pipeline_points_present
-- Which system metrics have a point matching the filter (pipelines.py).
SELECT DISTINCT metric
FROM pipeline_points(
    metric = '', from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8});
