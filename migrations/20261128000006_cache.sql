-- Cached results: a task's outputs by the hash of everything that decides them (its resolved
-- command, environment, inputs and input artifacts' contents) and the image digest it ran.
CREATE TABLE cache (
    key          TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    task         TEXT NOT NULL,
    outputs      TEXT NOT NULL,
    artifacts    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (key, image_digest)
);
CREATE INDEX cache_newest ON cache(key, created_at);
ALTER TABLE tasks ADD COLUMN cached_from TEXT;
ALTER TABLE runs ADD COLUMN cache INTEGER NOT NULL DEFAULT 1;
