-- series_label_filter: the label filter of fragments/label_filter.sql (the
-- same rules and answers) for the series engine's queries. It binds one
-- scalar pair per well-known label instead of lookups into the filter_keys /
-- filter_values arrays: the engine's reads are small, so planning is most of
-- their time, and every array parameter in the text is parsed and analysed
-- again. On a 100k-point run this form took a read from 83-101 ms to 49-61 ms.
-- Parameters (SeriesQuery.params in service/series_engine.py):
--   has_<column> / f_<column>  whether the filter names the well-known label
--       stored in <column> (sematic_metrics/rules.py), and its value
--   label_keys / label_values  the other labels, looked up in the labels map
--       (an empty value matches a missing label)
--   root  as in label_filter
(
    (NOT {has_run_id:Bool} OR run_id = {f_run_id:String})
    AND (NOT {has_root_id:Bool} OR root_id = {f_root_id:String})
    AND (NOT {has_function_path:Bool} OR function_path = {f_function_path:String})
    AND (NOT {has_root_function_path:Bool} OR root_function_path = {f_root_function_path:String})
    AND (NOT {has_scope:Bool} OR scope = {f_scope:String})
    AND (NOT {has_user_id:Bool} OR user_id = {f_user_id:String})
    AND (empty({label_keys:Array(String)})
         OR arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)}))
    AND ({root:Int8} < 0 OR toInt8(run_id = root_id) = {root:Int8})
)
