-- pipeline_points: Sematic's system metrics as virtual metric points, one per
-- root run, computed from runs_latest and never stored:
--   metric = 'run_count'              1 at created_at, for every root run
--   metric = 'func_success_rate'      1 (RESOLVED) or 0 (FAILED, NESTED_FAILED) at
--                                     outcome_at, for terminated root runs that are
--                                     not cached or cloned copies
--   metric = 'func_effective_runtime' run_time_s at resolved_at, for RESOLVED root
--                                     runs that are not copies
--   metric = ''                       the points of all three (one read of the
--                                     runs), told apart by the metric column
-- Columns: metric, then as on metric points: run_id = root_id = the run id, function_path =
-- root_function_path = the pipeline, user_id; scope and the labels map are
-- empty, so a filter on any other label matches only an empty value. The
-- parameters are those of metric_series: a half-open window [from_us, to_us)
-- on metric_time, and the label filters and `root` of fragments/label_filter.sql
-- (a root run has run_id = root_id: root = 1 or -1 keeps every point, 0 none).
-- Example: SELECT metric_time, value
--          FROM pipeline_points(metric = 'func_effective_runtime', from_us = 0,
--                               to_us = 4102444800000000, filter_keys = ['function_path'],
--                               filter_values = ['train.pipeline'], root = -1)
--          ORDER BY metric_time;
CREATE VIEW pipeline_points AS
SELECT metric, run_id, root_id, function_path, root_function_path, scope, user_id, labels,
       metric_time, value
FROM
(
    SELECT
        metric,
        run_id,
        run_id                                                                  AS root_id,
        function_path,
        function_path                                                           AS root_function_path,
        ''                                                                      AS scope,
        user_id,
        CAST(map(), 'Map(String, String)')                                      AS labels,
        assumeNotNull(multiIf(metric = 'run_count', created_at,
                              metric = 'func_success_rate', outcome_at,
                              resolved_at))                                     AS metric_time,
        toFloat64(assumeNotNull(multiIf(metric = 'run_count', 1,
                                        metric = 'func_success_rate', succeeded,
                                        run_time_s)))                          AS value
    FROM pipeline_runs
    ARRAY JOIN if({metric:String} = '', ['run_count', 'func_success_rate', 'func_effective_runtime'],
                  [{metric:String}]) AS metric
    WHERE multiIf(metric = 'run_count', true,
                  metric = 'func_success_rate', succeeded IS NOT NULL,
                  metric = 'func_effective_runtime', run_time_s IS NOT NULL,
                  false)
)
WHERE metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
  AND {{label_filter}};
