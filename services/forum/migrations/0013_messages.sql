-- Private messages: conversations between members (and with the moderators' shared inbox), their
-- messages, reactions and reports; who may start a conversation with a member; blocks; outreach.

CREATE TABLE forum.conversations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    started_by bigint NOT NULL REFERENCES forum.users,
    with_moderators boolean NOT NULL DEFAULT false,  -- the moderators' shared inbox is a party
    review_id bigint REFERENCES forum.reviewables,    -- outreach: started from this safeguarding item
    created_at timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now(),
    last_message_id bigint NOT NULL DEFAULT 0,
    message_count integer NOT NULL DEFAULT 0
);
-- The moderators' inbox, newest first.
CREATE INDEX conversations_moderators ON forum.conversations (last_message_at DESC, id DESC) WHERE with_moderators;
CREATE INDEX conversations_review ON forum.conversations (review_id) WHERE review_id IS NOT NULL;

-- Who is in a conversation. A member reads what was said while they were in it: messages after
-- seen_after_message_id and, once they left, up to left_message_id. The inbox order and unread
-- marker are kept on the member's own row (last_message_at, last_message_id: the newest message
-- they may see), so a member's inbox is one index range scan.
CREATE TABLE forum.conversation_members (
    conversation_id bigint NOT NULL REFERENCES forum.conversations,
    user_id bigint NOT NULL REFERENCES forum.users,
    state text NOT NULL CHECK (state IN ('invited', 'active', 'left', 'declined')),
    invited_by bigint REFERENCES forum.users,
    invited_at timestamptz,
    joined_at timestamptz,
    left_at timestamptz,
    seen_after_message_id bigint NOT NULL DEFAULT 0,
    left_message_id bigint,
    last_read_message_id bigint NOT NULL DEFAULT 0,
    last_message_id bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_inbox
    ON forum.conversation_members (user_id, last_message_at DESC, conversation_id DESC)
    WHERE state IN ('invited', 'active', 'left');

CREATE TABLE forum.messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES forum.conversations,
    author_id bigint NOT NULL REFERENCES forum.users,
    from_moderators boolean NOT NULL DEFAULT false,  -- members read "the moderators"; staff see who
    raw text NOT NULL,
    cooked text NOT NULL,
    plain text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'hidden')),
    moderation_reason text,
    sensitive boolean NOT NULL DEFAULT false,  -- matched a safeguarding phrase
    reactions jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON forum.messages (conversation_id, id);
CREATE INDEX messages_author ON forum.messages (author_id, created_at DESC);

CREATE TABLE forum.message_reactions (
    message_id bigint NOT NULL REFERENCES forum.messages,
    user_id bigint NOT NULL REFERENCES forum.users,
    kind text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, kind)
);

-- Reports of a message, shaped like post flags.
CREATE TABLE forum.message_flags (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES forum.messages,
    user_id bigint NOT NULL REFERENCES forum.users,
    reason text NOT NULL CHECK (reason IN ('off_topic', 'inappropriate', 'spam', 'safeguarding', 'other')),
    note text,
    weight integer NOT NULL,
    reviewable_id bigint NOT NULL REFERENCES forum.reviewables,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'agreed', 'disagreed', 'ignored')),
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (message_id, user_id)
);
CREATE INDEX message_flags_reviewable ON forum.message_flags (reviewable_id);
CREATE INDEX message_flags_user ON forum.message_flags (user_id, created_at DESC);

-- A reported message (or one that matched a safeguarding phrase) in the review queue.
ALTER TABLE forum.reviewables ADD COLUMN message_id bigint REFERENCES forum.messages;
ALTER TABLE forum.reviewables DROP CONSTRAINT reviewables_kind_check;
ALTER TABLE forum.reviewables ADD CONSTRAINT reviewables_kind_check CHECK (kind IN (
    'flagged_post', 'queued_post', 'safeguarding', 'appeal', 'flagged_comment',
    'flagged_message', 'safeguarding_message'
));
ALTER TABLE forum.reviewables DROP CONSTRAINT reviewables_target_check;
ALTER TABLE forum.reviewables ADD CONSTRAINT reviewables_target_check CHECK (
    CASE WHEN kind = 'flagged_comment'
        THEN comment_id IS NOT NULL AND post_id IS NULL AND topic_id IS NULL AND message_id IS NULL
    WHEN kind IN ('flagged_message', 'safeguarding_message')
        THEN message_id IS NOT NULL AND post_id IS NULL AND topic_id IS NULL AND comment_id IS NULL
    ELSE comment_id IS NULL AND message_id IS NULL AND post_id IS NOT NULL AND topic_id IS NOT NULL END
);
CREATE UNIQUE INDEX reviewables_message ON forum.reviewables (kind, message_id);

-- Who may start a conversation with a member: anyone, members they have talked with in public
-- (replied to, or were replied to by, in a topic; or already share a conversation), nobody.
-- The moderators' outreach always reaches them.
ALTER TABLE forum.users ADD COLUMN who_may_message text NOT NULL DEFAULT 'anyone'
    CHECK (who_may_message IN ('anyone', 'talked', 'nobody'));

CREATE TABLE forum.member_blocks (
    blocker_id bigint NOT NULL REFERENCES forum.users,
    blocked_id bigint NOT NULL REFERENCES forum.users,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX member_blocks_blocked ON forum.member_blocks (blocked_id);

-- The words outreach from a safeguarding item starts from (one row; a default in code until an admin edits it).
CREATE TABLE forum.outreach_template (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    title text NOT NULL,
    body text NOT NULL,
    updated_by bigint REFERENCES forum.users,
    updated_at timestamptz NOT NULL DEFAULT now()
);
