-- Queries of the live stream (sematic_metrics/stream.py). Every value is a
-- bound {name:Type} parameter.

-- name: stream_extents
-- Per metric of one run: time extent and up to 301 distinct times, from
-- which the stream derives the bucket width rollup=auto would use.
SELECT name,
       toUnixTimestamp64Micro(min(metric_time)) AS first_us,
       toUnixTimestamp64Micro(max(metric_time)) AS last_us,
       arrayMap(t -> toUnixTimestamp64Micro(t), groupUniqArray(301)(metric_time)) AS times
FROM metric_points
WHERE run_id = {run_id:String}
  AND metric_time >= fromUnixTimestamp64Micro(toInt64(0), 'UTC')
  AND ({all_names:Bool} OR name IN {names:Array(String)})
GROUP BY name;

-- name: stream_spans
-- stream_extents from the rollup tiers (sematic_metrics/service/_stream_extents.py):
-- per metric of one run, its point count and time extent from the coarsest
-- time tier ({width:Int64}, a row per series and day).
SELECT name, sum(points) AS points, min(min_x) AS first_us, max(max_x) AS last_us
FROM metric_tiers
WHERE axis = 'time' AND width = {width:Int64} AND run_id = {run_id:String}
GROUP BY name;

-- name: stream_minutes
-- A lower bound of the distinct times of each of {names} in the run, from the
-- finest time tier ({width:Int64}): points in different buckets have
-- different times, and a bucket whose earliest and latest points differ has
-- two. Above 300 the metric has more than 300 distinct times.
SELECT name, sum(if(low < high, 2, 1)) AS times_at_least
FROM
(
    SELECT name, bucket, min(min_x) AS low, max(max_x) AS high
    FROM metric_tiers
    WHERE axis = 'time' AND width = {width:Int64} AND run_id = {run_id:String}
      AND name IN {names:Array(String)}
    GROUP BY name, bucket
)
GROUP BY name;

-- name: stream_buckets
-- Full aggregates of the buckets of one run touched by new points: each
-- metric has its own bucket width and half-open window (parallel arrays).
-- The value is the average for gauges and the sum for counts, NaN and
-- infinities skipped, as in the metric_series view; min, max, first and last
-- are over finite values (NULL without one; first and last by time, then
-- value, as GET /api/v1/series orders them), the count over every point.
WITH indexOf({names:Array(String)}, name) AS i,
     {widths_us:Array(Int64)}[i] AS width_us,
     toUnixTimestamp64Micro(metric_time) AS t_us
SELECT name,
       t_us - positiveModulo(t_us, width_us) AS bucket_us,
       any(metric_type) = 'GAUGE' AS gauge,
       sumKahanIf(value, isFinite(value)) / countIf(isFinite(value)) AS avg_value,
       sumKahanIf(value, isFinite(value)) AS sum_value,
       countIf(isFinite(value)) > 0 AS any_finite,
       if(any_finite, minIf(value, isFinite(value)), NULL) AS min_value,
       if(any_finite, maxIf(value, isFinite(value)), NULL) AS max_value,
       if(any_finite, argMinIf(value, (t_us, value), isFinite(value)), NULL) AS first_value,
       if(any_finite, argMaxIf(value, (t_us, value), isFinite(value)), NULL) AS last_value,
       count() AS point_count
FROM metric_points
WHERE name IN {names:Array(String)}
  AND run_id = {run_id:String}
  AND metric_time >= fromUnixTimestamp64Micro({lo_us:Int64}, 'UTC')
  AND metric_time < fromUnixTimestamp64Micro({hi_us:Int64}, 'UTC')
  AND t_us >= {from_us:Array(Int64)}[i]
  AND t_us < {to_us:Array(Int64)}[i]
GROUP BY name, bucket_us
ORDER BY name, bucket_us;
