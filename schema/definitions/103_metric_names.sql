-- metric_names: one row per metric name with its type, point count, time
-- extent and number of runs that logged it.
-- Example: SELECT name, metric_type, points FROM metric_names ORDER BY name;
CREATE VIEW metric_names AS
SELECT
    name,
    any(metric_type)    AS metric_type,
    count()             AS points,
    min(metric_time)    AS first_time,
    max(metric_time)    AS last_time,
    uniq(run_id)        AS runs
FROM metric_points
GROUP BY name;
