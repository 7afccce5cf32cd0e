-- The transactional outbox: events written with the change that caused them,
-- published to the Redis stream by the relay (shared/events.py).
CREATE TABLE forum.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON forum.outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON forum.outbox (published_at) WHERE published_at IS NOT NULL;

-- Facts about this installation (for example whether demo data was seeded).
CREATE TABLE forum.meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
