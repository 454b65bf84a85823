-- hookrelay schema v2: events, deliveries, attempts, node leases, signing-secret rotation.
-- Times are Unix milliseconds.

ALTER TABLE subscriptions ADD COLUMN previous_signing_secret BLOB;   -- sealed, signs until ..._until
ALTER TABLE subscriptions ADD COLUMN previous_secret_until INTEGER;

CREATE TABLE events (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    store_hash       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    data             TEXT NOT NULL,         -- compact JSON
    resources        TEXT NOT NULL,         -- JSON array of strings
    idempotency_key  TEXT,
    event_time       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (store_hash, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One row per (event, subscription).
--   PENDING    waiting; due_at is when to try next, NULL while parked (subscription not active)
--   IN_FLIGHT  claimed by node lease_owner (its lease lasts while the node's heartbeat does)
--   SUCCEEDED, FAILED  final until a retry or replay
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    event_seq        INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    store_hash       TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt_count    INTEGER NOT NULL DEFAULT 0,   -- every attempt ever made
    round_attempts   INTEGER NOT NULL DEFAULT 0,   -- attempts since the last (re)start: indexes the retry schedule
    due_at           INTEGER,
    lease_owner      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'PENDING' AND due_at IS NOT NULL;
CREATE INDEX deliveries_lease ON deliveries (lease_owner) WHERE status = 'IN_FLIGHT';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, seq);
CREATE INDEX deliveries_store ON deliveries (store_hash, seq);
CREATE INDEX deliveries_event ON deliveries (event_seq);

CREATE TABLE attempts (
    delivery_seq     INTEGER NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    n                INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_body    TEXT,
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;

-- Delivery nodes and their heartbeats: a node's leases end when its heartbeat stops.
CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    heartbeat_at     INTEGER NOT NULL
);
