-- Idempotency keys of run creations (`POST /runs` with `Idempotency-Key`): a client retrying a
-- request whose answer it lost gets the run it already created instead of a second one.
CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
