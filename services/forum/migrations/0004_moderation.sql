-- Moderation and trauma-informed safety: flags, the review queue, appeals, watched words,
-- safeguarding phrases, member controls, pseudonymous posting and the append-only audit log.

-- Pseudonymous posting: a category may allow it; a topic and each post remember it.
ALTER TABLE forum.categories ADD COLUMN allow_anonymous boolean NOT NULL DEFAULT false;
ALTER TABLE forum.topics ADD COLUMN anonymous boolean NOT NULL DEFAULT false;
ALTER TABLE forum.posts ADD COLUMN anonymous boolean NOT NULL DEFAULT false;

-- A topic is listed only when visible: its first post may wait for review (pending), have been
-- turned down (rejected) or hidden by moderators (hidden).
ALTER TABLE forum.topics ADD COLUMN status text NOT NULL DEFAULT 'visible'
    CHECK (status IN ('visible', 'pending', 'rejected', 'hidden'));

-- rejected: a post that waited for review and was not published; its author still sees it, and may appeal.
ALTER TABLE forum.posts DROP CONSTRAINT posts_status_check;
ALTER TABLE forum.posts ADD CONSTRAINT posts_status_check
    CHECK (status IN ('visible', 'hidden', 'pending', 'rejected', 'deleted'));
-- Why a post waits, was hidden or was rejected: shown to its author (and staff), never to others.
ALTER TABLE forum.posts ADD COLUMN moderation_reason text;
CREATE INDEX posts_waiting ON forum.posts (author_id) WHERE status IN ('pending', 'rejected', 'hidden');

-- Each member chooses whether posts with a content note start folded (the default) or open.
ALTER TABLE forum.users ADD COLUMN content_notes text NOT NULL DEFAULT 'collapse'
    CHECK (content_notes IN ('collapse', 'show'));

-- The review queue: one reviewable per post and kind, whatever brought it (flags, a new
-- member's first posts, a watched word, a safeguarding phrase, an appeal).
CREATE TABLE forum.reviewables (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('flagged_post', 'queued_post', 'safeguarding', 'appeal')),
    post_id bigint NOT NULL REFERENCES forum.posts,
    topic_id bigint NOT NULL REFERENCES forum.topics,
    author_id bigint NOT NULL REFERENCES forum.users,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'ignored', 'deleted')),
    score integer NOT NULL DEFAULT 0,     -- the weights of its pending flags
    priority integer NOT NULL DEFAULT 0,  -- higher first; safeguarding highest
    reasons text[] NOT NULL DEFAULT '{}', -- why it is here, for moderators
    appeal_text text,                     -- an appeal's words from the author
    resolved_by bigint REFERENCES forum.users,
    resolved_at timestamptz,
    resolution text,                      -- the action taken
    resolution_reason text,               -- the reason the author is given
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, post_id)
);
CREATE INDEX reviewables_queue ON forum.reviewables (status, priority DESC, score DESC, created_at, id);
CREATE INDEX reviewables_author ON forum.reviewables (author_id, created_at DESC);

-- A member's flag on a post: one per member and post.
CREATE TABLE forum.flags (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES forum.posts,
    user_id bigint NOT NULL REFERENCES forum.users,
    reason text NOT NULL CHECK (reason IN ('off_topic', 'inappropriate', 'spam', 'safeguarding', 'other')),
    note text,
    weight integer NOT NULL,
    reviewable_id bigint NOT NULL REFERENCES forum.reviewables,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'agreed', 'disagreed', 'ignored')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, user_id)
);
CREATE INDEX flags_reviewable ON forum.flags (reviewable_id);
CREATE INDEX flags_user ON forum.flags (user_id, created_at DESC);

-- Words admins watch for, matched as whole words or phrases, case-insensitively.
CREATE TABLE forum.watched_words (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    word text NOT NULL,
    action text NOT NULL CHECK (action IN ('block', 'require_approval', 'censor', 'flag')),
    created_by bigint REFERENCES forum.users,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX watched_words_word ON forum.watched_words (lower(word));

-- Changes admins made to the built-in safeguarding phrases (safety.py): a phrase added
-- (active) or a built-in one switched off (not active). The built-in list lives in code, so
-- a better default reaches every install.
CREATE TABLE forum.safeguarding_phrases (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phrase text NOT NULL,
    active boolean NOT NULL,
    created_by bigint REFERENCES forum.users,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX safeguarding_phrases_phrase ON forum.safeguarding_phrases (lower(phrase));

-- Member controls: no notifications from a muted member; an ignored one's posts are also folded away.
CREATE TABLE forum.member_mutes (
    user_id bigint NOT NULL REFERENCES forum.users,
    muted_user_id bigint NOT NULL REFERENCES forum.users,
    level text NOT NULL CHECK (level IN ('muted', 'ignored')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, muted_user_id),
    CHECK (user_id <> muted_user_id)
);

-- Every moderator and admin action: who, what, on what, why, and the state before and after.
CREATE TABLE forum.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_id bigint NOT NULL REFERENCES forum.users,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id bigint,
    reason text,
    before jsonb,
    after jsonb
);
CREATE INDEX audit_log_recent ON forum.audit_log (id DESC);
CREATE INDEX audit_log_actor ON forum.audit_log (actor_id, id DESC);
CREATE INDEX audit_log_target ON forum.audit_log (target_type, target_id, id DESC);
CREATE INDEX audit_log_action ON forum.audit_log (action, id DESC);

-- Append-only: a row, once written, can be neither changed nor removed (also not by a
-- cascade from a deleted user: the foreign key has no ON DELETE, so the delete fails).
CREATE FUNCTION forum.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'forum.audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON forum.audit_log
    FOR EACH ROW EXECUTE FUNCTION forum.audit_log_append_only();
