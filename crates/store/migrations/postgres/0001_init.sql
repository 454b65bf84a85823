-- hookrelay PostgreSQL schema v1: the whole of SQLite's v1-v4 in one step.
-- Times are Unix milliseconds and every integer is a BIGINT, as in SQLite, so both
-- backends share their row mapping.
-- Secrets are sealed (see hookrelay_core::secrets).

CREATE TABLE stores (
    store_hash  TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_clients (
    client_id   TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,      -- SHA-256 hex; the token itself is never stored
    role        TEXT NOT NULL,
    store_hash  TEXT REFERENCES stores (store_hash),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE auth_profiles (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- pagination order
    store_hash       TEXT NOT NULL,
    id               TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    kind             TEXT NOT NULL,         -- oauth | basic
    config           BYTEA NOT NULL,        -- sealed AuthConfig JSON
    inline_for       TEXT,                  -- subscription id when made from an inline authConfig
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (store_hash, id)
);
CREATE INDEX auth_profiles_owner ON auth_profiles (store_hash, owner_client_id, seq);

CREATE TABLE subscriptions (
    seq                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                       TEXT NOT NULL UNIQUE,
    store_hash               TEXT NOT NULL,
    owner_client_id          TEXT NOT NULL,
    style                    TEXT NOT NULL,         -- bwp | bc
    event_types              TEXT NOT NULL,         -- JSON array
    destination              TEXT NOT NULL,         -- JSON Destination
    auth_profile_id          TEXT,                  -- copied out of destination for the in-use check
    status                   TEXT NOT NULL,         -- ACTIVE | INACTIVE | DEACTIVATED
    signing_secret           BYTEA NOT NULL,        -- sealed whsec_...
    previous_signing_secret  BYTEA,                 -- sealed, signs until previous_secret_until
    previous_secret_until    BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);
CREATE INDEX subscriptions_owner ON subscriptions (store_hash, owner_client_id, style, seq);
CREATE INDEX subscriptions_profile ON subscriptions (store_hash, auth_profile_id);

-- One row per (subscription, event type): the duplicate rules of both vendors as a
-- unique key, and the index fan-out matches events against.
CREATE TABLE subscription_keys (
    store_hash       TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    style            TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    destination_key  TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    PRIMARY KEY (store_hash, owner_client_id, style, event_type, destination_key)
);
CREATE INDEX subscription_keys_sub ON subscription_keys (subscription_id);
CREATE INDEX subscription_keys_type ON subscription_keys (store_hash, event_type);
CREATE INDEX subscription_keys_destination ON subscription_keys (store_hash, destination_key);

CREATE TABLE event_sources (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    store_hash       TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    aws_account      TEXT NOT NULL,
    name             TEXT NOT NULL,
    source_name      TEXT NOT NULL UNIQUE,  -- aws.partner/{partner}/{store}/{name}
    region           TEXT NOT NULL,
    arn              TEXT NOT NULL,
    subscription_id  TEXT,                  -- set when made by createEventSubscription: owned by it
    created_at       BIGINT NOT NULL
);
CREATE INDEX event_sources_owner ON event_sources (store_hash, owner_client_id, seq);
CREATE INDEX event_sources_arn ON event_sources (store_hash, arn);

CREATE TABLE events (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    store_hash       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    data             TEXT NOT NULL,         -- compact JSON
    resources        TEXT NOT NULL,         -- JSON array of strings
    idempotency_key  TEXT,
    event_time       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (store_hash, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

-- One row per (event, subscription).
--   PENDING    waiting; due_at is when to try next, NULL while parked (subscription not active)
--   IN_FLIGHT  leased to node lease_owner (the lease lasts while the node's heartbeat does)
--   SUCCEEDED, FAILED  final until a retry or replay
CREATE TABLE deliveries (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    event_seq        BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    store_hash       TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt_count    BIGINT NOT NULL DEFAULT 0,    -- every attempt ever made
    round_attempts   BIGINT NOT NULL DEFAULT 0,    -- attempts since the last (re)start
    due_at           BIGINT,
    lease_owner      TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'PENDING' AND due_at IS NOT NULL;
CREATE INDEX deliveries_lease ON deliveries (lease_owner) WHERE status = 'IN_FLIGHT';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, seq);
CREATE INDEX deliveries_store ON deliveries (store_hash, seq);
CREATE INDEX deliveries_event ON deliveries (event_seq);

CREATE TABLE attempts (
    delivery_seq     BIGINT NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    n                BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    response_body    TEXT,
    PRIMARY KEY (delivery_seq, n)
);

-- Delivery nodes and their heartbeats (database time): a node's leases end when its
-- heartbeat stops.
CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    heartbeat_at     BIGINT NOT NULL
);
