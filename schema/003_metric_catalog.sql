-- metric_catalog: every metric name ever stored and its type. A name has one
-- type for its whole life; the server rejects points of another type with 409.
CREATE TABLE IF NOT EXISTS metric_catalog
(
    name        String                               COMMENT 'Metric name',
    metric_type Enum8('COUNT' = 0, 'GAUGE' = 1)      COMMENT 'The type of its first point',
    first_seen  SimpleAggregateFunction(min, DateTime64(6, 'UTC')) COMMENT 'Earliest metric_time stored',
    last_seen   SimpleAggregateFunction(max, DateTime64(6, 'UTC')) COMMENT 'Latest metric_time stored'
)
ENGINE = AggregatingMergeTree
ORDER BY (name, metric_type)
COMMENT 'Metric names and their types';

CREATE MATERIALIZED VIEW IF NOT EXISTS metric_catalog_mv TO metric_catalog AS
SELECT name, metric_type, min(metric_time) AS first_seen, max(metric_time) AS last_seen
FROM metric_points
GROUP BY name, metric_type;
