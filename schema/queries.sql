-- Queries the service runs, kept apart from the numbered migrations and loaded
-- by name. Every value is a bound {name:Type} parameter.

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

-- name: catalog
SELECT name, metric_type FROM metric_catalog GROUP BY name, metric_type;

-- name: catalog_for_names
SELECT name, metric_type FROM metric_catalog
WHERE name IN {names:Array(String)}
GROUP BY name, metric_type;

-- name: known_batches
SELECT batch_id, max(points) FROM ingest_batches
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

-- name: stored_batches
SELECT batch_id, count() FROM metric_points
WHERE batch_id IN {batch_ids:Array(String)}
GROUP BY batch_id;

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
SELECT sum(points)
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
  AND (indexOf({filter_keys:Array(String)}, 'run_id') = 0
       OR run_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'run_id')])
  AND (indexOf({filter_keys:Array(String)}, 'root_id') = 0
       OR root_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_id')])
  AND (indexOf({filter_keys:Array(String)}, 'function_path') = 0
       OR function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'function_path')])
  AND (indexOf({filter_keys:Array(String)}, 'root_function_path') = 0
       OR root_function_path = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'root_function_path')])
  AND (indexOf({filter_keys:Array(String)}, '__scope__') = 0
       OR scope = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, '__scope__')])
  AND (indexOf({filter_keys:Array(String)}, 'user_id') = 0
       OR user_id = {filter_values:Array(String)}[indexOf({filter_keys:Array(String)}, 'user_id')])
  -- The first arrayAll is constant: when every filter key is a column, the
  -- per-row labels lookup is skipped.
  AND (arrayAll(
         k -> k IN ('run_id', 'root_id', 'function_path', 'root_function_path', '__scope__', 'user_id'),
         {filter_keys:Array(String)})
       OR arrayAll(
         (k, v) -> k IN ('run_id', 'root_id', 'function_path', 'root_function_path', '__scope__', 'user_id')
                   OR labels[k] = v,
         {filter_keys:Array(String)}, {filter_values:Array(String)}))
  AND ({root:Int8} < 0 OR toInt8(run_id = root_id) = {root:Int8});

-- name: set_ttl
ALTER TABLE metric_points MODIFY TTL toDateTime(metric_time) + toIntervalDay({days:UInt32});

-- name: remove_ttl
ALTER TABLE metric_points REMOVE TTL;
