-- What became of each settled turn, for `GET /memory/turns/{turn_id}`: stored (with the facts
-- it added, updated or deleted) or dropped (with why). Kept apart from the outbox, whose rows
-- go with their session and are purged once ingested, and with no key to the session, so a
-- receipt outlives both for as long as ingested outbox rows are kept.
CREATE TABLE turn_receipts (
    turn_id     TEXT    PRIMARY KEY,
    org_id      TEXT    NOT NULL,
    memory_id   TEXT    NOT NULL,
    -- {"state": "stored", "facts": {"added", "updated", "deleted"}} or {"state": "dropped", "reason"}
    outcome     TEXT    NOT NULL,
    settled_at  INTEGER NOT NULL
);
CREATE INDEX turn_receipts_by_age ON turn_receipts (settled_at);
