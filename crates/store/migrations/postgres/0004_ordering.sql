-- hookrelay PostgreSQL schema v4: ordered delivery by key
-- (docs/delivery.md#ordered-delivery).
--
-- A subscription made `ordered` delivers the events of one ordering key one at a time, in
-- the order they were accepted. Its deliveries of an event that has a key carry the key
-- (`deliveries.ordering_key`, NULL on every other delivery). While open, their queue row
-- has the key too and a place in the key's line (`position`). Among the queue rows of one
-- subscription and key, the one with the lowest position is the head, which is delivered
-- like any other; the others are `waiting`: not due, never claimed. When the head ends, the
-- next in line becomes the head. A delivery that enters a key's line (at ingest, or again
-- by a retry or replay) takes the position after the last one open, so the head is always
-- the lowest. Every statement that adds to a line or moves it on first takes the key's
-- advisory lock, so that nodes writing at once agree on the line.

ALTER TABLE subscriptions ADD COLUMN ordered BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE events ADD COLUMN ordering_key TEXT;
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
ALTER TABLE delivery_queue ADD COLUMN ordering_key TEXT;
ALTER TABLE delivery_queue ADD COLUMN position BIGINT;
ALTER TABLE delivery_queue ADD COLUMN waiting BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX delivery_queue_ordering ON delivery_queue (subscription_id, ordering_key, position)
    WHERE ordering_key IS NOT NULL;
