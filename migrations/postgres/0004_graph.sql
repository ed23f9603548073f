-- The cognee engine's rows: chunks and summaries of turns, entities and relationships of the
-- session's knowledge graph, each with the vector that makes it an entry point for search.
-- Without a Bolt server these rows are also the graph (edges join entities by key); with
-- one, the server holds the graph and these rows say what is live. Searched exactly within
-- one session, so the vector column needs no fixed dimension; memgate_meta already pins the
-- embedding model.
CREATE TABLE graph_items (
    id           TEXT   PRIMARY KEY,
    org_id       TEXT   NOT NULL,
    session_id   BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL CHECK (kind IN ('chunk', 'summary', 'entity', 'edge')),
    text         TEXT   NOT NULL,
    entity_key   TEXT,
    entity_type  TEXT,
    source_key   TEXT,
    relation     TEXT,
    target_key   TEXT,
    sentence     TEXT,
    embedding    vector NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX graph_items_by_kind ON graph_items (org_id, session_id, kind, created_at);
CREATE INDEX graph_entities_by_key ON graph_items (org_id, session_id, entity_key) WHERE kind = 'entity';
CREATE INDEX graph_edges_by_source ON graph_items (org_id, session_id, source_key) WHERE kind = 'edge';
CREATE INDEX graph_edges_by_target ON graph_items (org_id, session_id, target_key) WHERE kind = 'edge';

-- Deletions the graph server still has to carry out. Written in the transaction that deletes
-- the rows above, so the data is invisible at once; a worker retries each until the server
-- confirms it. No foreign key: a purge outlives its session.
CREATE TABLE graph_purges (
    id               BIGSERIAL PRIMARY KEY,
    org_id           TEXT   NOT NULL,
    scope            TEXT   NOT NULL,
    edge_ids         JSONB,
    entity_keys      JSONB,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX graph_purges_due ON graph_purges (next_attempt_at);
