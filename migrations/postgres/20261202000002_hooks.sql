-- Webhooks: a delivery to /api/v1/hooks/NAME, verified with the secret named here (GitHub's
-- signature or GitLab's token), starts a run of the pipeline with parameters and labels taken
-- from its payload.
CREATE TABLE hooks (
    name          TEXT PRIMARY KEY,
    pipeline      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secret        TEXT NOT NULL,
    params        TEXT NOT NULL,
    labels        TEXT NOT NULL,
    events        TEXT NOT NULL,
    experiment_id TEXT NOT NULL REFERENCES experiments(id),
    created_at    BIGINT NOT NULL
);

-- Each delivery once: a delivery sent again (a retry, a redelivery) gets the run the first made.
CREATE TABLE hook_deliveries (
    hook        TEXT NOT NULL,
    delivery    TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (hook, delivery)
);
