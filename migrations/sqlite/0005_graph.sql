-- The cognee engine's rows: chunks and summaries of turns, entities and relationships of the
-- session's knowledge graph, each with the vector that makes it an entry point for search.
-- On the embedded store these rows are also the graph itself (edges join entities by key);
-- with a Bolt server configured, the server holds the graph and these rows say what is live.
CREATE TABLE graph_items (
    id           TEXT    PRIMARY KEY,
    org_id       TEXT    NOT NULL,
    session_id   INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('chunk', 'summary', 'entity', 'edge')),
    text         TEXT    NOT NULL,
    entity_key   TEXT,
    entity_type  TEXT,
    source_key   TEXT,
    relation     TEXT,
    target_key   TEXT,
    sentence     TEXT,
    embedding    BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX graph_items_by_kind ON graph_items (org_id, session_id, kind, created_at);
CREATE INDEX graph_entities_by_key ON graph_items (org_id, session_id, entity_key) WHERE kind = 'entity';
CREATE INDEX graph_edges_by_source ON graph_items (org_id, session_id, source_key) WHERE kind = 'edge';
CREATE INDEX graph_edges_by_target ON graph_items (org_id, session_id, target_key) WHERE kind = 'edge';

-- Deletions the graph server still has to carry out. Written in the transaction that deletes
-- the rows above, so the data is invisible at once; the worker retries each until the server
-- confirms it. No foreign key: a purge outlives its session.
CREATE TABLE graph_purges (
    id               INTEGER PRIMARY KEY,
    org_id           TEXT    NOT NULL,
    scope            TEXT    NOT NULL,
    edge_ids         TEXT,
    entity_keys      TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX graph_purges_due ON graph_purges (next_attempt_at);
