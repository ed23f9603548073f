-- Who did the work: the gateway (platform spend) or memgate's own local embedding model.
ALTER TABLE usage ADD COLUMN provider TEXT NOT NULL DEFAULT 'gateway';
