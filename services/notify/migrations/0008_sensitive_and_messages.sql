-- Issue 15. A post that matched a safeguarding phrase (post.created / post.edited `sensitive`)
-- is never quoted in mail: digests and notification emails give its topic's title and a link.
ALTER TABLE notify.posts ADD COLUMN sensitive boolean NOT NULL DEFAULT false;

-- Email about private messages: always, when away (the default, as replies) or never.
ALTER TABLE notify.preferences
    ADD COLUMN email_on_message text NOT NULL DEFAULT 'away' CHECK (email_on_message IN ('never', 'away', 'always'));

-- A member's notifications about one conversation (its messages, an invitation to it) are found
-- by their key when they leave it, so nothing more is told of it to them.
CREATE INDEX notifications_key ON notify.notifications (dedupe_key, user_id);
