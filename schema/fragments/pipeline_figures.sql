-- pipeline_figures: the figures of a pipeline over rows of pipeline_runs (or
-- pipeline_runs_of), as the SELECT list of an aggregation by function_path;
-- the same as definitions/112_pipeline_stats.sql computes (see there for the
-- meaning of each column). Included by the pipeline_window query.
count()                                          AS run_count,
avg(succeeded)                                   AS success_rate,
sumKahan(run_time_s) / count(run_time_s)         AS avg_run_time_s,
max(created_at)                                  AS last_run_at,
countIf(succeeded = 1)                           AS resolved_count,
countIf(succeeded = 0)                           AS failed_count,
sumMap(map(toString(future_state), toUInt64(1))) AS count_by_state
