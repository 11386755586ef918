-- series_tier_rows: the tier rows of a bucketed read, pre-aggregated per
-- series and bucket (see queries/series_engine.sql for the levels and their
-- parameters). Included by series_buckets and series_buckets_tiers.
    SELECT
        if({by_run_id:Bool}, run_id, '')                         AS g_run_id,
        if({by_function_path:Bool}, function_path, '')           AS g_function_path,
        if({by_root_id:Bool}, root_id, '')                       AS g_root_id,
        if({by_root_function_path:Bool}, root_function_path, '') AS g_root_function_path,
        if({single:Bool}, {from_x:Int64}, bucket - positiveModulo(bucket, {width:Int64})) AS bucket_x,
        sum(points) AS points, sum(finite) AS finite, sumKahanMergeState(total) AS total,
        min(low) AS low, max(high) AS high,
        argMin(first.3, arrayMap((kx, kt, kv) -> {{series_order_key}}, [first.1], [first.2], [first.3])[1]) AS fv,
        min(arrayMap((kx, kt, kv) -> {{series_order_key}}, [first.1], [first.2], [first.3])[1]) AS fk,
        argMax(last.3, arrayMap((kx, kt, kv) -> {{series_order_key}}, [last.1], [last.2], [last.3])[1]) AS lv,
        max(arrayMap((kx, kt, kv) -> {{series_order_key}}, [last.1], [last.2], [last.3])[1]) AS lk,
        min(min_x) AS min_x, max(max_x) AS max_x
    FROM metric_tiers
    WHERE name = {name:String}
      AND axis = {axis:Int8}
      AND (({use_a:Bool} AND width = {tier_a:Int64}
            AND ({top_a:Bool} OR intDiv(bucket + {offset:Int64}, {tier_b:Int64}) IN {set_a:Array(Int64)}))
        OR ({use_b:Bool} AND width = {tier_b:Int64}
            AND ({top_b:Bool} OR intDiv(bucket + {offset:Int64}, {tier_c:Int64}) IN {set_b:Array(Int64)}))
        OR ({use_c:Bool} AND width = {tier_c:Int64}))
      AND bucket >= {from_x:Int64}
      AND bucket + width <= {to_x:Int64}
      AND ({single:Bool} OR positiveModulo(bucket, {width:Int64}) + width <= {width:Int64})
      AND {{label_filter}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
