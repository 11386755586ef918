-- Queries of the series engine (sematic_metrics/service/series_engine.py).
-- Every value is a bound {name:Type} parameter; {{series_label_filter}} is
-- fragments/series_label_filter.sql (the label filter with scalar parameters).
--
-- x is the metric time in microseconds (axis 0) or the step (axis 1). A
-- bucket of width W starts at a multiple of W; {single:Bool} makes the whole
-- range [from_x, to_x) one bucket (the series_spans queries).
--
-- series_buckets reads each bucket from whole tier rows that lie inside it,
-- the coarsest first, and finer rows only at its edges. The levels are three
-- tier slots (a, b, c: the tiers of the axis, finest first) and the raw
-- points. A tier row of level k is read when it lies inside one bucket and
-- inside the range, and, unless k is the top level read, when its parent
-- bucket (level k + 1) straddles a bucket edge: the parents that do are
-- listed by the caller (set_a, set_b, set_raw: parent indexes
-- intDiv(x + offset, parent width), which the primary key can use). So every
-- point is counted once, at the coarsest level whose bucket holding it lies
-- inside one answer bucket.

-- name: series_buckets
SELECT
{{series_answer}}
FROM
(
    {{series_tier_rows}}
    UNION ALL
    {{series_raw_rows}}
)
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
ORDER BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x;

-- name: series_buckets_tiers
-- series_buckets when no raw point is needed (reading none costs a scan):
-- the tier rows aggregated once, straight into the answer.
SELECT
{{series_answer}}
FROM
(
    SELECT {{series_groups}}, bucket - positiveModulo(bucket, {width:Int64}) AS bucket_x,
           points, finite, total, low, high, first AS first_t, last AS last_t
    FROM metric_tiers
    WHERE {{series_tier_where}}
)
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
ORDER BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x;

-- name: series_buckets_raw
-- series_buckets from the raw points only (no tier fits the width, or one
-- entry per distinct x): one aggregation, no partial states; first and last
-- by a numeric order key, far cheaper than tuples over many points.
SELECT
    {{series_groups}},
    x - positiveModulo(x, {width:Int64})          AS bucket_x,
    count()                                       AS points,
    countIf(fin)                                  AS n_finite,
    sumKahanIf(value, fin)                        AS sum_finite,
    minIf(value, fin)                             AS low_finite,
    maxIf(value, fin)                             AS high_finite,
    argMin(value, if(fin, {{series_order_key}}, toUInt256(-1))) AS first_value,
    argMax(value, if(fin, {{series_order_key}}, toUInt256(0)))  AS last_value,
    uniqExact(x)                                  AS distinct_x,
{{series_values}}
FROM {{series_raw_source}}
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x
ORDER BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket_x;

-- name: series_spans
-- Per series: its points and x extent in [from_x, to_x) ({single:Bool}
-- plan): whole tier rows inside the range, raw points at its edges. Only the
-- three columns the width needs, so the query stays cheap to plan.
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path,
       sum(points) AS points, min(min_x) AS min_x, max(max_x) AS max_x
FROM
(
    SELECT {{series_groups}}, sum(points) AS points, min(min_x) AS min_x, max(max_x) AS max_x
    FROM metric_tiers
    WHERE {{series_tier_where}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path
    UNION ALL
    SELECT {{series_groups}}, count() AS points, min(x) AS min_x, max(x) AS max_x
    FROM {{series_raw_source}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path
)
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_spans_tiers
-- series_spans when no raw point is needed: the whole range is whole tier
-- rows (always so without from and to: the coarsest tier alone).
SELECT {{series_groups}}, sum(points) AS points, min(min_x) AS min_x, max(max_x) AS max_x
FROM metric_tiers
WHERE {{series_tier_where}}
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_spans_top
-- series_spans_tiers when one tier is read and no edge is (a read without
-- from and to: the coarsest tier alone). The same rows by a shorter text:
-- planning is most of this query's time (8 against 10 ms on a 10k-point run).
SELECT {{series_groups}}, sum(points) AS points, min(min_x) AS min_x, max(max_x) AS max_x
FROM metric_tiers
WHERE name = {name:String}
  AND axis = {axis:Int8}
  AND width = {top_width:Int64}
  AND bucket >= {from_x:Int64}
  AND bucket + width <= {to_x:Int64}
  AND {{series_label_filter}}
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_spans_raw
-- series_spans from the raw points only (the tiers are not ready yet).
SELECT {{series_groups}}, count() AS points, min(x) AS min_x, max(x) AS max_x
FROM {{series_raw_source}}
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_distinct
-- Distinct x values per series in [from_x, to_x): whether a series can be
-- answered with its raw points (the engine asks only for small series).
SELECT
    {{series_groups}},
    uniqExact(if({axis:Int8} = 0, toUnixTimestamp64Micro(metric_time), assumeNotNull(step))) AS distinct_x
FROM metric_points
WHERE name = {name:String}
  AND ({axis:Int8} = 1 OR (metric_time >= fromUnixTimestamp64Micro({from_x:Int64}, 'UTC')
                           AND metric_time < fromUnixTimestamp64Micro({to_x:Int64}, 'UTC')))
  AND ({axis:Int8} = 0 OR (step IS NOT NULL AND assumeNotNull(step) >= {from_x:Int64}
                           AND assumeNotNull(step) < {to_x:Int64}))
  AND {{series_label_filter}}
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_times_at_least
-- A lower bound of each series' distinct times in [from_x, to_x), from the
-- rows of one time tier inside it (the caller's plan reads only tier_a):
-- points in different rows have different times, and a row whose earliest
-- and latest points differ has two. Sematic's rollup=auto asks it for large
-- series (service/_sematic_rollup.py) instead of counting every time.
SELECT g_run_id, g_function_path, g_root_id, g_root_function_path, sum(if(low < high, 2, 1)) AS times_at_least
FROM
(
    SELECT {{series_groups}}, bucket, min(min_x) AS low, max(max_x) AS high
    FROM metric_tiers
    WHERE {{series_tier_where}}
    GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path, bucket
)
GROUP BY g_run_id, g_function_path, g_root_id, g_root_function_path;

-- name: series_points
-- Every raw point of the matching series in [from_x, to_x), for the export.
SELECT
    if({axis:Int8} = 0, toUnixTimestamp64Micro(metric_time), assumeNotNull(step)) AS x,
    toUnixTimestamp64Micro(metric_time) AS metric_time_us,
    step,
    value,
    run_id, function_path, root_id, root_function_path
FROM metric_points
WHERE name = {name:String}
  AND ({axis:Int8} = 1 OR (metric_time >= fromUnixTimestamp64Micro({from_x:Int64}, 'UTC')
                           AND metric_time < fromUnixTimestamp64Micro({to_x:Int64}, 'UTC')))
  AND ({axis:Int8} = 0 OR (step IS NOT NULL AND assumeNotNull(step) >= {from_x:Int64}
                           AND assumeNotNull(step) < {to_x:Int64}))
  AND {{series_label_filter}}
ORDER BY x, metric_time_us, run_id, function_path, root_id, root_function_path, value;
