-- Queries of the dashboard's own endpoints (sematic_metrics/dashboard.py).
-- Times are returned as epoch microseconds. Every value is a bound
-- {name:Type} parameter.

-- name: pipeline_recent_runs
-- The newest root runs of one pipeline, with their latest state.
SELECT run_id,
       name,
       toString(future_state)                                               AS state,
       original_run_id,
       toUnixTimestamp64Micro(created_at)                                   AS created_us,
       toUnixTimestamp64Micro(started_at)                                   AS started_us,
       toUnixTimestamp64Micro(coalesce(resolved_at, failed_at, ended_at))   AS ended_us
FROM pipeline_runs_of(function_path = {function_path:String})
ORDER BY created_at DESC, run_id
LIMIT {limit:UInt32};

-- name: run_record
-- The latest state of one run.
SELECT id, root_id, parent_id, function_path, name,
       toString(future_state)              AS state,
       original_run_id,
       toUnixTimestamp64Micro(created_at)  AS created_us,
       toUnixTimestamp64Micro(started_at)  AS started_us,
       toUnixTimestamp64Micro(resolved_at) AS resolved_us,
       toUnixTimestamp64Micro(failed_at)   AS failed_us,
       toUnixTimestamp64Micro(ended_at)    AS ended_us,
       toUnixTimestamp64Micro(updated_at)  AS updated_us
FROM runs_latest
WHERE id = {run_id:String};
