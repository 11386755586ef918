-- tier_rollup_head / tier_rollup_tail: the aggregation of metric points into
-- every tier (tables/005_metric_tiers.sql), written once. Between the two
-- goes the end of the innermost SELECT over metric_points: the origin and
-- axis_only columns, FROM metric_points and its WHERE. Two stages keep it
-- cheap: points are first aggregated per series, minute and hundred steps
-- (the finest tiers), then each of those rows is rolled up into every tier of
-- its axis (ARRAY JOIN over the tier list; coarser widths are multiples of
-- the finest). The tier widths are written here and in service/_tiers.py (a
-- test checks they agree). origin: 0 at insert, the partition (YYYYMM) for
-- backfilled points; axis_only: -1 every tier, 0 or 1 the time or step tiers.
SELECT
    name,
    CAST(tier.1, 'Enum8(\'time\' = 0, \'step\' = 1)')          AS axis,
    tier.2                                                  AS width,
    root_function_path,
    run_id,
    if(tier.1 = 0, minute_us, assumeNotNull(step100))
      - positiveModulo(if(tier.1 = 0, minute_us, assumeNotNull(step100)), tier.2) AS bucket,
    root_id,
    function_path,
    scope,
    user_id,
    labels_hash,
    origin,
    any(labels_any)                                         AS labels,
    sum(n)                                                  AS points,
    sum(f)                                                  AS finite,
    sumKahanMergeState(s)                                   AS total,
    min(lo)                                                 AS low,
    max(hi)                                                 AS high,
    arrayMap(k -> (
        reinterpretAsInt64(bitXor(toUInt64(bitShiftRight(k, 128)), toUInt64(9223372036854775808))),
        reinterpretAsInt64(bitXor(toUInt64(bitAnd(bitShiftRight(k, 64), toUInt256(18446744073709551615))),
                                  toUInt64(9223372036854775808))),
        reinterpretAsFloat64(if(bitTest(toUInt64(bitAnd(k, toUInt256(18446744073709551615))), 63),
                                bitXor(toUInt64(bitAnd(k, toUInt256(18446744073709551615))), toUInt64(9223372036854775808)),
                                bitNot(toUInt64(bitAnd(k, toUInt256(18446744073709551615))))))),
        [min(if(tier.1 = 0, first_t, first_s))])[1] AS first,
    arrayMap(k -> (
        reinterpretAsInt64(bitXor(toUInt64(bitShiftRight(k, 128)), toUInt64(9223372036854775808))),
        reinterpretAsInt64(bitXor(toUInt64(bitAnd(bitShiftRight(k, 64), toUInt256(18446744073709551615))),
                                  toUInt64(9223372036854775808))),
        reinterpretAsFloat64(if(bitTest(toUInt64(bitAnd(k, toUInt256(18446744073709551615))), 63),
                                bitXor(toUInt64(bitAnd(k, toUInt256(18446744073709551615))), toUInt64(9223372036854775808)),
                                bitNot(toUInt64(bitAnd(k, toUInt256(18446744073709551615))))))),
        [max(if(tier.1 = 0, last_t, last_s))])[1] AS last,
    min(if(tier.1 = 0, min_t, min_s))                       AS min_x,
    max(if(tier.1 = 0, max_t, max_s))                       AS max_x,
    max(seen)                                               AS last_seen
FROM
(
    SELECT
        name, root_function_path, run_id, root_id, function_path, scope, user_id, origin, axis_only,
        cityHash64(labels)                                   AS labels_hash,
        any(labels)                                          AS labels_any,
        minute_us,
        step100,
        count()                                              AS n,
        countIf(isFinite(value))                             AS f,
        sumKahanStateIf(value, isFinite(value))              AS s,
        min(if(isFinite(value), value, inf))                 AS lo,
        max(if(isFinite(value), value, -inf))                AS hi,
        -- first / last as order keys (fragments/series_order_key.sql): a
        -- numeric min / max per point, decoded into the stored tuple above.
        min(if(isFinite(value), key_t, toUInt256(-1)))       AS first_t,
        max(if(isFinite(value), key_t, toUInt256(0)))        AS last_t,
        min(if(isFinite(value) AND step IS NOT NULL, key_s, toUInt256(-1))) AS first_s,
        max(if(isFinite(value) AND step IS NOT NULL, key_s, toUInt256(0)))  AS last_s,
        min(t_us)                                            AS min_t,
        max(t_us)                                            AS max_t,
        min(assumeNotNull(step))                             AS min_s,
        max(assumeNotNull(step))                             AS max_s,
        max(toDateTime(metric_time))                         AS seen
    FROM
    (
        SELECT *, toUnixTimestamp64Micro(metric_time) AS t_us,
               t_us - positiveModulo(t_us, 60000000) AS minute_us,
               step - positiveModulo(step, 100) AS step100,
               toInt64(0) AS kx, t_us AS kt, value AS kv,
               {{series_order_key}} AS key_t,
               bitShiftLeft(toUInt256(bitXor(reinterpretAsUInt64(assumeNotNull(step)), toUInt64(9223372036854775808))), 128)
                 + bitAnd(key_t, toUInt256('340282366920938463463374607431768211455')) AS key_s,
