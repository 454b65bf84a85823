-- hookrelay schema v4: retention prunes the oldest events (with their deliveries and
-- attempts) first.
CREATE INDEX events_created ON events (created_at);
