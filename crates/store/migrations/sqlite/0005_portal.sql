-- The portal (docs/portal.md): single-use links and the sessions they open. Only SHA-256
-- hashes of their secrets are stored. role/store_hash/client_id say whom a session acts
-- for: a client (client_id set: that API client, while it is not revoked), a store's
-- administrator, or the operator.
CREATE TABLE portal_links (
    link_hash    TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    store_hash   TEXT,
    client_id    TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

CREATE TABLE portal_sessions (
    session_hash TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    store_hash   TEXT,
    client_id    TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

-- The operator console's deliveries-per-minute chart reads the last hour of attempts.
CREATE INDEX attempts_started ON attempts (started_at);
