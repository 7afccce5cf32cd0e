-- Flagged document comments in the moderators' review queue, with the same flags and
-- moderation as posts: a reviewable targets either a post or a document comment.
ALTER TABLE forum.reviewables ALTER COLUMN post_id DROP NOT NULL;
ALTER TABLE forum.reviewables ALTER COLUMN topic_id DROP NOT NULL;
ALTER TABLE forum.reviewables ADD COLUMN comment_id bigint REFERENCES forum.document_comments;
ALTER TABLE forum.reviewables DROP CONSTRAINT reviewables_kind_check;
ALTER TABLE forum.reviewables ADD CONSTRAINT reviewables_kind_check
    CHECK (kind IN ('flagged_post', 'queued_post', 'safeguarding', 'appeal', 'flagged_comment'));
-- A comment's item has the comment and no post; every other item has a post and topic, no comment.
ALTER TABLE forum.reviewables ADD CONSTRAINT reviewables_target_check CHECK (
    CASE WHEN kind = 'flagged_comment'
        THEN comment_id IS NOT NULL AND post_id IS NULL AND topic_id IS NULL
        ELSE comment_id IS NULL AND post_id IS NOT NULL AND topic_id IS NOT NULL END
);
-- One item per comment (NULL comment ids of post items never clash).
CREATE UNIQUE INDEX reviewables_comment ON forum.reviewables (kind, comment_id);

-- A comment flag weighs like a post flag, belongs to its comment's item, and is closed with it.
ALTER TABLE forum.document_comment_flags ADD COLUMN weight integer NOT NULL DEFAULT 1;
ALTER TABLE forum.document_comment_flags ADD COLUMN reviewable_id bigint REFERENCES forum.reviewables;
ALTER TABLE forum.document_comment_flags ADD COLUMN status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'agreed', 'disagreed', 'ignored'));
CREATE INDEX document_comment_flags_reviewable ON forum.document_comment_flags (reviewable_id);

-- Why a comment was hidden: shown to its author (and staff) on the document page, never to others.
ALTER TABLE forum.document_comments ADD COLUMN moderation_reason text;
