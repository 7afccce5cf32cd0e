-- notify's own projections of the forum's events (it never reads forum tables), and
-- what notify owns: notifications, watch levels, preferences and digest state.
-- `*_event_id` columns keep the id (a UUIDv7, so time ordered) of the last event
-- applied to a row: an older event handled late never overwrites a newer one.

CREATE TABLE notify.users (
    id bigint PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    email text,
    email_verified boolean NOT NULL DEFAULT false,
    roles text[] NOT NULL DEFAULT '{member}',
    group_ids bigint[] NOT NULL DEFAULT '{}',
    suspended_until timestamptz,
    silenced_until timestamptz,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    event_id uuid
);
CREATE INDEX users_username ON notify.users (lower(username));

CREATE TABLE notify.categories (
    id bigint PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL,
    audience text[] NOT NULL,
    event_id uuid
);

CREATE TABLE notify.topics (
    id bigint PRIMARY KEY,
    category_id bigint NOT NULL,
    title text NOT NULL,
    slug text NOT NULL,
    kind text NOT NULL DEFAULT 'discussion',
    author_id bigint,
    audience text[] NOT NULL,
    content_note text,
    created_at timestamptz NOT NULL,
    event_id uuid
);
CREATE INDEX topics_author ON notify.topics (author_id);
CREATE INDEX topics_category ON notify.topics (category_id);

-- Enough of each post for notification mails and digests: an excerpt, or its content note.
CREATE TABLE notify.posts (
    id bigint PRIMARY KEY,
    topic_id bigint NOT NULL,
    post_number integer NOT NULL,
    author_id bigint NOT NULL,
    author_username text NOT NULL,
    excerpt text NOT NULL,
    content_note text,
    reply_to_user_id bigint,
    status text NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'hidden', 'deleted')),
    created_at timestamptz NOT NULL,
    content_event_id uuid,
    status_event_id uuid
);
CREATE INDEX posts_recent ON notify.posts (created_at, topic_id) WHERE status = 'visible';
CREATE INDEX posts_topic ON notify.posts (topic_id, created_at);

CREATE TABLE notify.reactions (
    post_id bigint NOT NULL,
    user_id bigint NOT NULL,
    kind text NOT NULL,
    active boolean NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    event_id uuid NOT NULL,
    PRIMARY KEY (post_id, user_id, kind)
);

-- Members a member muted (no notifications from them) or ignored (also left out of digests).
CREATE TABLE notify.mutes (
    user_id bigint NOT NULL,
    muted_user_id bigint NOT NULL,
    level text NOT NULL CHECK (level IN ('muted', 'ignored', 'none')),
    event_id uuid NOT NULL,
    PRIMARY KEY (user_id, muted_user_id)
);

-- Watch levels as Discourse means them: watching (every new post), tracking and
-- normal (mentions, replies, quotes), muted (nothing at all). A topic's level
-- overrides its category's. `reason` says how it was set: chosen, created, posted.
CREATE TABLE notify.watches (
    user_id bigint NOT NULL,
    target_kind text NOT NULL CHECK (target_kind IN ('topic', 'category')),
    target_id bigint NOT NULL,
    level text NOT NULL CHECK (level IN ('watching', 'tracking', 'normal', 'muted')),
    reason text NOT NULL DEFAULT 'chosen' CHECK (reason IN ('chosen', 'created', 'posted')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, target_kind, target_id)
);
CREATE INDEX watches_target ON notify.watches (target_kind, target_id, level);

-- The level that applies to a member in a topic: the topic's own, except that the
-- tracking posting sets never lowers a watched category; else the category's; else normal.
CREATE FUNCTION notify.effective_level(topic_level text, topic_reason text, category_level text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN topic_level IS NULL THEN coalesce(category_level, 'normal')
        WHEN topic_reason = 'posted' AND category_level = 'watching' THEN 'watching'
        ELSE topic_level
    END
$$;

-- One row per (member, what it is about): `dedupe_key` makes an event handled twice
-- write nothing twice, and batches reactions on a post into one notification.
CREATE TABLE notify.notifications (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL,
    kind text NOT NULL,
    dedupe_key text NOT NULL,
    topic_id bigint,
    post_id bigint,
    post_number integer,
    actor_id bigint,
    data jsonb NOT NULL DEFAULT '{}',
    read_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, dedupe_key)
);
CREATE INDEX notifications_user ON notify.notifications (user_id, updated_at DESC, id DESC);
CREATE INDEX notifications_unread ON notify.notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_post ON notify.notifications (post_id) WHERE post_id IS NOT NULL;

CREATE TABLE notify.preferences (
    user_id bigint PRIMARY KEY,
    digest text NOT NULL DEFAULT 'weekly' CHECK (digest IN ('daily', 'weekly', 'never')),
    email_on_reply text NOT NULL DEFAULT 'away' CHECK (email_on_reply IN ('never', 'away', 'always')),
    email_on_mention text NOT NULL DEFAULT 'away' CHECK (email_on_mention IN ('never', 'away', 'always')),
    email_on_watched text NOT NULL DEFAULT 'never' CHECK (email_on_watched IN ('never', 'away', 'always')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Digest state: `last_sent_at` starts the window of the next digest; `last_checked_at`
-- is the last time one was due, sent or not (nothing new sends nothing).
CREATE TABLE notify.digests (
    user_id bigint PRIMARY KEY,
    last_sent_at timestamptz,
    last_checked_at timestamptz,
    sent_count integer NOT NULL DEFAULT 0
);
