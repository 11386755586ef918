-- metric_catalog_mv: fills metric_catalog (tables/003) with every metric name,
-- its type and time extent, in the same INSERT as the points.
CREATE MATERIALIZED VIEW metric_catalog_mv TO metric_catalog AS
SELECT name, metric_type, min(metric_time) AS first_seen, max(metric_time) AS last_seen
FROM metric_points
GROUP BY name, metric_type;
