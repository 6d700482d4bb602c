-- What the UI shows of a task beside its state: its kind (step, loop, iteration, group), the loop
-- item an iteration runs with, its condition and whether it is an exit handler, as JSON.
ALTER TABLE tasks ADD COLUMN shape TEXT;
-- Runs organised: labels given at submit (JSON object), archived runs left out of the list by
-- default, and the scalar metrics a run ended with (JSON object), shown as columns.
ALTER TABLE runs ADD COLUMN labels TEXT;
ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN metrics TEXT;
CREATE INDEX runs_archived ON runs(archived, id);
CREATE INDEX runs_name ON runs(archived, name, id);
-- Sorted by duration (running runs last, as the longest): the run list's expression, indexed.
CREATE INDEX runs_duration ON runs(archived, (coalesce(finished_at, 9223372036854775807) - created_at), id);
-- Lineage: which tasks read an artifact, by its URI, and which made it.
CREATE TABLE artifact_inputs (
    uri      TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    task_idx INTEGER NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (uri, run_id, task_idx, name)
) WITHOUT ROWID;
CREATE INDEX artifact_inputs_run ON artifact_inputs(run_id);
CREATE INDEX artifacts_uri ON artifacts(uri);
