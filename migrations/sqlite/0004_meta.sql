-- Facts of the store that must not change under it, such as the embedding model.
CREATE TABLE memgate_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
