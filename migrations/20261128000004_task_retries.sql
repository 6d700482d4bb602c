-- Retries: when a failed task runs again, and how each of its attempts ended (JSON list).
ALTER TABLE tasks ADD COLUMN retry_at INTEGER;
ALTER TABLE tasks ADD COLUMN attempts TEXT;
