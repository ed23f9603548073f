-- Why each history row exists: `ingest` (a turn or a manual add), `api` (a fact deleted
-- through the management API), `expired` (the session's fact TTL) or `capacity` (its cap).
ALTER TABLE fact_history ADD COLUMN reason TEXT;

-- TTL purges and cap evictions look for a session's least recently written facts.
CREATE INDEX facts_by_age ON facts (org_id, session_id, updated_at);
