-- pipeline_runs: the latest state of every root run, one row per pipeline run
-- (nested runs are left out). function_path names the pipeline; filtering on
-- it reads only that pipeline's runs. The outcome columns:
--   succeeded   1 for RESOLVED, 0 for FAILED or NESTED_FAILED; null for runs in
--               progress, CANCELED runs and cached or cloned copies
--               (original_run_id set)
--   run_time_s  resolved_at - started_at in seconds for RESOLVED runs that are
--               not copies, else null
--   outcome_at  when the outcome counted by succeeded happened: resolved_at or
--               failed_at, else ended_at, else updated_at
-- Example: SELECT run_id, future_state, run_time_s FROM pipeline_runs
--          WHERE function_path = 'train.pipeline' ORDER BY created_at DESC LIMIT 20;
CREATE VIEW IF NOT EXISTS pipeline_runs AS
SELECT
    function_path, id AS run_id, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    succeeded, run_time_s, outcome_at, user_id
FROM runs FINAL
WHERE is_root
SETTINGS do_not_merge_across_partitions_select_final = 1;
