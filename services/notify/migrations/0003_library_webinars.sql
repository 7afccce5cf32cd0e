-- notify's projections of the document library and of webinars, for digests ("new documents
-- and upcoming webinars") and for telling registered members when a webinar moves or is
-- cancelled. As in 0002, `event_id` keeps the id of the last event applied to a row.

-- A folder's audience covers its documents: a folder made private hides its old documents at once.
CREATE TABLE notify.folders (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    audience text[] NOT NULL,
    event_id uuid
);

CREATE TABLE notify.documents (
    id bigint PRIMARY KEY,
    folder_id bigint NOT NULL,
    title text NOT NULL,
    audience text[] NOT NULL,
    uploaded_at timestamptz NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    event_id uuid
);
CREATE INDEX documents_recent ON notify.documents (uploaded_at) WHERE NOT deleted;

-- `announced_at`: when it was scheduled or last moved (digests tell of it again then);
-- `moved_event_id`: the event that last changed its times (the writer tells registered members).
CREATE TABLE notify.webinars (
    id bigint PRIMARY KEY,
    title text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz,
    status text NOT NULL DEFAULT 'scheduled',
    audience text[] NOT NULL,
    announced_at timestamptz NOT NULL,
    moved_event_id uuid,
    event_id uuid
);
CREATE INDEX webinars_upcoming ON notify.webinars (starts_at) WHERE status <> 'cancelled';

-- Who registered (a seat), is waiting, or gave their place up (cancelled).
CREATE TABLE notify.webinar_registrations (
    webinar_id bigint NOT NULL,
    user_id bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('registered', 'waiting', 'cancelled')),
    event_id uuid,
    PRIMARY KEY (webinar_id, user_id)
);
