-- Experiments group runs; every run belongs to one (`Default` unless it names another).
CREATE TABLE experiments (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL,
    archived    BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO experiments (id, name, description, created_at)
    VALUES ('00000000-0000-7000-8000-000000000001', 'Default', 'Runs that name no other experiment',
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

ALTER TABLE runs ADD COLUMN experiment_id TEXT NOT NULL DEFAULT '00000000-0000-7000-8000-000000000001';
-- The schedule that fired a run, and the due time it fired for: one run per due time, ever.
ALTER TABLE runs ADD COLUMN schedule_id TEXT;
ALTER TABLE runs ADD COLUMN scheduled_at INTEGER;
-- An experiment's runs newest first, and runs by exact name or in name order, archived or
-- not (Kubeflow's lists take both unless filtered).
CREATE INDEX runs_experiment ON runs(experiment_id, id);
CREATE INDEX runs_by_name ON runs(name, id);
CREATE UNIQUE INDEX runs_schedule ON runs(schedule_id, scheduled_at);

-- Recurring runs: what to run (the latest version of a pipeline, one version, or a file), when
-- (a cron expression in a time zone, or an interval), and how (catch-up, concurrency).
CREATE TABLE schedules (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    description         TEXT,
    experiment_id       TEXT NOT NULL REFERENCES experiments(id),
    pipeline_id         TEXT REFERENCES pipelines(id),
    pipeline_version_id TEXT REFERENCES pipeline_versions(id),
    digest              TEXT REFERENCES sources(digest),
    params              TEXT NOT NULL,
    labels              TEXT,
    cron                TEXT,
    timezone            TEXT,
    interval_s          INTEGER,
    start_at            INTEGER,
    end_at              INTEGER,
    catchup             BOOLEAN NOT NULL,
    max_concurrency     INTEGER NOT NULL,
    enabled             BOOLEAN NOT NULL,
    cache               BOOLEAN NOT NULL DEFAULT TRUE,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    -- The due time of its last firing, and of its next.
    last_fired_at       INTEGER,
    next_at             INTEGER,
    -- Due times before it are passed over (it was paused until then).
    resumed_at          INTEGER,
    last_error          TEXT
);
CREATE INDEX schedules_due ON schedules(enabled, next_at);

-- A version's name, as Kubeflow's client gives it (`v1`, `v2` … when none was given).
ALTER TABLE pipeline_versions ADD COLUMN name TEXT;
