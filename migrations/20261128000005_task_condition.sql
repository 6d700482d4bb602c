-- A task skipped because its condition was false (not because something upstream failed).
ALTER TABLE tasks ADD COLUMN condition_false INTEGER NOT NULL DEFAULT 0;
