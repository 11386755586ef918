-- series_values: a bucket's answer columns (value, min, max, first, last;
-- null when it has no finite value) from the aliases n_finite, sum_finite,
-- low_finite, high_finite, first_value and last_value, plus g_hash and
-- x_seconds. Included by series_answer and series_buckets_raw.
    cityHash64(g_run_id, g_function_path, g_root_id, g_root_function_path) AS g_hash,
    bucket_x / 1e6                                AS x_seconds,
    -- All finite values equal: the average is that value and the sum one
    -- product, exactly (merged partial sums may be an ulp away).
    if(n_finite > 0, if(low_finite = high_finite, if({gauge:Bool}, low_finite, low_finite * n_finite),
                        if({gauge:Bool}, sum_finite / n_finite, sum_finite)), NULL) AS v_value,
    if(n_finite > 0, low_finite, NULL)            AS v_min,
    if(n_finite > 0, high_finite, NULL)           AS v_max,
    if(n_finite > 0, first_value, NULL)           AS v_first,
    if(n_finite > 0, last_value, NULL)            AS v_last
