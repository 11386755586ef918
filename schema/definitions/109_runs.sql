-- runs: every stored version of every run, one row per version, as the table
-- of this name held them before tables/010_runs_versions.sql moved them to
-- run_versions. Read a run's state through runs_latest.
-- Example: SELECT id, toString(future_state) AS state, updated_at, arrived_at
--          FROM runs WHERE id = 'abc' ORDER BY arrived_at;
CREATE VIEW runs AS
SELECT
    id, root_id, parent_id, function_path, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    is_root, user_id, batch_id, inserted_at, arrived_at, position
FROM run_versions;
