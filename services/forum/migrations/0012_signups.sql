-- Sign-up modes: accounts waiting for a moderator's approval, and site-wide invitations.

-- A person who registered while sign-up needed approval. They are not a member yet: no row in
-- forum.users, so they appear nowhere (directory, mentions, profiles, search, groups) until approved.
-- The id is drawn from forum.users' own sequence, so it is the id the account gets when approved
-- (events and the audit log name the same id before and after). Declining deletes the row, which
-- frees the username and address for a genuine second try (as Discourse does).
CREATE TABLE forum.signups (
    id bigint PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    display_name text NOT NULL,
    answer text NOT NULL,
    email_verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX signups_username_key ON forum.signups (lower(username));
CREATE UNIQUE INDEX signups_email_key ON forum.signups (lower(email));
CREATE INDEX signups_oldest ON forum.signups (created_at, id);

-- The links that confirm a waiting person's address (only their SHA-256 is kept). On approval the
-- unused ones move to forum.email_tokens, so a link mailed before keeps working.
CREATE TABLE forum.signup_tokens (
    token_hash text PRIMARY KEY,
    signup_id bigint NOT NULL REFERENCES forum.signups ON DELETE CASCADE,
    email text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signup_tokens_signup ON forum.signup_tokens (signup_id);

-- Invitations to join, by email, from staff. A link names the invitation and its version, signed;
-- resending bumps the version (the older link stops working) and starts the 28 days again.
CREATE TABLE forum.invitations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    note text NOT NULL DEFAULT '',
    invited_by bigint REFERENCES forum.users (id) ON DELETE SET NULL,
    link_version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_by bigint REFERENCES forum.users (id) ON DELETE SET NULL,
    withdrawn_at timestamptz,
    withdrawn_by bigint REFERENCES forum.users (id) ON DELETE SET NULL,
    CHECK (used_at IS NULL OR withdrawn_at IS NULL)
);
CREATE INDEX invitations_newest ON forum.invitations (created_at DESC, id DESC);
CREATE INDEX invitations_email ON forum.invitations (lower(email));
