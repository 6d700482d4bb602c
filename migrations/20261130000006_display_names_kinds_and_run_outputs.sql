-- The name a task is shown by where it differs from its name (a Kubeflow task's display name).
ALTER TABLE tasks ADD COLUMN display_name TEXT;
-- What an artifact holds, as its step declared it (`dataset`, `system.Metrics`, …): the UI
-- shows each kind as its own view.
ALTER TABLE artifacts ADD COLUMN kind TEXT;
-- A run's own outputs (a Kubeflow pipeline's), as JSON, once it has ended.
ALTER TABLE runs ADD COLUMN outputs TEXT;
