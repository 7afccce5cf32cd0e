-- search's schema: which events the indexer has applied (an event handled twice changes nothing).
CREATE TABLE search.applied_events (
    event_id uuid PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
