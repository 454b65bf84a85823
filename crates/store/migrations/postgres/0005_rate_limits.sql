-- hookrelay PostgreSQL schema v5: rate limits per subscription
-- (docs/delivery.md#rate-limits).
--
-- `rate_limit` is the most requests per second the subscription's deliveries may make,
-- NULL for no limit. The nodes share it through `rate_slots`: for each limited
-- subscription, the time up to which send slots are taken. A node reserves a few slots at
-- a time by moving `taken_until` on by count / rate_limit seconds from itself or from now,
-- whichever is later. The table is UNLOGGED: after a crash it starts empty, which only
-- forgets slots already spent.

ALTER TABLE subscriptions ADD COLUMN rate_limit BIGINT;

CREATE UNLOGGED TABLE rate_slots (
    subscription_id TEXT PRIMARY KEY,
    taken_until TIMESTAMPTZ NOT NULL
);
