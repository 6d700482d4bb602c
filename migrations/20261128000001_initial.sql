-- sluice's initial schema. Times are milliseconds since the Unix epoch.

-- Pipeline files, content-addressed: versions and inline runs refer to them by digest.
CREATE TABLE sources (
    digest TEXT PRIMARY KEY,
    yaml   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE pipelines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Immutable: a new upload with different bytes makes a new version.
CREATE TABLE pipeline_versions (
    id          TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
    version     INTEGER NOT NULL,
    digest      TEXT NOT NULL REFERENCES sources(digest),
    created_at  INTEGER NOT NULL,
    UNIQUE (pipeline_id, version)
);
CREATE INDEX pipeline_versions_digest ON pipeline_versions(pipeline_id, digest);

-- Run ids are UUIDv7, so ordering by id is ordering by creation time.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    pipeline_name       TEXT NOT NULL,
    pipeline_version_id TEXT REFERENCES pipeline_versions(id),
    pipeline_version    INTEGER,
    digest              TEXT NOT NULL REFERENCES sources(digest),
    params              TEXT NOT NULL,
    state               TEXT NOT NULL,
    error               TEXT,
    created_at          INTEGER NOT NULL,
    finished_at         INTEGER
);
CREATE INDEX runs_state ON runs(state, id);
CREATE INDEX runs_pipeline ON runs(pipeline_name, id);

CREATE TABLE tasks (
    run_id           TEXT NOT NULL REFERENCES runs(id),
    idx              INTEGER NOT NULL,
    name             TEXT NOT NULL,
    image            TEXT NOT NULL,
    depends_on       TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_id         TEXT,
    worker_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    inputs           TEXT,
    spec             TEXT,
    outputs          TEXT,
    exit_code        INTEGER,
    error            TEXT,
    ready_at         INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    task_idx   INTEGER NOT NULL,
    name       TEXT NOT NULL,
    uri        TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, task_idx, name)
) WITHOUT ROWID;

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    capacity      INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);

-- One row per line; `seq` is numbered by the worker per attempt, so resent lines are stored once.
CREATE TABLE logs (
    run_id   TEXT NOT NULL,
    task_idx INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    stream   TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (run_id, task_idx, attempt, seq)
) WITHOUT ROWID;
