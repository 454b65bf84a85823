-- hookrelay schema v3: Amazon EventBridge partner event sources.
-- Times are Unix milliseconds.

CREATE TABLE event_sources (
    seq              INTEGER PRIMARY KEY,   -- pagination order
    id               TEXT NOT NULL UNIQUE,
    store_hash       TEXT NOT NULL,
    owner_client_id  TEXT NOT NULL,
    aws_account      TEXT NOT NULL,         -- the customer's account the source was made for
    name             TEXT NOT NULL,         -- as given, lower-cased
    source_name      TEXT NOT NULL UNIQUE,  -- aws.partner/{partner}/{store}/{name}
    region           TEXT NOT NULL,
    arn              TEXT NOT NULL,         -- as AWS answered
    subscription_id  TEXT,                  -- set when made by createEventSubscription: owned by it
    created_at       INTEGER NOT NULL
);
CREATE INDEX event_sources_owner ON event_sources (store_hash, owner_client_id, seq);
CREATE INDEX event_sources_arn ON event_sources (store_hash, arn);

-- Which subscriptions deliver to a destination (an event source may not be deleted while
-- one does).
CREATE INDEX subscription_keys_destination ON subscription_keys (store_hash, destination_key);
