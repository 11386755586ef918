-- pipeline_function_runtimes: for one pipeline, the mean run time of each
-- function over all its pipeline runs, root and nested runs alike (Sematic's
-- avg_runtime_children): resolved_at - started_at in seconds of RESOLVED runs
-- that are not cached or cloned copies. The pipeline's own function_path row
-- is the pipeline's average run time.
-- The PREWHERE filters versions before deduplication, which is exact because a
-- run's root_id and function_path never change between versions (GLOBAL IN:
-- on a cluster, nested runs and their root run may live on different shards).
-- Example: SELECT function_path, avg_run_time_s, runs
--          FROM pipeline_function_runtimes(function_path = 'train.pipeline')
--          ORDER BY avg_run_time_s DESC;
CREATE VIEW IF NOT EXISTS pipeline_function_runtimes AS
SELECT
    function_path,
    avg(run_time_s) AS avg_run_time_s,
    count()         AS runs
FROM runs FINAL
PREWHERE (is_root AND function_path = {function_path:String})
      OR (NOT is_root AND root_id GLOBAL IN (
            SELECT id FROM runs WHERE is_root AND function_path = {function_path:String}))
WHERE run_time_s IS NOT NULL
GROUP BY function_path
SETTINGS do_not_merge_across_partitions_select_final = 1;
