-- series_tier_rows: the tier rows of a bucketed read, pre-aggregated per
-- series and bucket (see queries/series_engine.sql for the levels and their
-- parameters). first_t / last_t are the stored (x, time_us, value) tuples:
-- min / max over them is the order first and last are defined by.
    SELECT
        {{series_groups}},
        bucket - positiveModulo(bucket, {width:Int64}) AS bucket_x,
        sum(points) AS points, sum(finite) AS finite, sumKahanMergeState(total) AS total,
        min(low) AS low, max(high) AS high,
        min(first) AS first_t, max(last) AS last_t
    FROM metric_tiers
    WHERE {{series_tier_where}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
