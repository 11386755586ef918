-- metric_tiers_mv: fills metric_tiers (tables/005) in the same INSERT as the
-- points (the aggregation is fragments/tier_rollup_head.sql and
-- tier_rollup_tail.sql, shared with the backfill and the repair after a
-- DELETE in queries/series_tiers.sql). Only real inserts reach it: a retried
-- batch the writer recognises is not inserted, and an INSERT deduplicated by
-- its insert_deduplication_token fires no view.
CREATE MATERIALIZED VIEW metric_tiers_mv TO metric_tiers AS
{{tier_rollup_head}}
               toUInt32(0) AS origin, toInt8(-1) AS axis_only
        FROM metric_points
{{tier_rollup_tail}}
