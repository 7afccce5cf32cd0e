-- Groups (open, on request, private), their members and owners, requests to join and
-- email invitations; the member directory's profile fields and admin-assigned badges.
CREATE TABLE forum.groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    -- open: anyone joins; request: an owner approves; private: by invitation, invisible to outsiders.
    access text NOT NULL DEFAULT 'open' CHECK (access IN ('open', 'request', 'private')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX groups_name_key ON forum.groups (lower(name));

CREATE TABLE forum.group_members (
    group_id bigint NOT NULL REFERENCES forum.groups ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    owner boolean NOT NULL DEFAULT false,
    added_by bigint REFERENCES forum.users ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON forum.group_members (user_id);

-- Pending requests to join an on-request group; approving or denying removes the row.
CREATE TABLE forum.group_requests (
    group_id bigint NOT NULL REFERENCES forum.groups ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    message text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);

-- Invitations by email: the link carries the id and an HMAC of it (never stored).
CREATE TABLE forum.group_invites (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id bigint NOT NULL REFERENCES forum.groups ON DELETE CASCADE,
    email text NOT NULL,
    invited_by bigint REFERENCES forum.users ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_by bigint REFERENCES forum.users ON DELETE SET NULL,
    revoked_at timestamptz
);
CREATE INDEX group_invites_group ON forum.group_invites (group_id) WHERE used_at IS NULL AND revoked_at IS NULL;

-- The member directory: what members choose to show, and whether they are listed at all.
ALTER TABLE forum.users
    ADD COLUMN organisation text NOT NULL DEFAULT '',
    ADD COLUMN interests text NOT NULL DEFAULT '',
    ADD COLUMN in_directory boolean NOT NULL DEFAULT true;

-- Badges admins give ("Expert by experience", "Core Action Group", an organisation's name).
CREATE TABLE forum.badges (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX badges_name_key ON forum.badges (lower(name));

CREATE TABLE forum.user_badges (
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    badge_id bigint NOT NULL REFERENCES forum.badges ON DELETE CASCADE,
    granted_by bigint REFERENCES forum.users ON DELETE SET NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, badge_id)
);
CREATE INDEX user_badges_badge ON forum.user_badges (badge_id);
