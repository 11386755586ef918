-- series_tier_where: which metric_tiers rows a series read takes (see
-- queries/series_engine.sql for the levels and their parameters). Included by
-- series_tier_rows and the series_spans queries.
    name = {name:String}
      AND axis = {axis:Int8}
      AND (({use_a:Bool} AND width = {tier_a:Int64}
            AND ({top_a:Bool} OR intDiv(bucket + {offset:Int64}, {tier_b:Int64}) IN {set_a:Array(Int64)}))
        OR ({use_b:Bool} AND width = {tier_b:Int64}
            AND ({top_b:Bool} OR intDiv(bucket + {offset:Int64}, {tier_c:Int64}) IN {set_b:Array(Int64)}))
        OR ({use_c:Bool} AND width = {tier_c:Int64}))
      AND bucket >= {from_x:Int64}
      AND bucket + width <= {to_x:Int64}
      AND ({single:Bool} OR positiveModulo(bucket, {width:Int64}) + width <= {width:Int64})
      AND {{series_label_filter}}
