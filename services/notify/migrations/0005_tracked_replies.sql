-- Tracking a topic (issue 13, point 11): new replies by others collect into one unread
-- notification per member and topic (kind 'new_replies', "3 new replies in ‘…’"), updated in
-- place as more come and started again once it is read.

-- At most one unread 'new_replies' notification per member and topic: the writer's upsert
-- finds it by this index (a read one frees the place for the next).
CREATE UNIQUE INDEX notifications_new_replies ON notify.notifications (user_id, topic_id)
    WHERE kind = 'new_replies' AND read_at IS NULL;

-- The replies each such notification counts. A post counts once per member, whichever
-- notification holds it (post.created handled twice, even after the first was read, adds
-- nothing); the count is recomputed from these rows and notify.posts' status when a counted
-- reply is hidden, deleted or restored.
CREATE TABLE notify.tracked_replies (
    user_id bigint NOT NULL,
    post_id bigint NOT NULL,
    notification_id bigint NOT NULL REFERENCES notify.notifications (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX tracked_replies_notification ON notify.tracked_replies (notification_id);
CREATE INDEX tracked_replies_post ON notify.tracked_replies (post_id);
