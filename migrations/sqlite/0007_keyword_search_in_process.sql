-- Keyword search is BM25 over the session's rows in memory, the rows the vector search reads
-- (src/store/sqlite/lexical.rs): the FTS5 table is no longer read, so it is no longer kept.
DROP TABLE IF EXISTS facts_fts;
