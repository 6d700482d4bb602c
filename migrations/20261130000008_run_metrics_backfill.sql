-- Runs that ended before runs kept their metrics get them from what is stored: each succeeded
-- step's numeric output parameters, `STEP.NAME` (a Kubeflow metrics artifact's scalars were not
-- kept in a form SQL reads, so those come only with new runs).
UPDATE runs SET metrics = (
    SELECT json_group_object(t.name || '.' || o.key, o.value)
    FROM tasks t, json_each(t.outputs) o
    WHERE t.run_id = runs.id AND t.state = 'succeeded' AND o.type IN ('integer', 'real')
)
WHERE metrics IS NULL AND state IN ('succeeded', 'failed', 'cancelled')
  AND EXISTS (
    SELECT 1 FROM tasks t, json_each(t.outputs) o
    WHERE t.run_id = runs.id AND t.state = 'succeeded' AND o.type IN ('integer', 'real')
  );
