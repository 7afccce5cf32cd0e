-- Private messages (kind 'message'), and who is in each conversation.
--
-- A message's audience is its conversation's (`conversation:<id>`, plus `staff` when the moderators'
-- inbox is in it), as the forum's message.created said. Unlike everything else in the index, being
-- staff reads no message whose audience does not name staff: query.py checks messages against the
-- viewer's own conversations alone (search.conversations), never the "staff see everything" rule.
ALTER TABLE search.documents DROP CONSTRAINT documents_kind_check;
ALTER TABLE search.documents ADD CONSTRAINT documents_kind_check
    CHECK (kind IN ('topic', 'post', 'document_comment', 'message'));
ALTER TABLE search.documents
    ADD COLUMN conversation_id bigint,
    -- Sent from the moderators' inbox: shown as "The moderators", no moderator's name kept.
    ADD COLUMN from_moderators boolean NOT NULL DEFAULT false;
CREATE INDEX documents_conversation ON search.documents (conversation_id) WHERE conversation_id IS NOT NULL;

-- Who is in each conversation now (member_ids is the whole list as the newest event said it), from
-- conversation.created and conversation.members_changed. A member who left no longer finds anything
-- said in it. Not part of a rebuild's tables: the forum's export has no conversations, so this
-- table is kept as the events built it.
CREATE TABLE search.conversations (
    conversation_id bigint PRIMARY KEY,
    member_ids bigint[] NOT NULL DEFAULT '{}',
    with_moderators boolean NOT NULL DEFAULT false,
    version uuid
);
CREATE INDEX conversations_members ON search.conversations USING gin (member_ids);
