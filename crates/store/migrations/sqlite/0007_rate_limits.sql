-- hookrelay SQLite schema v7: rate limits per subscription (docs/delivery.md#rate-limits).
--
-- `rate_limit` is the most requests per second the subscription's deliveries may make,
-- NULL for no limit. The one node of a SQLite database keeps the slots it has taken in
-- memory.

ALTER TABLE subscriptions ADD COLUMN rate_limit INTEGER;
