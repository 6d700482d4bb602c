-- The UI's search box finds runs whose name contains some text: a trigram index over run names
-- answers that without reading every run (case-insensitively). Kept in step by triggers.
CREATE VIRTUAL TABLE runs_name_trigram USING fts5(
    name, content = 'runs', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO runs_name_trigram (rowid, name) SELECT rowid, name FROM runs;
CREATE TRIGGER runs_name_insert AFTER INSERT ON runs BEGIN
    INSERT INTO runs_name_trigram (rowid, name) VALUES (new.rowid, new.name);
END;
CREATE TRIGGER runs_name_delete AFTER DELETE ON runs BEGIN
    INSERT INTO runs_name_trigram (runs_name_trigram, rowid, name) VALUES ('delete', old.rowid, old.name);
END;
CREATE TRIGGER runs_name_update AFTER UPDATE OF name ON runs BEGIN
    INSERT INTO runs_name_trigram (runs_name_trigram, rowid, name) VALUES ('delete', old.rowid, old.name);
    INSERT INTO runs_name_trigram (rowid, name) VALUES (new.rowid, new.name);
END;
