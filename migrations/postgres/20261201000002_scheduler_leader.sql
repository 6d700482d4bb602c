-- Which server schedules (it holds the advisory lock `sluice scheduler`), and where the others
-- send what only it can do.
CREATE TABLE scheduler_leader (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    server TEXT NOT NULL,
    url    TEXT NOT NULL,
    since  BIGINT NOT NULL
);
