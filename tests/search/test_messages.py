"""Private messages in search: a member finds words in the conversations they are in now, nobody
else does (other members, visitors, moderators and admins alike), except that staff find messages of
conversations with the moderators' inbox; a member who left finds nothing said there any more; a
hidden message leaves search; results link to the message on its conversation's page; a rebuild
keeps the messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from search_helpers import OUTBOX, found, unique

from services.search import indexer, reindex, store
from shared import audience as aud
from shared import events as ev
from shared.events import write_event


@pytest.fixture
async def people(member_factory):
    return {
        "alice": await member_factory("alice_m"),
        "bob": await member_factory("bob_m"),
        "carol": await member_factory("carol_m"),
        "moderator": await member_factory("mod_m", roles=("member", "moderator")),
        "admin": await member_factory("admin_m", roles=("member", "admin")),
    }


async def _emit(pool, *events: ev.Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await write_event(conn, event, actor_id=None, outbox=OUTBOX)


def _audience(conversation_id: int, with_moderators: bool) -> list[str]:
    return [aud.conversation(conversation_id), *([aud.STAFF] if with_moderators else [])]


def _conversation(conversation_id: int, member_ids: list[int], *, with_moderators: bool = False) -> ev.Event:
    return ev.ConversationCreated(
        conversation_id=conversation_id,
        member_ids=member_ids,
        with_moderators=with_moderators,
        audience=_audience(conversation_id, with_moderators),
        started_by=member_ids[0],
        title="A quiet word",
    )


def _members(conversation_id: int, member_ids: list[int], removed: list[int]) -> ev.Event:
    return ev.ConversationMembersChanged(
        conversation_id=conversation_id,
        member_ids=member_ids,
        with_moderators=False,
        audience=_audience(conversation_id, False),
        added_ids=[],
        removed_ids=removed,
        invited_ids=[],
    )


def _message(
    message_id: int, conversation_id: int, author, text: str, *, with_moderators: bool = False, from_mods: bool = False
) -> ev.Event:
    return ev.MessageCreated(
        message_id=message_id,
        conversation_id=conversation_id,
        author_id=author.id,
        author_username="the moderators" if from_mods else author.username,
        title="A quiet word",
        text=text,
        created_at=datetime.now(UTC).isoformat(),
        recipient_ids=[],
        with_moderators=with_moderators,
        audience=_audience(conversation_id, with_moderators),
        from_moderators=from_mods,
    )


async def test_only_the_members_of_a_conversation_find_its_messages(pool, index, search, people, client):
    """Alice and Bob find their words; Carol, a visitor, a moderator and an admin do not."""
    word = unique()
    alice, bob = people["alice"], people["bob"]
    await _emit(pool, _conversation(9101, [alice.id, bob.id]), _message(81001, 9101, bob, f"hello {word}"))
    await index.sync()
    for member in (alice, bob):
        body = await search(word, who=member.client)
        assert found(body) == [("message", 81001)]
        [item] = body["items"]
        assert item["url"] == "/messages/9101#message-81001"
        assert item["conversation_id"] == 9101 and item["title"] == "A quiet word"
        assert item["author"]["username"] == "bob_m"
    for outsider in (people["carol"].client, None, people["moderator"].client, people["admin"].client):
        assert (await search(word, who=outsider))["items"] == [], outsider
        assert (await search(f"kind:message {word}", who=outsider))["items"] == []
        assert (await search("@bob_m", who=outsider))["items"] == []


async def test_staff_find_messages_of_conversations_with_the_moderators_inbox(pool, index, search, people):
    """With the moderators' inbox in it, any moderator or admin finds its messages; the inbox's own
    messages show "The moderators", never the moderator's name."""
    word = unique()
    alice, moderator = people["alice"], people["moderator"]
    await _emit(
        pool,
        _conversation(9102, [alice.id], with_moderators=True),
        _message(81002, 9102, moderator, f"reaching out {word}", with_moderators=True, from_mods=True),
        _message(81003, 9102, alice, f"thank you {word}", with_moderators=True),
    )
    await index.sync()
    for who in (alice, moderator, people["admin"]):
        assert {i for _, i in found(await search(word, who=who.client))} == {81002, 81003}
    assert (await search(word, who=people["carol"].client))["items"] == []
    from_mods = next(i for i in (await search(word, who=alice.client))["items"] if i["id"] == 81002)
    assert from_mods["author"] == {"id": None, "username": "moderators", "display_name": "The moderators"}
    assert (await search("@mod_m", who=alice.client))["items"] == []


async def test_a_member_who_left_finds_nothing_said_there_and_a_hidden_message_leaves(pool, index, search, people):
    """Leaving takes the conversation out of a member's search (what was said before too); a message
    moderators hid is found by nobody."""
    word = unique()
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    await _emit(
        pool,
        _conversation(9103, [alice.id, bob.id, carol.id]),
        _message(81004, 9103, alice, f"before {word}"),
        _message(81005, 9103, bob, f"reported {word}"),
    )
    await index.sync()
    assert len((await search(word, who=carol.client))["items"]) == 2
    await _emit(
        pool,
        _members(9103, [alice.id, bob.id], removed=[carol.id]),
        ev.MessageHidden(message_id=81005, conversation_id=9103, author_id=bob.id, reason="reported"),
    )
    await index.sync()
    assert (await search(word, who=carol.client))["items"] == []
    assert found(await search(word, who=alice.client)) == [("message", 81004)]
    assert found(await search(word, who=people["moderator"].client)) == []


async def test_a_late_older_membership_event_changes_nothing(pool, index):
    """The newest whole list wins: an older event applied after a newer one is ignored."""
    older = ev.Envelope.wrap(_conversation(9104, [1, 2, 3]), actor_id=None)  # UUIDv7: wrapped first, older
    newer = ev.Envelope.wrap(_members(9104, [1, 2], removed=[3]), actor_id=None)
    async with pool.acquire() as conn:
        await indexer.apply_event(conn, store.LIVE, newer)
        await indexer.apply_event(conn, store.LIVE, older)
        assert await conn.fetchval("SELECT member_ids FROM search.conversations WHERE conversation_id = 9104") == [1, 2]


async def test_a_rebuild_keeps_the_messages(pool, index, search, people, settings):
    """The forum's export has no messages: a rebuild carries the live index's over."""
    word = unique()
    alice, bob = people["alice"], people["bob"]
    await _emit(pool, _conversation(9105, [alice.id, bob.id]), _message(81006, 9105, alice, f"kept {word}"))
    await index.sync()
    async with pool.acquire() as conn:
        await reindex.begin(conn)
        try:
            assert await store.carry_messages(conn, store.LIVE, reindex.NEW) >= 1
            assert (
                await conn.fetchval(f"SELECT body FROM {reindex.NEW.documents} WHERE kind = 'message' AND id = 81006")
                == f"kept {word}"
            )
            assert await conn.fetchval(f"SELECT username FROM {reindex.NEW.users} WHERE user_id = $1", alice.id)
        finally:
            await reindex.abort(conn)
