-- How closely a member follows a topic once they post in it (issue 13, point 11), as Discourse
-- asks: the level starting a topic sets (watching unless chosen otherwise) and the level
-- replying sets (tracking unless chosen otherwise). A level the member chose on the topic
-- itself is never changed by posting (notify.watches.reason = 'chosen').
ALTER TABLE notify.preferences
    ADD COLUMN watch_on_start text NOT NULL DEFAULT 'watching' CHECK (watch_on_start IN ('watching', 'tracking', 'normal')),
    ADD COLUMN watch_on_reply text NOT NULL DEFAULT 'tracking' CHECK (watch_on_reply IN ('watching', 'tracking', 'normal'));
