-- tier_rollup_tail: the end of the tier aggregation begun by tier_rollup_head.
    )
    GROUP BY name, root_function_path, run_id, root_id, function_path, scope, user_id, origin,
             axis_only, labels_hash, minute_us, step100
)
ARRAY JOIN [(0, 60000000), (0, 3600000000), (0, 86400000000),
            (1, 100), (1, 10000), (1, 1000000)] AS tier
WHERE (tier.1 = 0 OR step100 IS NOT NULL) AND (axis_only < 0 OR axis_only = tier.1)
GROUP BY name, axis, width, root_function_path, run_id, bucket, root_id, function_path, scope, user_id,
         labels_hash, origin
