-- Redacting an earlier version of a post: its author or staff take back what it said. The text is
-- kept (nothing stored is lost) and shown to admins alone; everyone else sees that the version was
-- removed, by its author or by a moderator, and when. The current version is never a revision row,
-- so it cannot be redacted: its author edits it instead.
ALTER TABLE forum.post_revisions
    ADD COLUMN redacted_at timestamptz,
    ADD COLUMN redacted_by bigint REFERENCES forum.users,
    ADD CONSTRAINT post_revisions_redacted_together CHECK ((redacted_at IS NULL) = (redacted_by IS NULL));
