-- runs_latest: the state of every run, root and nested, one row per run,
-- computed from all its stored versions (fragments/run_state.sql): a terminal
-- state (RESOLVED, FAILED, NESTED_FAILED, CANCELED) is never replaced by an
-- earlier state of its lifecycle, whatever the arrival order or updated_at
-- ties; between two terminal states or equal ranks the later updated_at wins,
-- then the later arrival. A time the winning version lacks is kept from the
-- version that has it. Right as soon as an INSERT is acknowledged, with
-- no reliance on merges. Root runs (is_root) are pipeline runs; a pipeline is
-- the function_path of its root runs.
-- Example: SELECT future_state, count() FROM runs_latest
--          WHERE is_root AND function_path = 'train.pipeline' GROUP BY future_state;
CREATE VIEW runs_latest AS
WITH chosen_versions AS (SELECT * FROM run_versions)
{{run_state}};
