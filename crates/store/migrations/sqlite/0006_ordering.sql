-- hookrelay SQLite schema v6: ordered delivery by key (docs/delivery.md#ordered-delivery).
--
-- A subscription made `ordered` delivers the events of one ordering key one at a time, in
-- the order they were accepted. Its deliveries of an event that has a key carry the key
-- (`deliveries.ordering_key`, NULL on every other delivery) and a place in their key's
-- line (`position`). Among the open (PENDING or IN_FLIGHT) deliveries of one subscription
-- and key, the one with the lowest position is the head, which is delivered like any other;
-- the others are `waiting`: PENDING, not due, never claimed. When the head ends, the next
-- in line becomes the head. A delivery that enters a key's line (at ingest, or again by a
-- retry or replay) takes the position after the last one open, so the head is always the
-- lowest.

ALTER TABLE subscriptions ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN ordering_key TEXT;
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
ALTER TABLE deliveries ADD COLUMN position INTEGER;
ALTER TABLE deliveries ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;

CREATE INDEX deliveries_ordering ON deliveries (subscription_id, ordering_key, position)
    WHERE ordering_key IS NOT NULL AND status IN ('PENDING', 'IN_FLIGHT');
