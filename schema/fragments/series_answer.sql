-- series_answer: the answer's columns from merged per-bucket rows (points,
-- finite, total as a sumKahan state, low, high, first_t, last_t), null where
-- the bucket has no finite value. Included by the series_buckets queries.
    g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x,
    sum(points)                                   AS points,
    sum(finite)                                   AS n_finite,
    sumKahanMerge(total)                          AS sum_finite,
    min(low)                                      AS low_finite,
    max(high)                                     AS high_finite,
    cityHash64(g_run_id, g_function_path, g_root_id, g_root_function_path) AS g_hash,
    bucket_x / 1e6                                AS x_seconds,
    -- All finite values equal: the average is that value and the sum one
    -- product, exactly (merged partial sums may be an ulp away).
    if(n_finite > 0, if(low_finite = high_finite, if({gauge:Bool}, low_finite, low_finite * n_finite),
                        if({gauge:Bool}, sum_finite / n_finite, sum_finite)), NULL) AS v_value,
    if(n_finite > 0, low_finite, NULL)            AS v_min,
    if(n_finite > 0, high_finite, NULL)           AS v_max,
    if(n_finite > 0, min(first_t).3, NULL)        AS v_first,
    if(n_finite > 0, max(last_t).3, NULL)         AS v_last
