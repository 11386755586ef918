-- Upkeep of the rollup tiers (sematic_metrics/service/_tiers.py): the
-- backfill from points stored before the tiers existed, and the repair of the
-- tiers after a DELETE, with the aggregation of metric_tiers_mv
-- (fragments/tier_rollup_head.sql and tier_rollup_tail.sql). Every value is a
-- bound {name:Type} parameter; {{label_filter}} is fragments/label_filter.sql.

-- name: tier_backfill_pending
-- Partitions still to backfill, oldest first (the latest record per partition).
SELECT partition, argMax(max_block, updated_at) AS max_block, argMax(state, updated_at) AS state
FROM tier_backfills
GROUP BY partition
HAVING state != 'done'
ORDER BY partition;

-- name: tier_backfill_record
INSERT INTO tier_backfills (partition, max_block, state, points)
VALUES ({partition:String}, {max_block:UInt64}, {state:String}, {points:UInt64});

-- name: tier_backfill_forget
-- Remove what an interrupted attempt at one partition wrote.
DELETE FROM metric_tiers WHERE origin = {origin:UInt32};

-- name: tier_backfill_partition
-- The points of one partition stored before the tiers existed: block numbers
-- only grow, and every later block went through the views.
INSERT INTO metric_tiers (name, axis, width, root_function_path, run_id, bucket, root_id, function_path, scope, user_id,
                          labels_hash, origin, labels, points, finite, total, low, high, first, last,
                          min_x, max_x, last_seen)
{{tier_rollup_head}}
               {origin:UInt32} AS origin, toInt8(-1) AS axis_only
        FROM metric_points
        WHERE _partition_id = {partition:String} AND _block_number <= {max_block:UInt64}
{{tier_rollup_tail}};

-- name: tier_backfill_points
SELECT count() AS points FROM metric_points
WHERE _partition_id = {partition:String} AND _block_number <= {max_block:UInt64};

-- name: tier_delete_time
-- Time-tier rows of the matching series overlapping [from_us, to_us); the
-- repair feeds back the points left in the whole tier buckets.
DELETE FROM metric_tiers
WHERE name = {name:String} AND axis = 'time'
  AND bucket + width > {from_us:Int64} AND bucket < {to_us:Int64}
  AND {{label_filter}};

-- name: tier_refeed_time
INSERT INTO metric_tiers (name, axis, width, root_function_path, run_id, bucket, root_id, function_path, scope, user_id,
                          labels_hash, origin, labels, points, finite, total, low, high, first, last,
                          min_x, max_x, last_seen)
{{tier_rollup_head}}
               toUInt32(0) AS origin, toInt8(0) AS axis_only
        FROM metric_points
        WHERE name = {name:String}
          AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
          AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
          AND {{label_filter}}
{{tier_rollup_tail}};

-- name: tier_delete_step
-- Step-tier rows of the matching series (a time window may hold any step).
DELETE FROM metric_tiers
WHERE name = {name:String} AND axis = 'step' AND {{label_filter}};

-- name: tier_refeed_step
INSERT INTO metric_tiers (name, axis, width, root_function_path, run_id, bucket, root_id, function_path, scope, user_id,
                          labels_hash, origin, labels, points, finite, total, low, high, first, last,
                          min_x, max_x, last_seen)
{{tier_rollup_head}}
               toUInt32(0) AS origin, toInt8(1) AS axis_only
        FROM metric_points
        WHERE name = {name:String} AND step IS NOT NULL AND {{label_filter}}
{{tier_rollup_tail}};

-- name: set_tier_ttl
-- A tier row expires once its newest point has.
ALTER TABLE metric_tiers MODIFY TTL last_seen + toIntervalDay({days:UInt32});

-- name: remove_tier_ttl
ALTER TABLE metric_tiers REMOVE TTL;

-- name: data_disk_free
-- Bytes free on the data disks (the least of them): a tier repair waits for room.
SELECT min(unreserved_space) AS free FROM system.disks;
