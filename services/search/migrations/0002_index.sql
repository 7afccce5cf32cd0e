-- The search index: one row per topic, post or document comment, written only by the
-- search service's consumer group (services/search/indexer.py) and by `tica search reindex`.

-- The document's tsvector: its words (title weight A, body weight D, English stemming) and
-- "facet" lexemes for kind, author, category, audience and time buckets, so that filters
-- and recency windows are answered by the GIN index instead of by reading rows. A facet
-- lexeme contains a space, which the text-search parser never puts in a token: no words
-- typed by anyone can produce or match one. Time buckets: level L groups 4^L days (0..7).
-- The text is plain text, not HTML: < and > become look-alikes the parser treats as spaces,
-- or it would take "<x ...>" for a tag and skip the words in it (and all of a "<script>").
-- Declared IMMUTABLE (for the generated column): extract(epoch ...) does not depend on
-- the time zone, which is why PostgreSQL marks it merely stable. PL/pgSQL, because it keeps
-- its plans for the session: a SQL function here is planned again for every INSERT.
CREATE FUNCTION search.document_vector(kind text, title text, body text, author_id bigint, category_id bigint,
                                       audience text[], created_at timestamptz)
RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    day bigint := floor(extract(epoch FROM created_at) / 86400);  -- days since 1970-01-01, UTC
BEGIN
    RETURN setweight(to_tsvector('english'::regconfig,
                                 translate(CASE WHEN kind = 'topic' THEN title ELSE '' END, '<>', '‹›')), 'A')
        || setweight(to_tsvector('english'::regconfig, translate(body, '<>', '‹›')), 'D')
        || array_to_tsvector(
               ARRAY['@ kind:' || kind, '@ author:' || coalesce(author_id, 0), '@ category:' || coalesce(category_id, 0),
                     '@ days0:' || day, '@ days1:' || (day >> 2), '@ days2:' || (day >> 4), '@ days3:' || (day >> 6),
                     '@ days4:' || (day >> 8), '@ days5:' || (day >> 10), '@ days6:' || (day >> 12),
                     '@ days7:' || (day >> 14)]
               || ARRAY(SELECT '@ audience:' || a FROM unnest(audience) AS a WHERE a IS NOT NULL));
END
$$;

CREATE TABLE search.documents (
    kind text NOT NULL CHECK (kind IN ('topic', 'post', 'document_comment')),
    id bigint NOT NULL,
    topic_id bigint,              -- a post's topic; a topic's own id
    post_number integer,
    category_id bigint,
    author_id bigint,
    title text NOT NULL DEFAULT '',  -- a topic's title; for a post, its topic's title (shown, not searched)
    slug text NOT NULL DEFAULT '',
    body text NOT NULL DEFAULT '',   -- plain text; emptied when the post is deleted
    content_note text,
    topic_kind text,                  -- discussion, blog, case_study, narrative
    audience text[] NOT NULL DEFAULT '{}',  -- ["public"] or ["group:3", ...]; staff see everything
    status text NOT NULL CHECK (status IN ('visible', 'hidden', 'deleted')),
    created_at timestamptz NOT NULL,
    -- The id (a UUIDv7, so time-ordered) of the last event applied to each group of fields:
    -- an older event arriving late, or delivered again, changes nothing.
    content_version uuid,
    status_version uuid,
    placement_version uuid,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    tsv tsvector GENERATED ALWAYS AS (
        search.document_vector(kind, title, body, author_id, category_id, audience, created_at)) STORED,
    CONSTRAINT documents_pkey PRIMARY KEY (kind, id)
);
-- Keep the vector in the row (the body goes to TOAST first): the search reads vectors, not bodies.
ALTER TABLE search.documents ALTER COLUMN tsv SET STORAGE MAIN;
CREATE INDEX documents_tsv ON search.documents USING gin (tsv) WHERE status = 'visible';
CREATE INDEX documents_topic ON search.documents (topic_id) WHERE topic_id IS NOT NULL;
CREATE INDEX documents_category ON search.documents (category_id);

-- Categories (for #slug and the filter list) and authors (for @username and display), from events.
CREATE TABLE search.categories (
    category_id bigint PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL,
    audience text[] NOT NULL DEFAULT '{public}',
    version uuid
);
CREATE INDEX categories_slug ON search.categories (lower(slug));

CREATE TABLE search.users (
    user_id bigint PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    version uuid
);
CREATE INDEX users_username ON search.users (lower(username));

-- A rebuild in progress (`tica search reindex`): while state = 'building', the indexer also
-- records every event it applies in the journal, replayed onto the new tables before the swap.
-- Indexer transactions hold this row FOR SHARE; a rebuild locks it FOR UPDATE to start and to swap.
CREATE TABLE search.rebuild (
    id integer PRIMARY KEY CHECK (id = 1),
    state text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'building')),
    suffix text,
    started_at timestamptz,
    finished_at timestamptz
);
INSERT INTO search.rebuild (id) VALUES (1);

CREATE TABLE search.rebuild_journal (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    envelope jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX applied_events_applied_at ON search.applied_events (applied_at);
