-- Webinars: the monthly events, their registrations and waiting lists.
-- Times are kept in UTC (timestamptz) and shown in Europe/London.
CREATE TABLE forum.webinars (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    chair text NOT NULL DEFAULT '',
    speakers jsonb NOT NULL DEFAULT '[]',
    capacity integer NOT NULL CHECK (capacity > 0),
    themes text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'live', 'finished', 'cancelled')),
    join_url text NOT NULL DEFAULT '',
    organiser_ids bigint[] NOT NULL DEFAULT '{}',
    topic_id bigint REFERENCES forum.topics (id) ON DELETE SET NULL,
    attendance integer CHECK (attendance >= 0),
    recording_url text,
    slides_url text,
    slides_document_id bigint REFERENCES forum.documents (id) ON DELETE SET NULL,
    -- RFC 5545 SEQUENCE: bumped on every change a calendar should pick up.
    sequence integer NOT NULL DEFAULT 0,
    created_by bigint REFERENCES forum.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX webinars_starts_at ON forum.webinars (starts_at);

-- One row per member: a seat (registered) or a place on the waiting list (waiting).
-- Cancelling deletes the row; the waiting list is served in `id` order.
CREATE TABLE forum.webinar_registrations (
    id bigint GENERATED ALWAYS AS IDENTITY,
    webinar_id bigint NOT NULL REFERENCES forum.webinars (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES forum.users (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('registered', 'waiting')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webinar_id, user_id)
);
CREATE INDEX webinar_registrations_queue ON forum.webinar_registrations (webinar_id, status, id);
