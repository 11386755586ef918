-- series_order_key: a point's (kx, kt, kv) as one UInt256 whose order is
-- the lexicographic order of (x, metric_time_us, value): first and last are
-- argMin / argMax over it (a numeric key is far cheaper than a tuple). Signed
-- integers are flipped into unsigned order, the float's bits into the order
-- of its value. The columns or lambda arguments kx, kt (Int64) and kv
-- (Float64) must be in scope.
(bitShiftLeft(toUInt256(bitXor(reinterpretAsUInt64(kx), toUInt64(9223372036854775808))), 128)
 + bitShiftLeft(toUInt256(bitXor(reinterpretAsUInt64(kt), toUInt64(9223372036854775808))), 64)
 + toUInt256(if(bitTest(reinterpretAsUInt64(kv), 63), bitNot(reinterpretAsUInt64(kv)),
                bitOr(reinterpretAsUInt64(kv), toUInt64(9223372036854775808)))))
