-- Facts per session, kept by every write transaction: the search picks exact scan or HNSW by
-- the session's size without counting on the hot path.
ALTER TABLE sessions ADD COLUMN fact_count BIGINT NOT NULL DEFAULT 0;
UPDATE sessions s SET fact_count = (SELECT COUNT(*) FROM facts f WHERE f.org_id = s.org_id AND f.session_id = s.id);
