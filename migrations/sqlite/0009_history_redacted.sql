-- Whether the turn a fact was written from had something redacted (1) or not (0). Which
-- detector matched, or what it matched, is never kept.
ALTER TABLE fact_history ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
