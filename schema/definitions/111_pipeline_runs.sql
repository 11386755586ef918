-- pipeline_runs: the state of every root run (the rules of runs_latest), one
-- row per pipeline run, from the versions stored as a root run (id = root_id);
-- nested runs are left out before aggregation. A run counts once, under the
-- function_path of its first stored version: the pipeline. The outcome columns:
--   succeeded   1 for RESOLVED, 0 for FAILED or NESTED_FAILED; null for runs in
--               progress, CANCELED runs and cached or cloned copies
--               (original_run_id set)
--   run_time_s  resolved_at - started_at in seconds for RESOLVED runs that are
--               not copies, else null
--   outcome_at  when the outcome counted by succeeded happened: resolved_at or
--               failed_at, else ended_at, else updated_at
-- Example: SELECT run_id, future_state, run_time_s FROM pipeline_runs
--          WHERE function_path = 'train.pipeline' ORDER BY created_at DESC LIMIT 20;
CREATE VIEW pipeline_runs AS
WITH chosen_versions AS (SELECT * FROM run_versions WHERE is_root)
SELECT
    function_path, id AS run_id, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    succeeded, run_time_s, outcome_at, user_id
FROM ({{run_state}})
WHERE is_root;

-- pipeline_runs_of: the rows of pipeline_runs for one pipeline, reading only
-- the versions of runs with a root version of that function_path (found in
-- the by_pipeline projection of run_versions, then read by id), so its cost
-- follows the pipeline's size, not the table's. Exactly pipeline_runs WHERE
-- function_path = {function_path}. GLOBAL IN: on a cluster the set is built once.
-- Example: SELECT run_id, future_state FROM pipeline_runs_of(function_path = 'train.pipeline')
--          ORDER BY created_at DESC LIMIT 20;
CREATE VIEW pipeline_runs_of AS
WITH chosen_versions AS
(
    SELECT * FROM run_versions
    WHERE is_root
      AND id GLOBAL IN (
          SELECT id FROM run_versions WHERE is_root AND function_path = {function_path:String})
)
SELECT
    function_path, id AS run_id, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    succeeded, run_time_s, outcome_at, user_id
FROM ({{run_state}})
WHERE is_root AND function_path = {function_path:String};
