-- metric_catalog: every metric name ever stored and its type. A name has one
-- type for its whole life; the server rejects points of another type with 409.
-- Filled by metric_catalog_mv (definitions/011_metric_catalog_mv.sql).
CREATE TABLE IF NOT EXISTS metric_catalog
(
    name        String                               COMMENT 'Metric name',
    metric_type {{metric_type_enum}}                 COMMENT 'The type of its first point',
    first_seen  SimpleAggregateFunction(min, DateTime64(6, 'UTC')) COMMENT 'Earliest metric_time stored',
    last_seen   SimpleAggregateFunction(max, DateTime64(6, 'UTC')) COMMENT 'Latest metric_time stored'
)
ENGINE = AggregatingMergeTree
ORDER BY (name, metric_type)
COMMENT 'Metric names and their types';
