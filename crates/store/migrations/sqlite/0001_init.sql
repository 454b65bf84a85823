-- hookrelay schema v1: tenancy, auth profiles, subscriptions.
-- Times are Unix milliseconds. Secrets are sealed (see hookrelay_core::secrets).

CREATE TABLE stores (
    store_hash  TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_clients (
    client_id   TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,      -- SHA-256 hex; the token itself is never stored
    role        TEXT NOT NULL,
    store_hash  TEXT REFERENCES stores (store_hash),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE auth_profiles (
    seq              INTEGER PRIMARY KEY,   -- pagination order
    store_hash       TEXT NOT NULL,
    id               TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    kind             TEXT NOT NULL,         -- oauth | basic
    config           BLOB NOT NULL,         -- sealed AuthConfig JSON
    inline_for       TEXT,                  -- subscription id when made from an inline authConfig
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (store_hash, id)
);
CREATE INDEX auth_profiles_owner ON auth_profiles (store_hash, owner_client_id, seq);

CREATE TABLE subscriptions (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    store_hash       TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    style            TEXT NOT NULL,         -- bwp | bc
    event_types      TEXT NOT NULL,         -- JSON array
    destination      TEXT NOT NULL,         -- JSON Destination
    auth_profile_id  TEXT,                  -- copied out of destination for the in-use check
    status           TEXT NOT NULL,         -- ACTIVE | INACTIVE | DEACTIVATED
    signing_secret   BLOB NOT NULL,         -- sealed whsec_...
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX subscriptions_owner ON subscriptions (store_hash, owner_client_id, style, seq);
CREATE INDEX subscriptions_profile ON subscriptions (store_hash, auth_profile_id);

-- One row per (subscription, event type): the duplicate rules of both vendors as a
-- unique key, and the index fan-out will match events against.
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
