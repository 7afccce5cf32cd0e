"""Private messages and the review queue on /live, on real uvicorn with real websocket clients:
who may follow `conversation:<id>` (members; staff only when the moderators' inbox is in it, admins
included), a member who leaves stops at once, replay obeys the same check, a member who blocked the
author is not told of their messages, and `review` is for staff alone and carries no content."""

# ruff: noqa: F811  (tests take the imported `live` fixture by name)

from __future__ import annotations

from notify_helpers import now_iso, wait_for
from test_live import LiveServer, live, nothing_more, receive, subscribe  # noqa: F401 (live: a fixture)

from shared import audience as aud
from shared import events as ev

ALICE, BOB, CAROL, MOD, ADMIN = 1, 2, 3, 9, 10


def _created(conversation_id: int, member_ids: list[int], *, with_moderators: bool = False) -> ev.ConversationCreated:
    return ev.ConversationCreated(
        conversation_id=conversation_id,
        member_ids=member_ids,
        with_moderators=with_moderators,
        audience=_audience(conversation_id, with_moderators),
        started_by=member_ids[0],
        title="A quiet word",
    )


def _changed(
    conversation_id: int, member_ids: list[int], *, removed: list[int] = (), with_moderators: bool = False
) -> ev.ConversationMembersChanged:
    return ev.ConversationMembersChanged(
        conversation_id=conversation_id,
        member_ids=member_ids,
        with_moderators=with_moderators,
        audience=_audience(conversation_id, with_moderators),
        added_ids=[],
        removed_ids=list(removed),
        invited_ids=[],
    )


def _audience(conversation_id: int, with_moderators: bool) -> list[str]:
    return [aud.conversation(conversation_id), *([aud.STAFF] if with_moderators else [])]


def _message(
    message_id: int,
    conversation_id: int,
    *,
    author_id: int,
    recipient_ids: list[int],
    with_moderators: bool = False,
    text: str = "words that never leave the page",
) -> ev.MessageCreated:
    return ev.MessageCreated(
        message_id=message_id,
        conversation_id=conversation_id,
        author_id=author_id,
        author_username={ALICE: "alice", BOB: "bob", CAROL: "carol"}.get(author_id, "the moderators"),
        title="A quiet word",
        text=text,
        created_at=now_iso(),
        recipient_ids=recipient_ids,
        with_moderators=with_moderators,
        audience=_audience(conversation_id, with_moderators),
        from_moderators=author_id == MOD,
    )


async def _conversation(live: LiveServer, conversation_id: int, member_ids: list[int], **options: bool) -> None:
    await live.emit(_created(conversation_id, member_ids, **options))
    await live.known("conversations", conversation_id)


async def _refused(ws, channel: str) -> dict:
    [answer] = await subscribe(ws, [channel])
    return answer


async def test_members_get_page_facts_of_new_messages_and_never_the_text(live):
    """A member following the conversation is told of a message at once: its ids and author, no text."""
    await _conversation(live, 501, [ALICE, BOB])
    alice = await live.session(ALICE, "alice")
    async with live.connect(alice) as ws:
        assert await subscribe(ws, ["conversation:501"]) == []
        await live.emit(_message(7001, 501, author_id=BOB, recipient_ids=[ALICE]))
        message = await receive(ws)
        assert message == {
            "type": "event",
            "id": message["id"],
            "channel": "conversation:501",
            "event": "message.created",
            "data": {"message_id": 7001, "conversation_id": 501, "author_username": "bob"},
        }
        assert "never leave" not in str(message)


async def test_outsiders_visitors_and_staff_are_refused_a_conversation_they_are_not_in(live):
    """Only members may follow a conversation without the moderators: another member, a visitor,
    a moderator and an admin are all refused, with the same answer as for one that does not exist."""
    await _conversation(live, 502, [ALICE, BOB])
    carol = await live.session(CAROL, "carol")
    moderator = await live.session(MOD, "mod", roles=("moderator",))
    admin = await live.session(ADMIN, "admin", roles=("admin",))
    for session in (carol, None, moderator, admin):
        async with live.connect(session) as ws:
            answer = await _refused(ws, "conversation:502")
            assert answer["type"] == "error" and answer["code"] == "forbidden", (session, answer)
            await live.emit(_message(7002, 502, author_id=ALICE, recipient_ids=[BOB]))
            await nothing_more(ws)


async def test_staff_follow_a_conversation_with_the_moderators_inbox(live):
    """With the moderators' inbox in it, moderators and admins may follow it and are told of messages."""
    await _conversation(live, 503, [ALICE], with_moderators=True)
    moderator = await live.session(MOD, "mod", roles=("moderator",))
    admin = await live.session(ADMIN, "admin", roles=("admin",))
    carol = await live.session(CAROL, "carol")
    async with live.connect(moderator) as mod_ws, live.connect(admin) as admin_ws, live.connect(carol) as carol_ws:
        assert await subscribe(mod_ws, ["conversation:503"]) == []
        assert await subscribe(admin_ws, ["conversation:503"]) == []
        assert (await _refused(carol_ws, "conversation:503"))["code"] == "forbidden"
        await live.emit(_message(7003, 503, author_id=ALICE, recipient_ids=[], with_moderators=True))
        assert (await receive(mod_ws))["data"]["message_id"] == 7003
        assert (await receive(admin_ws))["data"]["message_id"] == 7003


async def test_a_member_who_leaves_stops_receiving_at_once_and_cannot_follow_again(live):
    """conversation.members_changed without them: the channel is refused on the open socket before
    anything else of it, and asking again (the projection may lag) is refused too."""
    await _conversation(live, 504, [ALICE, BOB, CAROL])
    carol = await live.session(CAROL, "carol")
    alice = await live.session(ALICE, "alice")
    async with live.connect(carol) as leaving, live.connect(alice) as staying:
        await subscribe(leaving, ["conversation:504"])
        await subscribe(staying, ["conversation:504"])
        await live.emit(_changed(504, [ALICE, BOB], removed=[CAROL]))
        gone = await receive(leaving, 1.0)
        assert gone["type"] == "error" and gone["code"] == "forbidden" and gone["channel"] == "conversation:504"
        assert (await receive(staying))["event"] == "conversation.members_changed"
        # A message sent to her by mistake (as recipient) still goes nowhere: she no longer follows it.
        await live.emit(_message(7004, 504, author_id=BOB, recipient_ids=[ALICE, CAROL]))
        assert (await receive(staying))["data"]["message_id"] == 7004
        await nothing_more(leaving)
        assert (await _refused(leaving, "conversation:504"))["code"] == "forbidden"
    await wait_for(
        lambda: live.pool.fetchval("SELECT NOT (3 = ANY(member_ids)) FROM notify.conversations WHERE id = 504"),
        what="the projection without carol",
    )


async def test_a_member_who_blocked_the_author_is_not_told_of_their_messages(live):
    """MessageCreated.recipient_ids leaves out whoever blocked the author: they are not told live;
    the author is told of their own message (their other tabs)."""
    await _conversation(live, 505, [ALICE, BOB, CAROL])
    alice, bob, carol = [await live.session(u, n) for u, n in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))]
    async with live.connect(alice) as a, live.connect(bob) as b, live.connect(carol) as c:
        for ws in (a, b, c):
            assert await subscribe(ws, ["conversation:505"]) == []
        await live.emit(_message(7005, 505, author_id=BOB, recipient_ids=[ALICE]))  # carol blocked bob
        assert (await receive(a))["data"]["message_id"] == 7005
        assert (await receive(b))["data"]["message_id"] == 7005
        await nothing_more(c)


async def test_replay_obeys_the_same_check(live):
    """Resuming: a member gets what they missed; a member who left meanwhile is refused, not replayed."""
    await _conversation(live, 506, [ALICE, BOB, CAROL])
    alice = await live.session(ALICE, "alice")
    carol = await live.session(CAROL, "carol")
    async with live.connect(alice) as ws:
        await subscribe(ws, ["conversation:506"])
        await live.emit(_message(7060, 506, author_id=BOB, recipient_ids=[ALICE, CAROL]))
        since = (await receive(ws))["id"]
    await live.emit(
        _message(7061, 506, author_id=BOB, recipient_ids=[ALICE, CAROL]),
        _changed(506, [ALICE, BOB], removed=[CAROL]),
        _message(7062, 506, author_id=BOB, recipient_ids=[ALICE]),
    )
    await wait_for(
        lambda: live.pool.fetchval("SELECT NOT (3 = ANY(member_ids)) FROM notify.conversations WHERE id = 506"),
        what="the projection without carol",
    )
    async with live.connect(alice) as ws:
        got = await subscribe(ws, ["conversation:506"], last_event_id=since)
        assert [m["data"].get("message_id") for m in got] == [7061, None, 7062]
    async with live.connect(carol) as ws:
        [answer] = await subscribe(ws, ["conversation:506"], last_event_id=since)
        assert answer["code"] == "forbidden"
        await nothing_more(ws)


async def test_a_conversation_created_a_moment_ago_is_pending_then_followed(live):
    """A new conversation the projection does not know yet is answered `pending`, then subscribed."""
    await _conversation(live, 507, [ALICE, BOB])
    alice = await live.session(ALICE, "alice")
    async with live.connect(alice) as ws:
        await ws.send('{"type": "subscribe", "channels": ["conversation:508"]}')
        assert (await receive(ws))["type"] == "pending"
        await live.emit(_created(508, [ALICE, BOB]))
        assert (await receive(ws)) == {"type": "subscribed", "channels": ["conversation:508"]}
        await live.emit(_message(7008, 508, author_id=BOB, recipient_ids=[ALICE]))
        assert (await receive(ws))["data"]["message_id"] == 7008


async def test_the_review_channel_is_for_staff_and_says_only_that_the_queue_changed(live):
    """Moderators and admins follow `review`; a member and a visitor are refused; each message is the
    event type and the item's id, nothing of the post or the person."""
    moderator = await live.session(MOD, "mod", roles=("moderator",))
    admin = await live.session(ADMIN, "admin", roles=("admin",))
    member = await live.session(ALICE, "alice")
    async with live.connect(moderator) as m, live.connect(admin) as a, live.connect(member) as x, live.connect() as v:
        assert await subscribe(m, ["review"]) == []
        assert await subscribe(a, ["review"]) == []
        assert (await _refused(x, "review"))["code"] == "forbidden"
        assert (await _refused(v, "review"))["code"] == "unauthorized"
        await live.emit(
            ev.SafeguardingAlerted(review_id=41, round=1, recipient_ids=[MOD], email_ids=[], post_id=5, topic_id=6),
            ev.PostFlagged(
                post_id=5,
                topic_id=6,
                category_id=1,
                author_id=ALICE,
                reason="spam",
                review_id=42,
                review_kind="flagged_post",
                score=1,
                priority=1,
            ),
            ev.SafeguardingPickedUp(review_id=41, moderator_id=MOD, moderator_username="mod"),
            ev.SafeguardingResolved(review_id=41, outcome="reached_out", moderator_id=MOD),
            ev.ReviewResolved(review_id=42, kind="flagged_post", action="ignore", moderator_id=MOD),
        )
        for ws in (m, a):
            got = [await receive(ws) for _ in range(5)]
            assert [(g["event"], g["data"]) for g in got] == [
                ("safeguarding.alerted", {"review_id": 41}),
                ("post.flagged", {"review_id": 42}),
                ("safeguarding.picked_up", {"review_id": 41}),
                ("safeguarding.resolved", {"review_id": 41}),
                ("review.resolved", {"review_id": 42}),
            ]
        await nothing_more(x)
        await nothing_more(v)


async def test_a_demoted_moderator_loses_the_review_channel_and_moderators_conversations(live):
    """user.updated without the moderator role: the open socket is refused both channels at once."""
    await _conversation(live, 509, [ALICE], with_moderators=True)
    moderator = await live.session(MOD, "mod", roles=("moderator",))
    async with live.connect(moderator) as ws:
        assert await subscribe(ws, ["review", "conversation:509"]) == []
        await live.emit(ev.UserUpdated(user_id=MOD, username="mod", display_name="Mod", roles=["member"]))
        refused = {(await receive(ws))["channel"], (await receive(ws))["channel"]}
        assert refused == {"review", "conversation:509"}
        await live.emit(_message(7009, 509, author_id=ALICE, recipient_ids=[], with_moderators=True))
        await nothing_more(ws)
