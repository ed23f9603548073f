-- memgate on the embedded store. Every row carries org_id so that every query can be scoped
-- by org in its WHERE clause.

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT    NOT NULL,
    memory_id   TEXT    NOT NULL,
    engine      TEXT    NOT NULL,
    config      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (org_id, memory_id)
);

CREATE TABLE facts (
    id          TEXT    PRIMARY KEY,
    org_id      TEXT    NOT NULL,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    text        TEXT    NOT NULL,
    embedding   BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX facts_by_session ON facts (org_id, session_id, created_at);

-- Keyword search; kept in step with `facts` by the store in the same transaction.
CREATE VIRTUAL TABLE facts_fts USING fts5 (
    text,
    fact_id    UNINDEXED,
    session_id UNINDEXED,
    tokenize = 'porter unicode61'
);

CREATE TABLE fact_history (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT    NOT NULL,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    fact_id     TEXT    NOT NULL,
    event       TEXT    NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_text    TEXT,
    new_text    TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX fact_history_by_session ON fact_history (org_id, session_id, id);

-- Turns waiting for ingestion. Written before the request's task ends; a worker claims rows
-- under a lease, so a crash mid-ingest only delays a turn.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    org_id           TEXT    NOT NULL,
    session_id       INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE usage (
    id                 INTEGER PRIMARY KEY,
    org_id             TEXT    NOT NULL,
    purpose            TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE INDEX usage_by_org ON usage (org_id, created_at);
