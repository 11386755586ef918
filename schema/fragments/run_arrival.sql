-- run_arrival: the arrival order of a row of run_versions as one UInt64: the
-- ClickHouse server's clock at INSERT in nanoseconds plus the record's
-- position in its request (a later record of one request arrived later).
-- Included by fragments/run_state.sql and the run queries of queries/pipelines.sql.
(toUInt64(toUnixTimestamp64Nano(arrived_at)) + position)
