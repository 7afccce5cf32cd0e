-- Categories, topics, posts, revisions, reactions and read state.
CREATE TABLE forum.categories (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    colour text NOT NULL DEFAULT '005eb8',
    position integer NOT NULL DEFAULT 0,
    -- Empty: everyone may read. Otherwise only members of these groups (and staff).
    group_ids bigint[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE forum.topics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category_id bigint NOT NULL REFERENCES forum.categories,
    title text NOT NULL,
    slug text NOT NULL,
    kind text NOT NULL DEFAULT 'discussion'
        CHECK (kind IN ('discussion', 'blog', 'case_study', 'narrative')),
    author_id bigint NOT NULL REFERENCES forum.users,
    content_note text,
    pinned boolean NOT NULL DEFAULT false,
    closed boolean NOT NULL DEFAULT false,
    posts_count integer NOT NULL DEFAULT 0,          -- visible posts
    highest_post_number integer NOT NULL DEFAULT 0,  -- numbers are never reused
    reactions_count integer NOT NULL DEFAULT 0,      -- for "top"
    last_posted_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX topics_latest ON forum.topics (last_posted_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX topics_category_latest ON forum.topics (category_id, last_posted_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX topics_author ON forum.topics (author_id);

CREATE TABLE forum.posts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic_id bigint NOT NULL REFERENCES forum.topics,
    post_number integer NOT NULL,
    author_id bigint NOT NULL REFERENCES forum.users,
    raw text NOT NULL,
    cooked text NOT NULL,
    plain text NOT NULL DEFAULT '',
    reply_to_post_id bigint REFERENCES forum.posts,
    content_note text,
    status text NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'hidden', 'pending', 'deleted')),
    reactions jsonb NOT NULL DEFAULT '{}',
    revision integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    UNIQUE (topic_id, post_number)
);
CREATE INDEX posts_author ON forum.posts (author_id, created_at DESC);
CREATE INDEX posts_reply_to ON forum.posts (reply_to_post_id) WHERE reply_to_post_id IS NOT NULL;

-- Every earlier version of a post: who changed it, when, and why.
CREATE TABLE forum.post_revisions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES forum.posts,
    revision integer NOT NULL,
    raw text NOT NULL,
    content_note text,
    editor_id bigint NOT NULL REFERENCES forum.users,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, revision)
);

CREATE TABLE forum.reactions (
    post_id bigint NOT NULL REFERENCES forum.posts,
    user_id bigint NOT NULL REFERENCES forum.users,
    kind text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id, kind)
);

-- The last post each member has read in each topic.
CREATE TABLE forum.topic_reads (
    user_id bigint NOT NULL REFERENCES forum.users,
    topic_id bigint NOT NULL REFERENCES forum.topics,
    last_read_post_number integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, topic_id)
);
