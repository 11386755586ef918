-- label_filter: the label-filter predicate, written once and included where a
-- schema file says {{label_filter}} (the metric_series and pipeline_points
-- views, the delete_matching query; the series engine's queries use the same
-- rules with scalar parameters, fragments/series_label_filter.sql, and a test
-- checks both select the same points). It reads the columns run_id, root_id,
-- function_path, root_function_path, scope, user_id and labels, and the bound
-- parameters:
--   filter_keys / filter_values  label filters as parallel arrays: a well-known
--       label (run_id, root_id, function_path, root_function_path, __scope__,
--       user_id) matches its column, any other key the labels map; an empty
--       value matches a missing label
--   root  1 keeps points with run_id = root_id, 0 those with run_id != root_id,
--       -1 keeps both
-- {{well_known_labels}} is the list of well-known labels from
-- sematic_metrics/rules.py. One line per well-known label lets the engine use
-- the sorting key when a filter names run_id or root_function_path.
(
    (indexOf({filter_keys:Array(String)}, 'run_id') = 0
     OR run_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'run_id')])
    AND (indexOf({filter_keys:Array(String)}, 'root_id') = 0
         OR root_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_id')])
    AND (indexOf({filter_keys:Array(String)}, 'function_path') = 0
         OR function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'function_path')])
    AND (indexOf({filter_keys:Array(String)}, 'root_function_path') = 0
         OR root_function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_function_path')])
    AND (indexOf({filter_keys:Array(String)}, '__scope__') = 0
         OR scope = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, '__scope__')])
    AND (indexOf({filter_keys:Array(String)}, 'user_id') = 0
         OR user_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'user_id')])
    -- The first arrayAll is constant: when every filter key is a column, the
    -- per-row labels lookup is skipped.
    AND (arrayAll(k -> k IN {{well_known_labels}}, {filter_keys:Array(String)})
         OR arrayAll((k, v) -> k IN {{well_known_labels}} OR labels[k] = v,
                     {filter_keys:Array(String)}, {filter_values:Array(String)}))
    AND ({root:Int8} < 0 OR toInt8(run_id = root_id) = {root:Int8})
)
