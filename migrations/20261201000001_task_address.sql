-- Where a daemon step serves (its address on its run's network), once its worker says it is up.
ALTER TABLE tasks ADD COLUMN address TEXT;
