-- What a step said of each artifact it produced (a Kubeflow artifact's metadata: logged metrics,
-- a dataset's schema, …), as JSON; NULL where it said nothing.
ALTER TABLE artifacts ADD COLUMN metadata TEXT;
