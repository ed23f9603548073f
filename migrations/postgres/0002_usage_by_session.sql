-- Platform spend per session as well as per org.
ALTER TABLE usage ADD COLUMN memory_id TEXT;
