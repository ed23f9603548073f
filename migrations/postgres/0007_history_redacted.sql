-- Whether the turn a fact was written from had something redacted (1) or not (0). Which
-- detector matched, or what it matched, is never kept. An integer rather than a boolean, so
-- that both stores read the column with the same row mapper.
ALTER TABLE fact_history ADD COLUMN redacted BIGINT NOT NULL DEFAULT 0;
