"""Live channels: their names, and what each event shows on which of them.

A channel is `topic:N`, `category:N`, `user:N` (a member's own unread count), `latest`
(lists of every category), `conversation:N` (a private conversation: its members, and staff
when the moderators' inbox is in it) or `review` (staff: the review queue changed); these
are live channel names, not audiences. Each event type the
live fan-out forwards has one handler in `LIVE`, taking the typed event (shared/event_types.py)
and returning its messages: only page-level facts (ids, post number, author username, event
type), never user.* events, which carry private addresses. An event type not in the table is
not forwarded; a renamed field fails to parse as its type and is logged by the fan-out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shared import audience as aud
from shared import events as ev

LATEST = "latest"
REVIEW = "review"
CHANNEL = re.compile(r"(topic|category|user|conversation):([1-9][0-9]{0,17})|latest|review")

# channel, data, audience (None: the channel's own check decides, as for a hidden post)
Message = tuple[str, dict[str, Any], list[str] | None]
Handler = Callable[[Any], list[Message]]


def topic_channel(topic_id: int) -> str:
    return f"topic:{topic_id}"


def category_channel(category_id: int) -> str:
    return f"category:{category_id}"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def conversation_channel(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


def parse(channel: str) -> tuple[str, int] | None:
    """A channel's kind and number ("topic", 42), or None for `latest`, `review` and what is no channel."""
    match = CHANNEL.fullmatch(channel)
    if match is None or channel in (LATEST, REVIEW):
        return None
    return match.group(1), int(match.group(2))


def is_conversation_channel(channel: str) -> bool:
    """Whether a channel is a private conversation's (its messages' audiences are checked strictly)."""
    return channel.startswith("conversation:")


def is_user_channel(channel: str) -> bool:
    """Whether a channel carries a member's unread count rather than stream events."""
    parsed = parse(channel)
    return parsed is not None and parsed[0] == "user"


# --- one handler per event type -----------------------------------------------------------------


def _post_created(e: ev.PostCreated) -> list[Message]:
    data = {
        "post_id": e.post_id,
        "topic_id": e.topic_id,
        "post_number": e.post_number,
        "author_username": e.author_username,
    }
    return _on(data, e.audience, topic_channel(e.topic_id), category_channel(e.category_id), LATEST)


def _post_edited(e: ev.PostEdited) -> list[Message]:
    data = {"post_id": e.post_id, "topic_id": e.topic_id, "post_number": e.post_number, "revision": e.revision}
    return _on(data, e.audience, topic_channel(e.topic_id))


def _post_deleted(e: ev.PostDeleted) -> list[Message]:
    data = {"post_id": e.post_id, "topic_id": e.topic_id, "post_number": e.post_number}
    return _on(data, None, topic_channel(e.topic_id))


def _post_status(e: ev.PostHidden | ev.PostRestored) -> list[Message]:
    return _on({"post_id": e.post_id, "topic_id": e.topic_id}, None, topic_channel(e.topic_id))


def _reaction(e: ev.ReactionAdded | ev.ReactionRemoved) -> list[Message]:
    data = {"post_id": e.post_id, "topic_id": e.topic_id, "kind": e.kind}
    return _on(data, e.audience, topic_channel(e.topic_id))


def _topic_created(e: ev.TopicCreated) -> list[Message]:
    data = {"topic_id": e.topic_id, "category_id": e.category_id}
    return _on(data, e.audience, category_channel(e.category_id), LATEST)


def _topic_updated(e: ev.TopicUpdated) -> list[Message]:
    data = {"topic_id": e.topic_id, "category_id": e.category_id, "closed": e.closed, "pinned": e.pinned}
    return _on(data, e.audience, topic_channel(e.topic_id), category_channel(e.category_id))


# Private messages: ids and the author's name only, never the text. A message goes to its recipients
# (the members less any who blocked its author) and its author, and to staff when the moderators'
# inbox is in the conversation: `conversation:<id>` channels check these audiences strictly (being
# staff reads nothing there that the audience does not name), see live_client.Client.deliver.


def message_audience(e: ev.MessageCreated) -> list[str]:
    """Who is told of a message live: its recipients and author, and staff for the moderators' inbox."""
    people = [aud.user(u) for u in sorted({*e.recipient_ids, e.author_id})]
    return [*people, aud.STAFF] if e.with_moderators else people


def _message_created(e: ev.MessageCreated) -> list[Message]:
    data = {"message_id": e.message_id, "conversation_id": e.conversation_id, "author_username": e.author_username}
    return _on(data, message_audience(e), conversation_channel(e.conversation_id))


def _message_hidden(e: ev.MessageHidden) -> list[Message]:
    data = {"message_id": e.message_id, "conversation_id": e.conversation_id}
    return _on(data, None, conversation_channel(e.conversation_id))


def _members_changed(e: ev.ConversationMembersChanged) -> list[Message]:
    # Who joined or left is shown by the page; those who left no longer follow the channel (live_access).
    return _on({"conversation_id": e.conversation_id}, None, conversation_channel(e.conversation_id))


# The review queue: staff are told only that it changed (no content); the page asks for the counts.


def _review_changed(
    e: ev.PostFlagged | ev.ReviewResolved | ev.SafeguardingAlerted | ev.SafeguardingPickedUp | ev.SafeguardingResolved,
) -> list[Message]:
    return _on({"review_id": e.review_id}, aud.staff_only(), REVIEW)


def _on(data: dict[str, Any], audience: list[str] | None, *channels: str) -> list[Message]:
    """The same data, for the same audience, on each channel."""
    return [(channel, data, audience) for channel in channels]


LIVE: dict[type[ev.Event], Handler] = {
    ev.PostCreated: _post_created,
    ev.PostEdited: _post_edited,
    ev.PostDeleted: _post_deleted,
    ev.PostHidden: _post_status,
    ev.PostRestored: _post_status,
    ev.ReactionAdded: _reaction,
    ev.ReactionRemoved: _reaction,
    ev.TopicCreated: _topic_created,
    ev.TopicUpdated: _topic_updated,
    ev.MessageCreated: _message_created,
    ev.MessageHidden: _message_hidden,
    ev.ConversationMembersChanged: _members_changed,
    ev.PostFlagged: _review_changed,
    ev.ReviewResolved: _review_changed,
    ev.SafeguardingAlerted: _review_changed,
    ev.SafeguardingPickedUp: _review_changed,
    ev.SafeguardingResolved: _review_changed,
}
LIVE_TYPES = frozenset(cls.type for cls in LIVE)


def live_messages(envelope: ev.Envelope) -> list[Message]:
    """The channel messages of one stream event; [] for a type live does not forward.

    Raises EventError when the event does not match its definition (a renamed, missing or
    unknown field): the caller logs it, so a change to an event never silently stops updates.
    """
    if envelope.type not in LIVE_TYPES:
        return []
    event = envelope.event()
    return LIVE[type(event)](event)
