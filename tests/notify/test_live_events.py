"""The live fan-out reads typed events: what each event shows on which channel, and that an event
which no longer matches its definition is logged with its stream id and type, never silently lost."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from notify_helpers import post, reaction, topic

from services.notify import channels
from services.notify.live import Hub
from services.notify.live_client import Client
from shared import audience
from shared import events as ev

GROUP_3 = [audience.group(3)]

# Every event type live forwards, one well-formed example each, with the messages it makes.
# A type added to channels.LIVE without a row here fails test_every_forwarded_type_has_a_row.
EXAMPLES: dict[type[ev.Event], tuple[ev.Event, list[channels.Message]]] = {
    ev.PostCreated: (
        post(101, topic_id=10, number=2, author_id=2, author_username="bob", category_id=3, audience=GROUP_3),
        [
            (ch, {"post_id": 101, "topic_id": 10, "post_number": 2, "author_username": "bob"}, GROUP_3)
            for ch in ("topic:10", "category:3", "latest")
        ],
    ),
    ev.PostEdited: (
        ev.PostEdited(
            post_id=101,
            topic_id=10,
            post_number=2,
            category_id=3,
            author_id=2,
            author_username="bob",
            text="Edited text stays off the channel.",
            content_note=None,
            audience=GROUP_3,
            revision=2,
        ),
        [("topic:10", {"post_id": 101, "topic_id": 10, "post_number": 2, "revision": 2}, GROUP_3)],
    ),
    ev.PostDeleted: (
        ev.PostDeleted(post_id=101, topic_id=10, post_number=2, category_id=3, author_id=2),
        [("topic:10", {"post_id": 101, "topic_id": 10, "post_number": 2}, None)],
    ),
    ev.PostHidden: (
        ev.PostHidden(post_id=101, topic_id=10, category_id=3, author_id=2, reason="A private reason"),
        [("topic:10", {"post_id": 101, "topic_id": 10}, None)],
    ),
    ev.PostRestored: (
        ev.PostRestored(post_id=101, topic_id=10, category_id=3, author_id=2),
        [("topic:10", {"post_id": 101, "topic_id": 10}, None)],
    ),
    ev.ReactionAdded: (
        reaction(101, topic_id=10, post_author_id=2, user_id=1, kind="heart", audience=GROUP_3),
        [("topic:10", {"post_id": 101, "topic_id": 10, "kind": "heart"}, GROUP_3)],
    ),
    ev.ReactionRemoved: (
        reaction(101, topic_id=10, post_author_id=2, user_id=1, kind="heart", removed=True, audience=GROUP_3),
        [("topic:10", {"post_id": 101, "topic_id": 10, "kind": "heart"}, GROUP_3)],
    ),
    ev.TopicCreated: (
        topic(10, author_id=2, category_id=3, audience=GROUP_3),
        [(ch, {"topic_id": 10, "category_id": 3}, GROUP_3) for ch in ("category:3", "latest")],
    ),
    ev.TopicUpdated: (
        ev.TopicUpdated(
            topic_id=10,
            category_id=3,
            title="Topic 10",
            slug="topic-10",
            kind="discussion",
            author_id=2,
            audience=GROUP_3,
            content_note=None,
            pinned=True,
            closed=False,
        ),
        [
            (ch, {"topic_id": 10, "category_id": 3, "closed": False, "pinned": True}, GROUP_3)
            for ch in ("topic:10", "category:3")
        ],
    ),
    ev.MessageCreated: (
        ev.MessageCreated(
            message_id=70,
            conversation_id=5,
            author_id=2,
            author_username="bob",
            title="A quiet word",
            text="Private words stay off the channel.",
            created_at="2026-01-01T00:00:00+00:00",
            recipient_ids=[3, 1],
            with_moderators=True,
            audience=[audience.conversation(5), audience.STAFF],
        ),
        [
            (
                "conversation:5",
                {"message_id": 70, "conversation_id": 5, "author_username": "bob"},
                [audience.user(1), audience.user(2), audience.user(3), audience.STAFF],
            )
        ],
    ),
    ev.MessageHidden: (
        ev.MessageHidden(message_id=70, conversation_id=5, author_id=2, reason="A private reason"),
        [("conversation:5", {"message_id": 70, "conversation_id": 5}, None)],
    ),
    ev.ConversationMembersChanged: (
        ev.ConversationMembersChanged(
            conversation_id=5,
            member_ids=[1, 2],
            with_moderators=False,
            audience=[audience.conversation(5)],
            added_ids=[],
            removed_ids=[3],
            invited_ids=[],
        ),
        [("conversation:5", {"conversation_id": 5}, None)],
    ),
    ev.PostFlagged: (
        ev.PostFlagged(
            post_id=101,
            topic_id=10,
            category_id=3,
            author_id=2,
            reason="safeguarding",
            review_id=8,
            review_kind="safeguarding",
            score=10,
            priority=1,
        ),
        [("review", {"review_id": 8}, [audience.STAFF])],
    ),
    ev.ReviewResolved: (
        ev.ReviewResolved(review_id=8, kind="flagged_post", action="hide", moderator_id=9, reason="A private reason"),
        [("review", {"review_id": 8}, [audience.STAFF])],
    ),
    ev.SafeguardingAlerted: (
        ev.SafeguardingAlerted(review_id=8, round=2, recipient_ids=[9], email_ids=[9], post_id=101, topic_title="T"),
        [("review", {"review_id": 8}, [audience.STAFF])],
    ),
    ev.SafeguardingPickedUp: (
        ev.SafeguardingPickedUp(review_id=8, moderator_id=9, moderator_username="mod"),
        [("review", {"review_id": 8}, [audience.STAFF])],
    ),
    ev.SafeguardingResolved: (
        ev.SafeguardingResolved(review_id=8, outcome="signposted", moderator_id=9),
        [("review", {"review_id": 8}, [audience.STAFF])],
    ),
}

# Every other event type, and why no live channel carries it. A new event type in shared/event_types.py
# must be put in channels.LIVE or here: it is never skipped without anyone deciding so.
NOT_LIVE = {
    "user.registered": "private: email addresses",
    "user.updated": "private: email addresses, roles",
    "user.seen": "private: when a member was here",
    "user.muted": "private: whom a member muted",
    "user.silenced": "private: a sanction (told as a notification)",
    "user.suspended": "private: a sanction (told as a notification)",
    "group.member_added": "private: who is in a group",
    "group.member_removed": "private: who is in a group",
    "category.created": "no live channel shows categories themselves",
    "category.updated": "no live channel shows categories themselves",
    "folder.updated": "the library has no live channels",
    "document.uploaded": "the library has no live channels",
    "document.updated": "the library has no live channels",
    "document.deleted": "the library has no live channels",
    "document.comment_created": "the library has no live channels",
    "document.comment_edited": "the library has no live channels",
    "document.comment_deleted": "the library has no live channels",
    "webinar.scheduled": "webinars have no live channels",
    "webinar.updated": "webinars have no live channels",
    "webinar.cancelled": "webinars have no live channels",
    "webinar.registered": "staff only: who registered",
    "topic.read": "private: how far a member read a topic",
    "user.role_changed": "private: told to the member as a notification",
    "signup.requested": "staff only: the sign-up queue",
    "signup.decided": "private: told to the person by mail",
    "invitation.sent": "staff only: invitations",
    "invitation.withdrawn": "staff only: invitations",
    "setting.changed": "not content: every process applies it to itself",
    "category.archived": "no live channel shows categories themselves",
    "category.unarchived": "no live channel shows categories themselves",
    "category.deleted": "no live channel shows categories themselves",
    "category.reordered": "no live channel shows categories themselves",
    "conversation.created": "nobody follows a conversation before it exists: live learns its members only",
    "conversation.read": "private: how far a member read a conversation",
}


def _envelope(event: ev.Event) -> ev.Envelope:
    return ev.Envelope.wrap(event, actor_id=2)


def _renamed(event: ev.Event, old: str, new: str) -> ev.Envelope:
    """An envelope of this event whose field `old` a producer renamed to `new`."""
    envelope = _envelope(event)
    data = dict(envelope.data)
    data[new] = data.pop(old)
    return ev.Envelope(envelope.id, envelope.type, envelope.version, envelope.occurred_at, 2, data)


def _entry(envelope_json: str | bytes) -> dict[Any, Any]:
    return {ev.STREAM_FIELD.encode(): envelope_json if isinstance(envelope_json, bytes) else envelope_json.encode()}


@pytest.mark.parametrize("event_type", list(EXAMPLES), ids=lambda cls: cls.type)
def test_each_forwarded_event_makes_its_channel_messages(event_type):
    """A well-formed event of each forwarded type makes exactly its page-level messages."""
    event, expected = EXAMPLES[event_type]
    assert channels.live_messages(_envelope(event)) == expected


def test_every_forwarded_type_has_a_row():
    """The table and the examples name the same types: a handler without a test, or a test without a handler, fails."""
    assert set(channels.LIVE) == set(EXAMPLES)


def test_every_event_type_is_forwarded_or_deliberately_not():
    """Each defined event type is in the live table or in NOT_LIVE with a reason; never both, never neither."""
    defined = set(ev.event_types())
    forwarded = {cls.type for cls in channels.LIVE}
    assert forwarded.isdisjoint(NOT_LIVE)
    assert defined == forwarded | set(NOT_LIVE), "decide whether live forwards the new event type"


def test_types_not_forwarded_make_no_messages():
    """An event live does not forward makes no message, even a well-formed one."""
    seen = ev.UserSeen(user_id=5, seen_at="2026-01-01T00:00:00+00:00")
    assert channels.live_messages(_envelope(seen)) == []


# --- the hub: malformed entries are logged and skipped, the others still served ---------------------


class _Socket:
    """Stands in for a websocket: dispatch only queues text, it never sends."""


def _hub_with_reader(channel: str) -> tuple[Hub, Client]:
    rt: Any = SimpleNamespace(settings=SimpleNamespace(redis_prefix="test-live-events:"))
    hub = Hub(rt)
    client = Client(hub, _Socket(), None, 10)
    hub.attach(client)
    hub._join(client, [channel])
    return hub, client


def _delivered(client: Client) -> list[dict[str, Any]]:
    got = []
    while not client.queue.empty():
        got.append(json.loads(client.queue.get_nowait()))
    return got


def test_a_well_formed_event_reaches_its_channel():
    """The hub delivers a forwarded event's message to a reader of its channel."""
    hub, client = _hub_with_reader("topic:10")
    envelope = _envelope(EXAMPLES[ev.PostHidden][0])
    hub.dispatch(hub.events_stream, "1700000000000-0", _entry(envelope.to_json()))
    [message] = _delivered(client)
    assert message == {
        "type": "event",
        "id": "1700000000000-0",
        "channel": "topic:10",
        "event": "post.hidden",
        "data": {"post_id": 101, "topic_id": 10},
    }


@pytest.mark.parametrize("event_type", list(EXAMPLES), ids=lambda cls: cls.type)
def test_a_renamed_field_is_logged_with_id_and_type_and_nothing_is_delivered(event_type, caplog):
    """A producer renaming topic_id (or a message's or review item's first field) is seen in the log,
    not silently dropped."""
    hub, client = _hub_with_reader("topic:10")
    event = EXAMPLES[event_type][0]
    fields = event.to_data()
    broken = _renamed(event, "topic_id" if "topic_id" in fields else next(iter(fields)), "thread_id")
    with caplog.at_level(logging.WARNING, logger="tica.live"):
        hub.dispatch(hub.events_stream, "1700000000001-0", _entry(broken.to_json()))
    assert _delivered(client) == []
    [record] = [r for r in caplog.records if r.name == "tica.live"]
    assert record.levelno >= logging.WARNING
    assert "1700000000001-0" in record.getMessage()
    assert event_type.type in record.getMessage()
    assert "thread_id" in record.getMessage()


def test_a_missing_field_is_logged_and_the_next_event_still_arrives(caplog):
    """One bad entry does not stop the fan-out: the entry after it is delivered."""
    hub, client = _hub_with_reader("topic:10")
    envelope = _envelope(EXAMPLES[ev.PostRestored][0])
    broken = ev.Envelope(envelope.id, envelope.type, 1, envelope.occurred_at, 2, {"post_id": 101})
    with caplog.at_level(logging.WARNING, logger="tica.live"):
        hub.dispatch(hub.events_stream, "1700000000002-0", _entry(broken.to_json()))
        hub.dispatch(hub.events_stream, "1700000000003-0", _entry(envelope.to_json()))
    assert [m["id"] for m in _delivered(client)] == ["1700000000003-0"]
    [record] = [r for r in caplog.records if r.name == "tica.live"]
    assert "1700000000002-0" in record.getMessage() and "post.restored" in record.getMessage()


def test_an_entry_that_is_not_json_is_logged_with_its_id(caplog):
    """Bad JSON has no readable type; the log still names the entry."""
    hub, client = _hub_with_reader("topic:10")
    with caplog.at_level(logging.WARNING, logger="tica.live"):
        hub.dispatch(hub.events_stream, "1700000000004-0", _entry(b'{"type": "post.created", '))
    assert _delivered(client) == []
    [record] = [r for r in caplog.records if r.name == "tica.live"]
    assert "1700000000004-0" in record.getMessage() and "type ?" in record.getMessage()
