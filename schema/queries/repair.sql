-- Named queries of service/_repair.py: set aside a part the embedded engine
-- reports as corrupted, and forget the idempotency keys whose points it held.

-- name: repair_part_level
SELECT level FROM system.parts
WHERE database = {database:String} AND table = {table:String} AND name = {part:String} AND active;

-- name: repair_read_part
SELECT max(cityHash64(*)) FROM {database:Identifier}.{table:Identifier} WHERE _part = {part:String};

-- name: repair_detach_part
ALTER TABLE {database:Identifier}.{table:Identifier} DETACH PART {part:String};

-- name: repair_detached_at
SELECT max(modification_time) FROM system.detached_parts
WHERE database = {database:String} AND table = {table:String} AND name = {part:String};

-- name: repair_forget_batches
DELETE FROM {database:Identifier}.ingest_batches
WHERE inserted_at >= {since:DateTime}
  AND batch_id NOT IN (
      SELECT batch_id FROM {database:Identifier}.metric_points WHERE inserted_at >= {since:DateTime}
  );
