-- pipeline_stats: one row per pipeline (root function_path) over all its root
-- runs; pipeline_stats_between: the same over the root runs created in the
-- half-open window [from_us, to_us) of epoch microseconds.
--   run_count       root runs, every outcome included; nested runs are not counted
--   success_rate    RESOLVED / (RESOLVED + FAILED + NESTED_FAILED); canceled runs,
--                   runs in progress and cached or cloned copies are left out;
--                   null when no run terminated
--   avg_run_time_s  mean resolved_at - started_at of RESOLVED runs that are not
--                   copies (compensated summation); null when there is none
--   last_run_at     the last run time: the newest created_at of its root runs
--   resolved_count, failed_count  the numerator and the failures of success_rate
--   count_by_state  {state: root runs in that state}
-- Example: SELECT function_path, run_count, success_rate, avg_run_time_s, last_run_at
--          FROM pipeline_stats ORDER BY last_run_at DESC;
-- Example: SELECT run_count, success_rate, count_by_state
--          FROM pipeline_stats_between(from_us = 1700000000000000, to_us = 1800000000000000)
--          WHERE function_path = 'train.pipeline';
CREATE VIEW pipeline_stats_between AS
SELECT
    function_path,
    count()                                          AS run_count,
    avg(succeeded)                                   AS success_rate,
    sumKahan(run_time_s) / count(run_time_s)         AS avg_run_time_s,
    max(created_at)                                  AS last_run_at,
    countIf(succeeded = 1)                           AS resolved_count,
    countIf(succeeded = 0)                           AS failed_count,
    sumMap(map(toString(future_state), toUInt64(1))) AS count_by_state
FROM pipeline_runs
WHERE created_at >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND created_at < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
GROUP BY function_path;

-- The window is the whole DateTime64 range (1900-01-01 to 2300-01-01, the
-- time bounds of sematic_metrics/rules.py).
CREATE VIEW pipeline_stats AS
SELECT * FROM pipeline_stats_between(from_us = {{min_time_us}}, to_us = {{max_time_us}});
