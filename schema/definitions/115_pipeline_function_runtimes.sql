-- pipeline_function_runtimes: for one pipeline, the mean run time of each
-- function over all its pipeline runs, root and nested runs alike (Sematic's
-- avg_runtime_children): resolved_at - started_at in seconds of RESOLVED runs
-- that are not cached or cloned copies, each run's state by the rules of
-- runs_latest. The pipeline's own function_path row is the pipeline's average
-- run time. Only the versions whose root_id is a root run of the pipeline are
-- read (GLOBAL IN: on a cluster, nested runs and their root run may live on
-- different shards).
-- Example: SELECT function_path, avg_run_time_s, runs
--          FROM pipeline_function_runtimes(function_path = 'train.pipeline')
--          ORDER BY avg_run_time_s DESC;
CREATE VIEW pipeline_function_runtimes AS
WITH chosen_versions AS
(
    SELECT * FROM run_versions
    WHERE root_id GLOBAL IN (
        SELECT id FROM run_versions WHERE is_root AND function_path = {function_path:String})
)
SELECT
    function_path,
    sumKahan(run_time_s) / count(run_time_s) AS avg_run_time_s,
    count()         AS runs
FROM ({{run_state}})
WHERE run_time_s IS NOT NULL
GROUP BY function_path;
