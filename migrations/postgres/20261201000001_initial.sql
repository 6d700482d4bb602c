-- sluice's tables in PostgreSQL: the same tables and columns as the SQLite schema (migrations/),
-- at its state of 2026-12-01, in PostgreSQL's types. Times are milliseconds since the epoch
-- (BIGINT); JSON is kept as text, as in SQLite, and read as jsonb where SQL looks inside it.

-- Run names are searched by any three characters or more, as SQLite's trigram index does.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE sources (
    digest TEXT PRIMARY KEY,
    yaml   TEXT NOT NULL
);

CREATE TABLE pipelines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE pipeline_versions (
    id          TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
    version     BIGINT NOT NULL,
    digest      TEXT NOT NULL REFERENCES sources(digest),
    created_at  BIGINT NOT NULL,
    UNIQUE (pipeline_id, version)
);
CREATE INDEX pipeline_versions_digest ON pipeline_versions(pipeline_id, digest);

CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    pipeline_name       TEXT NOT NULL,
    pipeline_version_id TEXT REFERENCES pipeline_versions(id),
    pipeline_version    BIGINT,
    digest              TEXT NOT NULL REFERENCES sources(digest),
    params              TEXT NOT NULL,
    state               TEXT NOT NULL,
    error               TEXT,
    end_reason          TEXT,
    created_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    cache               BOOLEAN NOT NULL DEFAULT TRUE,
    outputs             TEXT,
    labels              TEXT,
    archived            BOOLEAN NOT NULL DEFAULT FALSE,
    metrics             TEXT
);
CREATE INDEX runs_state ON runs(state, id);
CREATE INDEX runs_pipeline ON runs(pipeline_name, id);
CREATE INDEX runs_archived ON runs(archived, id);
CREATE INDEX runs_name ON runs(archived, name, id);
CREATE INDEX runs_duration ON runs(archived, (coalesce(finished_at, 9223372036854775807) - created_at), id);
CREATE INDEX runs_name_trigram ON runs USING gin (name gin_trgm_ops);

CREATE TABLE tasks (
    run_id           TEXT NOT NULL REFERENCES runs(id),
    idx              BIGINT NOT NULL,
    name             TEXT NOT NULL,
    image            TEXT NOT NULL,
    depends_on       TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          BIGINT NOT NULL DEFAULT 0,
    lease_id         TEXT,
    worker_id        TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    inputs           TEXT,
    spec             TEXT,
    outputs          TEXT,
    exit_code        INTEGER,
    error            TEXT,
    ready_at         BIGINT,
    started_at       BIGINT,
    finished_at      BIGINT,
    image_digest     TEXT,
    retry_at         BIGINT,
    attempts         TEXT,
    condition_false  BOOLEAN NOT NULL DEFAULT FALSE,
    cached_from      TEXT,
    display_name     TEXT,
    shape            TEXT,
    address          TEXT,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE artifacts (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    task_idx   BIGINT NOT NULL,
    name       TEXT NOT NULL,
    uri        TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    metadata   TEXT,
    kind       TEXT,
    PRIMARY KEY (run_id, task_idx, name)
);
CREATE INDEX artifacts_uri ON artifacts(uri);

CREATE TABLE artifact_inputs (
    uri      TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    task_idx BIGINT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (uri, run_id, task_idx, name)
);
CREATE INDEX artifact_inputs_run ON artifact_inputs(run_id);

CREATE TABLE workers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    capacity        BIGINT NOT NULL,
    registered_at   BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    credential_hash TEXT,
    artifact_root   TEXT,
    labels          TEXT,
    gpus            BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE logs (
    run_id   TEXT NOT NULL,
    task_idx BIGINT NOT NULL,
    attempt  BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    ts       BIGINT NOT NULL,
    stream   TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (run_id, task_idx, attempt, seq)
);

CREATE TABLE cache (
    key          TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    task         TEXT NOT NULL,
    outputs      TEXT NOT NULL,
    artifacts    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (key, image_digest)
);
CREATE INDEX cache_newest ON cache(key, created_at);

CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    pipelines  TEXT,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
