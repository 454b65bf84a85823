-- hookrelay PostgreSQL schema v6: master-key rotation (docs/operations.md#rotating-the-master-key).

-- What the database says about the master keys: `sealing` names (by key id) the key new
-- secrets are sealed under, once a rotation set it.
CREATE TABLE keyring (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- The key ids each node holds, as it reported them (comma-separated), so that a rotation
-- starts only once every live node can open what it will seal.
CREATE TABLE node_keys (
    node         TEXT PRIMARY KEY,
    key_ids      TEXT NOT NULL,
    reported_at  BIGINT NOT NULL
);
