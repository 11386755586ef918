-- series_groups: the group columns of a series read (g_run_id, ...: the
-- label when the caller groups by it, else ''). Included by the series
-- fragments and queries/series_engine.sql.
        if({by_run_id:Bool}, run_id, '')                         AS g_run_id,
        if({by_function_path:Bool}, function_path, '')           AS g_function_path,
        if({by_root_id:Bool}, root_id, '')                       AS g_root_id,
        if({by_root_function_path:Bool}, root_function_path, '') AS g_root_function_path
