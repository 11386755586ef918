-- series_answer: the answer's columns from merged per-bucket rows (points,
-- finite, total as a sumKahan state, low, high, first_t, last_t), null where
-- the bucket has no finite value. Included by the series_buckets queries.
    g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x,
    sum(points)                                   AS points,
    sum(finite)                                   AS n_finite,
    sumKahanMerge(total)                          AS sum_finite,
    min(low)                                      AS low_finite,
    max(high)                                     AS high_finite,
    min(first_t).3                                AS first_value,
    max(last_t).3                                 AS last_value,
{{series_values}}
