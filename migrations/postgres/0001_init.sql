-- memgate on Postgres + pgvector: the production store, shared by every replica. Every row
-- carries org_id and every query is scoped by it in its WHERE clause.

CREATE EXTENSION IF NOT EXISTS vector;

-- Facts of the store that must not change under it, such as the embedding dimension.
CREATE TABLE memgate_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE sessions (
    id          BIGSERIAL PRIMARY KEY,
    org_id      TEXT   NOT NULL,
    memory_id   TEXT   NOT NULL,
    engine      TEXT   NOT NULL,
    config      JSONB  NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, memory_id)
);
-- The periodic TTL purge looks only at sessions that have one.
CREATE INDEX sessions_with_ttl ON sessions (id) WHERE jsonb_typeof(config->'fact_ttl_seconds') = 'number';

-- `embedding` gets its dimension (vector(N)) from embeddings.dimensions on first start.
CREATE TABLE facts (
    id          TEXT   PRIMARY KEY,
    org_id      TEXT   NOT NULL,
    session_id  BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    text        TEXT   NOT NULL,
    embedding   vector NOT NULL,
    terms       tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- Exact search within a session: the session's rows by this index, then distances.
CREATE INDEX facts_by_session ON facts (org_id, session_id, created_at);
CREATE INDEX facts_by_age ON facts (org_id, session_id, updated_at);
CREATE INDEX facts_terms ON facts USING gin (terms);

CREATE TABLE fact_history (
    id          BIGSERIAL PRIMARY KEY,
    org_id      TEXT   NOT NULL,
    session_id  BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    fact_id     TEXT   NOT NULL,
    event       TEXT   NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_text    TEXT,
    new_text    TEXT,
    reason      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX fact_history_by_session ON fact_history (org_id, session_id, id);

-- Turns waiting for ingestion, claimed by any replica with FOR UPDATE SKIP LOCKED under a
-- lease; a replica that dies mid-ingest leaves its rows to be claimed again.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    idempotency_key  TEXT   NOT NULL UNIQUE,
    org_id           TEXT   NOT NULL,
    session_id       BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    payload          JSONB  NOT NULL,
    state            TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_by_session ON outbox (org_id, session_id, state);

CREATE TABLE usage (
    id                 BIGSERIAL PRIMARY KEY,
    org_id             TEXT    NOT NULL,
    purpose            TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    prompt_tokens      BIGINT  NOT NULL,
    completion_tokens  BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX usage_by_org ON usage (org_id, created_at);
