-- runs_latest: the latest version of every run, that is the record with the
-- latest updated_at (on a tie, the last inserted), correct before background
-- merges too. Root runs (is_root) are pipeline runs; a pipeline is the
-- function_path of its root runs.
-- Example: SELECT future_state, count() FROM runs_latest
--          WHERE is_root AND function_path = 'train.pipeline' GROUP BY future_state;
CREATE VIEW IF NOT EXISTS runs_latest AS
SELECT
    id, root_id, parent_id, function_path, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    is_root, succeeded, run_time_s, outcome_at, user_id
FROM runs FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1;
