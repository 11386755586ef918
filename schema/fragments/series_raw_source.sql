-- series_raw_source: the raw points a bucketed read takes (all of them in
-- [from_x, to_x), or those under the finest tier rows listed in set_raw),
-- with x, the order key's columns kx, kt, kv and fin (finite). Included by
-- series_raw_rows and series_buckets_raw.
    (
        SELECT run_id, function_path, root_id, root_function_path, scope, user_id, labels, value,
               toUnixTimestamp64Micro(metric_time) AS t_us,
               if({axis:Int8} = 0, t_us, assumeNotNull(step)) AS x,
               if({axis:Int8} = 0, toInt64(0), assumeNotNull(step)) AS kx,
               t_us AS kt,
               value AS kv,
               isFinite(value) AS fin
        FROM metric_points
        WHERE {use_raw:Bool}
          AND name = {name:String}
          AND ({axis:Int8} = 1 OR (metric_time >= fromUnixTimestamp64Micro({from_x:Int64}, 'UTC')
                                   AND metric_time < fromUnixTimestamp64Micro({to_x:Int64}, 'UTC')))
          AND ({axis:Int8} = 0 OR step IS NOT NULL)
          AND ({top_raw:Bool}
               OR ({axis:Int8} = 0
                   AND intDiv(toUnixTimestamp64Micro(metric_time) + {offset:Int64}, {tier_a:Int64}) IN {set_raw:Array(Int64)})
               OR ({axis:Int8} = 1 AND intDiv(assumeNotNull(step) + {offset:Int64}, {tier_a:Int64}) IN {set_raw:Array(Int64)}))
          AND {{series_label_filter}}
    )
    WHERE x >= {from_x:Int64} AND x < {to_x:Int64}
