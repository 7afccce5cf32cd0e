-- Who is in each private conversation, from the forum's conversation.* events (notify never reads
-- forum tables). member_ids is the whole list as the newest event applied said it (event_id), so
-- an event handled twice or late changes nothing. Read by /live (who may follow conversation:<id>).
CREATE TABLE notify.conversations (
    id bigint PRIMARY KEY,
    member_ids bigint[] NOT NULL DEFAULT '{}',
    with_moderators boolean NOT NULL DEFAULT false,
    audience text[] NOT NULL DEFAULT '{}',
    event_id uuid
);
CREATE INDEX conversations_members ON notify.conversations USING gin (member_ids);
