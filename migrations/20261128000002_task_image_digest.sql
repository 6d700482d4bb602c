-- The resolved digest of the image each task ran (what a tag pointed at, at that moment).
ALTER TABLE tasks ADD COLUMN image_digest TEXT;
