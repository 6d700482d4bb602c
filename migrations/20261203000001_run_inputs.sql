-- A run's input artifacts (the pipeline's `artifacts:`), as given when it was submitted: JSON
-- records of name, URI, size and digest; NULL for a run given none.
ALTER TABLE runs ADD COLUMN inputs TEXT;
