-- Accounts: members, their email tokens and personal API tokens.
CREATE TABLE forum.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    display_name text NOT NULL,
    pronouns text,
    bio text NOT NULL DEFAULT '',
    roles text[] NOT NULL DEFAULT '{member}',
    email_verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    previous_visit_at timestamptz,
    suspended_until timestamptz,
    suspended_reason text,
    silenced_until timestamptz,
    silenced_reason text
);
CREATE UNIQUE INDEX users_username_key ON forum.users (lower(username));
CREATE UNIQUE INDEX users_email_key ON forum.users (lower(email));

-- One-time tokens sent by email (verify, reset); only their SHA-256 is kept.
CREATE TABLE forum.email_tokens (
    token_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    email text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user ON forum.email_tokens (user_id, purpose);

-- Personal API tokens: shown once, kept as SHA-256, revocable.
CREATE TABLE forum.api_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_user ON forum.api_tokens (user_id);
