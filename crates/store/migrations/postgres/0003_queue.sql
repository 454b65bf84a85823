-- hookrelay PostgreSQL schema v3: the work queue apart from the log rows
-- (docs/operations.md#writes-on-postgresql).
--
-- A delivery's row stays in `deliveries` for as long as the log keeps it; while it is
-- PENDING or IN_FLIGHT it also has a narrow row in `delivery_queue`, which carries the
-- indexes the scheduler needs. `deliveries` then has no index on a column that a status
-- change writes, so those changes are HOT updates (no new index entries), and pages keep
-- room for them (fillfactor). Every statement that changes a delivery's state changes
-- both rows, queue row first, so that the two always agree:
--   queue row present  <=>  status PENDING or IN_FLIGHT
--   lease_owner set    <=>  status IN_FLIGHT (leased to that node)
--   due_at NULL, no lease  <=>  parked (its subscription is not active)

CREATE TABLE delivery_queue (
    delivery_seq     BIGINT PRIMARY KEY,
    subscription_id  TEXT NOT NULL,
    due_at           BIGINT,
    lease_owner      TEXT
);

INSERT INTO delivery_queue (delivery_seq, subscription_id, due_at, lease_owner)
    SELECT seq, subscription_id, due_at, CASE WHEN status = 'IN_FLIGHT' THEN lease_owner END
    FROM deliveries WHERE status IN ('PENDING', 'IN_FLIGHT');

CREATE INDEX delivery_queue_due ON delivery_queue (due_at)
    WHERE lease_owner IS NULL AND due_at IS NOT NULL;
CREATE INDEX delivery_queue_lease ON delivery_queue (lease_owner) WHERE lease_owner IS NOT NULL;
-- Parking and resuming a subscription's deliveries touch only those not in flight, so the
-- deliveries claimed at ingest (the usual case) are never in this index.
CREATE INDEX delivery_queue_subscription ON delivery_queue (subscription_id)
    WHERE lease_owner IS NULL;

DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;

-- Room in each page for a new version of every row in it: the outcomes of deliveries made
-- together are written together, in one statement, so the old versions cannot be pruned
-- before the new ones need the space. Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 50);

-- No foreign keys on the delivery path: each one ran a lookup and took a row lock (itself
-- written to the WAL) for every delivery and every attempt inserted. Deliveries are only
-- ever written with the event of their own transaction, and retention deletes an event's
-- deliveries, attempts and queue rows in the statement that deletes the event.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_seq_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_seq_fkey;
