-- Queries of the metrics endpoints, loaded by name. Every value is a bound
-- {name:Type} parameter; {{label_filter}} is fragments/label_filter.sql.

-- name: series
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us,
       if({gauge:Bool}, avg_value, sum_value) AS value
FROM metric_series(
    name = {name:String}, by_name = false,
    by_run_id = {by_run_id:Bool}, by_function_path = {by_function_path:Bool},
    by_root_id = {by_root_id:Bool}, by_root_function_path = {by_root_function_path:Bool},
    width_us = {width_us:Int64}, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8})
ORDER BY bucket_us, g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: sematic_buckets
-- The series query's rows for Sematic's rollups (service/_sematic_rollup.py):
-- the aggregation of the metric_series view, read from metric_points with the
-- series engine's label filter (fragments/series_label_filter.sql, scalar
-- parameters), since planning is most of a small read's time: 12 against
-- 18 ms through the view on a 10k-point run. Tests check it equals the view.
-- With {times:Bool}, each bucket's distinct times, counted up to 301
-- (rollup=auto takes whole seconds when no series has more than 300); else
-- 0, and nothing counts them.
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us,
       if({gauge:Bool}, sumKahanIf(value, isFinite(value)) / countIf(isFinite(value)),
          sumKahanIf(value, isFinite(value))) AS value,
       if({times:Bool}, length(groupUniqArray(301)(metric_time)), 0) AS distinct_times
FROM
(
    SELECT {{series_groups}}, value, metric_time,
           toUnixTimestamp64Micro(metric_time)
             - positiveModulo(toUnixTimestamp64Micro(metric_time), {width_us:Int64}) AS bucket_us
    FROM metric_points
    WHERE name = {name:String}
      AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
      AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
      AND {{series_label_filter}}
)
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_us
ORDER BY bucket_us, g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_extents
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, first_us, last_us, distinct_times
FROM metric_series(
    name = {name:String}, by_name = false,
    by_run_id = {by_run_id:Bool}, by_function_path = {by_function_path:Bool},
    by_root_id = {by_root_id:Bool}, by_root_function_path = {by_root_function_path:Bool},
    width_us = 0, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8});

-- name: names_matching
SELECT g_name
FROM metric_series(
    name = '', by_name = true,
    by_run_id = false, by_function_path = false, by_root_id = false, by_root_function_path = false,
    width_us = 0, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8})
ORDER BY g_name;

-- name: names_from_tiers
-- names_matching from the rollup tiers (complete once no backfill is pending):
-- the coarsest time tier holds every point of every series, a row per series
-- and day, with the time extent of its points (min_x, max_x). Rows are read
-- as stored, not merged: each holds the extent of points of its own. A row
-- inside [from_us, to_us) settles its name when its newest point is out of
-- the retention TTL's reach (max_x >= expire_us), hence still stored: a tier
-- row expires with its newest point, so it may outlive every point it counts
-- (and older points of a row may be gone: the row's extent still holds the
-- rest). A name whose matching rows only reach over an edge of the window, or
-- may be expired, is a candidate, checked on its points by names_among.
SELECT name AS g_name,
       max(min_x >= {from_us:Int64} AND max_x < {to_us:Int64} AND max_x >= {expire_us:Int64}) AS settled
FROM metric_tiers
WHERE axis = 'time' AND width = {width:Int64}
  AND max_x >= {from_us:Int64} AND min_x < {to_us:Int64}
  AND {{label_filter}}
GROUP BY name
ORDER BY name;

-- name: names_among
-- Which of the candidate names have a point matching names_matching's filter.
SELECT DISTINCT name AS g_name
FROM metric_points
WHERE name IN {names:Array(String)}
  AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
  AND {{label_filter}}
ORDER BY g_name;

-- name: catalog
SELECT name, metric_type FROM metric_catalog GROUP BY name, metric_type;

-- name: catalog_for_names
SELECT name, metric_type FROM metric_catalog
WHERE name IN {names:Array(String)}
GROUP BY name, metric_type;

-- name: first_stored_types
-- The type of each name's first stored point (by insertion second, then by
-- metric_time): the type that wins when two were stored (see catalog.py).
SELECT name, argMin(metric_type, (inserted_at, metric_time)) AS metric_type
FROM metric_points
WHERE name IN {names:Array(String)}
GROUP BY name;

-- name: known_batches
SELECT batch_id, max(points) AS points FROM ingest_batches
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

-- name: stored_batches
SELECT batch_id, count() AS points FROM metric_points
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

-- name: repair_catalog
-- The catalog rows of batches whose INSERT stored the points but failed in
-- metric_catalog_mv (min/max aggregates: a row added twice changes nothing).
INSERT INTO metric_catalog (name, metric_type, first_seen, last_seen)
SELECT name, metric_type, min(metric_time), max(metric_time) FROM metric_points
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY name, metric_type;

-- name: repair_batches
INSERT INTO ingest_batches (batch_id, points, inserted_at)
SELECT batch_id, count(), max(inserted_at) FROM metric_points
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

-- name: reconcile_batches
INSERT INTO ingest_batches (batch_id, points, inserted_at)
SELECT batch_id, count(), max(inserted_at) FROM metric_points
WHERE batch_id != '' AND inserted_at >= now() - toIntervalHour({hours:UInt32})
  AND batch_id NOT IN (
      SELECT batch_id FROM ingest_batches
      WHERE inserted_at >= now() - toIntervalHour({hours:UInt32} + 1))
GROUP BY batch_id;

-- name: delete_batches
DELETE FROM metric_points WHERE batch_id IN {batch_ids:Array(String)};

-- name: count_matching
SELECT sum(points) AS points
FROM metric_series(
    name = {name:String}, by_name = false,
    by_run_id = false, by_function_path = false, by_root_id = false, by_root_function_path = false,
    width_us = 0, from_us = {from_us:Int64}, to_us = {to_us:Int64},
    filter_keys = {filter_keys:Array(String)}, filter_values = {filter_values:Array(String)}, root = {root:Int8});

-- name: delete_matching
DELETE FROM metric_points
WHERE name = {name:String}
  AND metric_time >= fromUnixTimestamp64Micro({from_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({to_us:Int64}, 'UTC')
  AND {{label_filter}};

-- name: set_ttl
ALTER TABLE metric_points MODIFY TTL toDateTime(metric_time) + toIntervalDay({days:UInt32});

-- name: remove_ttl
ALTER TABLE metric_points REMOVE TTL;
