-- series_raw_rows: the raw points of a bucketed read (series_raw_source),
-- pre-aggregated per series and bucket with the columns of series_tier_rows.
-- A bucket without a finite value gets the tiers' sentinels, which lose every
-- comparison with a real point (x is never the Int64 extreme).
    SELECT
        {{series_groups}},
        x - positiveModulo(x, {width:Int64}) AS bucket_x,
        count() AS points,
        countIf(fin) AS finite,
        sumKahanStateIf(value, fin) AS total,
        min(if(fin, value, inf)) AS low,
        max(if(fin, value, -inf)) AS high,
        if(finite > 0, CAST(minIf((kx, kt, value), fin), 'Tuple(x Int64, t Int64, v Float64)'),
           CAST((9223372036854775807, 9223372036854775807, nan), 'Tuple(x Int64, t Int64, v Float64)')) AS first_t,
        if(finite > 0, CAST(maxIf((kx, kt, value), fin), 'Tuple(x Int64, t Int64, v Float64)'),
           CAST((-9223372036854775808, -9223372036854775808, nan), 'Tuple(x Int64, t Int64, v Float64)')) AS last_t
    FROM
    {{series_raw_source}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
