-- series_raw_rows: the raw points of a bucketed read (series_raw_source),
-- pre-aggregated per series and bucket with the columns of series_tier_rows.
-- Included by series_buckets.
    SELECT
        if({by_run_id:Bool}, run_id, '')                         AS g_run_id,
        if({by_function_path:Bool}, function_path, '')           AS g_function_path,
        if({by_root_id:Bool}, root_id, '')                       AS g_root_id,
        if({by_root_function_path:Bool}, root_function_path, '') AS g_root_function_path,
        if({single:Bool}, {from_x:Int64}, x - positiveModulo(x, {width:Int64})) AS bucket_x,
        count() AS points,
        countIf(fin) AS finite,
        sumKahanState(if(fin, value, 0.)) AS total,
        min(if(fin, value, inf)) AS low,
        max(if(fin, value, -inf)) AS high,
        argMin(value, if(fin, {{series_order_key}}, toUInt256(-1))) AS fv,
        min(if(fin, {{series_order_key}}, toUInt256(-1))) AS fk,
        argMax(value, if(fin, {{series_order_key}}, toUInt256(0))) AS lv,
        max(if(fin, {{series_order_key}}, toUInt256(0))) AS lk,
        min(x) AS min_x, max(x) AS max_x
    FROM
    {{series_raw_source}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
