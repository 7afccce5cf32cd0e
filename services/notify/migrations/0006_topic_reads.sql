-- How far each member has read each topic, from the forum's topic.read events (the forum writes
-- one only when a member reads further than before). Reading up to the first reply an unread
-- 'new_replies' notification counts reads it; a reply handled after a read that covers it (the
-- events reached notify out of order) is never counted in again.
CREATE TABLE notify.topic_reads (
    user_id bigint NOT NULL,
    topic_id bigint NOT NULL,
    last_read_post_number integer NOT NULL,
    PRIMARY KEY (user_id, topic_id)
);
