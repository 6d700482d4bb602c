-- What a worker offers beyond its capacity: its labels (a JSON object of NAME: VALUE, for steps'
-- nodeSelector) and how many GPUs it has.
ALTER TABLE workers ADD COLUMN labels TEXT;
ALTER TABLE workers ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;
