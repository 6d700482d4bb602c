-- A task's launch names its network (`"network": "none" | "host"`) instead of a flag
-- (`"host_network": bool`).
UPDATE tasks
SET spec = json_set(
    json_remove(spec, '$.host_network'),
    '$.network',
    CASE WHEN json_extract(spec, '$.host_network') THEN 'host' ELSE 'none' END)
WHERE spec IS NOT NULL AND json_valid(spec) AND json_type(spec, '$.host_network') IS NOT NULL;

-- Why a run ended (or is ending): `tasks` (its tasks did), `cancelled`, `timed_out`, `unreadable`
-- (its stored rows no longer read back). Before this column a timeout was known only by the
-- words of the run's error.
ALTER TABLE runs ADD COLUMN end_reason TEXT;
UPDATE runs SET end_reason = 'timed_out'
WHERE state IN ('cancelling', 'failed') AND error LIKE 'the run timed out%';
UPDATE runs SET end_reason = 'cancelled'
WHERE end_reason IS NULL AND state IN ('cancelling', 'cancelled');
UPDATE runs SET end_reason = 'tasks'
WHERE end_reason IS NULL AND state IN ('succeeded', 'failed');
