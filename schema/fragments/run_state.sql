-- run_state: the state of every run whose versions are in `chosen_versions`
-- (a WITH name over run_versions that the including view defines), one row
-- per run, computed from its versions alone, so it is right as soon as they
-- are stored. Included by the views runs_latest, pipeline_runs and
-- pipeline_function_runtimes.
--   version   the order in which versions win: the rank of the state first
--             (0 CREATED, 1 SCHEDULED, RAN and RETRYING, 2 the terminal
--             states RESOLVED, FAILED, NESTED_FAILED and CANCELED), then
--             updated_at, then the arrival (fragments/run_arrival.sql). A
--             terminal state is never replaced by an earlier state of its
--             lifecycle, even when every version has the same updated_at
--   the state, updated_at and user_id are the winning version's, and the
--   name the best version's that has one; parent_id, original_run_id and
--   every time are the latest that any version has, so a time the winner
--   lacks is kept from the version that had it
--   id, root_id, function_path and created_at are those of the first version
--   stored (the server refuses a record that changes them; should two
--   workers race past that check, the run still counts once, as first stored)
SELECT
    id, root_id, parent_id, function_path, name, future_state, original_run_id,
    created_at, started_at, resolved_at, failed_at, ended_at, updated_at,
    is_root,
    if(future_state IN ('RESOLVED', 'FAILED', 'NESTED_FAILED') AND original_run_id IS NULL,
       toUInt8(future_state = 'RESOLVED'), NULL)                  AS succeeded,
    if(future_state = 'RESOLVED' AND original_run_id IS NULL,
       dateDiff('microsecond', started_at, resolved_at) / 1e6, NULL) AS run_time_s,
    if(future_state IN ('RESOLVED', 'FAILED', 'NESTED_FAILED') AND original_run_id IS NULL,
       coalesce(if(future_state = 'RESOLVED', resolved_at, failed_at), ended_at, updated_at),
       NULL)                                                      AS outcome_at,
    user_id
FROM
(
    SELECT
        id,
        argMin(v.root_id, arrival)                     AS root_id,
        argMin(v.id = v.root_id, arrival)              AS is_root,
        argMin(toString(v.function_path), arrival)     AS function_path,
        argMin(v.created_at, arrival)                  AS created_at,
        argMax(v.future_state, version)                AS future_state,
        argMax(v.updated_at, version)                  AS updated_at,
        argMax(toString(v.user_id), version)           AS user_id,
        argMaxIf(v.name, version, v.name != '')        AS name,
        max(v.parent_id)                               AS parent_id,
        max(v.original_run_id)                         AS original_run_id,
        max(v.started_at)                              AS started_at,
        max(v.resolved_at)                             AS resolved_at,
        max(v.failed_at)                               AS failed_at,
        max(v.ended_at)                                AS ended_at
    FROM
    (
        -- Speed: one UInt128 (rank, updated_at, arrival) and one UInt64
        -- arrival instead of tuples, and no Nullable or LowCardinality
        -- argument, keep argMax/argMin on their fast paths (several times
        -- faster than tuples or Nullable values).
        SELECT
            *,
            bitShiftLeft(toUInt128(multiIf(CAST(future_state, 'Int8') >= 4, 2, future_state = 'CREATED', 0, 1)), 126)
              + bitShiftLeft(toUInt128(toUnixTimestamp64Micro(updated_at) - ({{min_time_us}})), 64)
              + toUInt128({{run_arrival}})                                      AS version,
            {{run_arrival}}                                                     AS arrival
        FROM chosen_versions
    ) AS v
    GROUP BY id
)
