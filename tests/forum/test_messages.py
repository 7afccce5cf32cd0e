"""Private messages through the JSON API: starting, replying, reading, inviting, leaving; consent
(who may message me, blocks); limits; screening; reports and the reported-context rule; the
moderators' inbox; events; a clear 4xx for every bad input."""

from __future__ import annotations

from typing import Any

import pytest
from moderation_helpers import events, new_topic, reply, settings_changed

from shared import audience


@pytest.fixture
async def sam(member_factory):
    return await member_factory("sam")


@pytest.fixture
async def priya(member_factory):
    return await member_factory("priya")


@pytest.fixture
async def jo(member_factory):
    return await member_factory("jo")


async def start(member: Any, *to: Any, title: str = "Hello", text: str = "Hi there", status: int = 201, **extra: Any):
    body: dict[str, Any] = {"title": title, "text": text, **extra}
    if to:
        body["recipients"] = [m.username for m in to]
    response = await member.client.post("/api/conversations", json=body)
    assert response.status_code == status, response.text
    return response.json()


async def say(member: Any, conversation_id: int, text: str = "A reply", status: int = 201):
    response = await member.client.post(f"/api/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == status, response.text
    return response.json()


async def texts(member: Any, conversation_id: int) -> list[str]:
    response = await member.client.get(f"/api/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.text
    return [m["raw"] for m in response.json()["items"]]


async def test_start_reply_and_inbox(sam, priya, jo, pool):
    """Two members talk; the inbox shows it unread to the one who did not write last; outsiders get 404."""
    started = await start(sam, priya, title="Coffee?", text="Would you like to **talk**?")
    cid = started["id"]
    assert started["message"]["cooked"] == "<p>Would you like to <strong>talk</strong>?</p>"
    assert [m["username"] for m in started["members"]] == ["sam", "priya"]
    inbox = (await priya.client.get("/api/conversations")).json()
    assert inbox["items"][0]["id"] == cid and inbox["items"][0]["unread"] is True
    assert inbox["unread_count"] == 1
    assert inbox["items"][0]["last_message"]["excerpt"] == "Would you like to talk?"
    await say(priya, cid, "Yes please")
    assert await texts(sam, cid) == ["Would you like to **talk**?", "Yes please"]
    assert (await jo.client.get(f"/api/conversations/{cid}")).status_code == 404
    assert (await jo.client.get(f"/api/conversations/{cid}/messages")).status_code == 404
    assert (await say(jo, cid, status=404))["error"]["code"] == "not_found"


async def test_read_mark_clears_unread(sam, priya):
    started = await start(sam, priya)
    cid, mid = started["id"], started["message"]["id"]
    response = await priya.client.post(f"/api/conversations/{cid}/read", json={"message_id": mid})
    assert response.status_code == 200 and response.json() == {"last_read_message_id": mid}
    inbox = (await priya.client.get("/api/conversations")).json()
    assert inbox["items"][0]["unread"] is False and inbox["unread_count"] == 0
    bad = await priya.client.post(f"/api/conversations/{cid}/read", json={"message_id": 10**12})
    assert bad.status_code == 422


async def test_events_written_with_audience(sam, priya, pool):
    """ConversationCreated and MessageCreated carry the conversation's audience; recipients are the others."""
    started = await start(sam, priya)
    created = (await events(pool, "conversation.created"))[-1]
    assert created.member_ids == [sam.id, priya.id]
    assert created.audience == [audience.conversation(started["id"])]
    message = (await events(pool, "message.created"))[-1]
    assert message.recipient_ids == [priya.id] and message.author_username == "sam"
    assert message.sensitive is False and message.with_moderators is False


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "", "text": "x", "recipients": ["priya"]}, "title"),
        ({"title": "Hi", "text": "   ", "recipients": ["priya"]}, "text"),
        ({"title": "Hi", "text": "x"}, "recipients"),
        ({"title": "Hi", "text": "x", "recipients": ["nobody-here"]}, "recipients"),
        ({"title": "Hi", "text": "x", "recipients": ["sam"]}, "recipients"),
        ({"title": "Hi", "text": "x", "recipients": ["priya"], "to_moderators": True}, "recipients"),
        ({"title": "Hi\u202e", "text": "x", "recipients": ["priya"]}, "title"),
        ({"title": "Hi", "text": "x", "recipients": "priya"}, "recipients"),
        ({"title": "x" * 201, "text": "x", "recipients": ["priya"]}, "title"),
    ],
)
async def test_bad_starts_are_422(sam, priya, body, field):
    response = await sam.client.post("/api/conversations", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_bad_queries_and_ids(sam, priya):
    cid = (await start(sam, priya))["id"]
    assert (await sam.client.get(f"/api/conversations/{cid}/messages?after=x")).status_code == 400
    assert (await sam.client.get(f"/api/conversations/{cid}/messages?after=1&before=2")).status_code == 400
    assert (await sam.client.get("/api/conversations?cursor=nonsense")).status_code == 400
    assert (await sam.client.get("/api/conversations/999999")).status_code == 404
    assert (await sam.client.post(f"/api/conversations/{cid}/read", json={})).status_code == 422
    assert (await sam.client.post(f"/api/conversations/{cid}/invitations", json={})).status_code == 422
    assert (await sam.client.put("/api/messages/999999/reactions/hug")).status_code == 404


async def test_messages_paging(sam, priya, app):
    cid = (await start(sam, priya, text="m0"))["id"]
    with settings_changed(app, posts_per_minute=10_000, new_member_posts_per_minute=10_000):
        for n in range(1, 55):
            await say(sam, cid, f"m{n}")
    newest = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()
    assert [m["raw"] for m in newest["items"]][-1] == "m54" and len(newest["items"]) == 50
    older = (await sam.client.get(f"/api/conversations/{cid}/messages?before={newest['next']}")).json()
    assert [m["raw"] for m in older["items"]] == ["m0", "m1", "m2", "m3", "m4"] and older["next"] is None
    after = (await sam.client.get(f"/api/conversations/{cid}/messages?after={older['items'][-1]['id']}")).json()
    assert after["items"][0]["raw"] == "m5"


# --- consent ----------------------------------------------------------------------------------------


async def test_nobody_and_block_read_the_same(sam, priya, jo):
    """A member taking no messages and a member who blocked you refuse in the same words."""
    response = await priya.client.put("/api/me/messaging", json={"who_may_message": "nobody"})
    assert response.json() == {"who_may_message": "nobody"}
    refused = await start(sam, priya, status=403)
    assert (await jo.client.put("/api/me/blocks/sam")).status_code == 201
    blocked = await start(sam, jo, status=403)
    assert refused["error"]["code"] == blocked["error"]["code"] == "not_taking_messages"
    assert refused["error"]["message"].replace("Priya", "X") == blocked["error"]["message"].replace("Jo", "X")
    assert (await priya.client.put("/api/me/messaging", json={"who_may_message": "some"})).status_code == 422


async def test_talked_policy_needs_a_public_reply(sam, priya, admin, category):
    """'talked': only members who replied to each other in public (or share a conversation) may start one."""
    await priya.client.put("/api/me/messaging", json={"who_may_message": "talked"})
    await start(sam, priya, status=403)
    topic = await new_topic(priya, category["id"], title="Gardening as therapy", body="It helps me")
    await reply(sam, topic["id"], "It helps me too")
    await start(sam, priya)


async def test_block_hides_new_messages_only_and_is_listed(sam, priya, pool):
    cid = (await start(sam, priya, text="before"))["id"]
    await priya.client.put("/api/me/blocks/sam")
    await say(sam, cid, "after")
    assert await texts(priya, cid) == ["before"]
    assert await texts(sam, cid) == ["before", "after"]  # nothing sam sees says so
    message = (await events(pool, "message.created"))[-1]
    assert message.recipient_ids == []
    listed = (await priya.client.get("/api/me/blocks")).json()["items"]
    assert [b["user"]["username"] for b in listed] == ["sam"]
    assert (await priya.client.put("/api/me/blocks/sam")).status_code == 200
    assert (await priya.client.put("/api/me/blocks/priya")).status_code == 422
    assert (await priya.client.put("/api/me/blocks/no-such")).status_code == 404
    assert (await priya.client.delete("/api/me/blocks/sam")).status_code == 204
    assert (await priya.client.delete("/api/me/blocks/sam")).status_code == 404
    assert (await priya.client.get("/api/me/blocks")).json()["items"] == []


# --- members: invite, accept, decline, leave --------------------------------------------------------


async def test_invite_accept_sees_only_from_joining(sam, priya, jo, pool):
    cid = (await start(sam, priya, text="private to two"))["id"]
    response = await priya.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
    assert response.status_code == 201 and [p["username"] for p in response.json()["invited"]] == ["jo"]
    assert (await jo.client.get(f"/api/conversations/{cid}")).json()["my_state"] == "invited"
    assert (await jo.client.get(f"/api/conversations/{cid}/messages")).status_code == 404
    invited = (await jo.client.get("/api/conversations")).json()["items"][0]
    assert invited["last_message"] is None and invited["unread"] is True
    assert (await jo.client.post(f"/api/conversations/{cid}/accept")).status_code == 200
    await say(sam, cid, "welcome jo")
    assert await texts(jo, cid) == ["welcome jo"]
    changed = (await events(pool, "conversation.members_changed"))[-1]
    assert changed.added_ids == [jo.id] and sorted(changed.member_ids) == sorted([sam.id, priya.id, jo.id])
    again = await priya.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
    assert again.status_code == 409


async def test_decline_and_not_invited(sam, priya, jo):
    cid = (await start(sam, priya))["id"]
    await sam.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
    assert (await jo.client.post(f"/api/conversations/{cid}/decline")).status_code == 204
    assert (await jo.client.get(f"/api/conversations/{cid}")).status_code == 404
    assert (await jo.client.post(f"/api/conversations/{cid}/accept")).status_code == 404
    assert (await priya.client.post(f"/api/conversations/{cid}/accept")).status_code == 409


async def test_size_limit(sam, priya, jo, app, member_factory):
    with settings_changed(app, conversation_max_members=2):
        refused = await sam.client.post(
            "/api/conversations", json={"title": "t", "text": "x", "recipients": ["priya", "jo"]}
        )
        assert refused.status_code == 422
        cid = (await start(sam, priya))["id"]
        full = await sam.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
        assert full.status_code == 422 and full.json()["error"]["code"] == "conversation_full"


async def test_leave_keeps_what_was_said(sam, priya):
    cid = (await start(sam, priya, text="one"))["id"]
    assert (await priya.client.post(f"/api/conversations/{cid}/leave")).status_code == 204
    await say(sam, cid, "two")
    assert await texts(priya, cid) == ["one"]
    assert (await say(priya, cid, status=403))["error"]["code"] == "not_in_conversation"
    assert (await priya.client.post(f"/api/conversations/{cid}/leave")).status_code == 409
    invite = await priya.client.post(f"/api/conversations/{cid}/invitations", json={"username": "sam"})
    assert invite.status_code == 403


# --- limits and screening ---------------------------------------------------------------------------


async def test_new_conversations_per_day(sam, priya, app):
    with settings_changed(app, conversations_per_day=1, new_member_conversations_per_day=1):
        await start(sam, priya)
        refused = await start(sam, priya, status=429)
        assert "conversations today" in refused["error"]["message"]
        await start(sam, to_moderators=True)  # the moderators can always be reached


async def test_silenced_member_may_write_only_to_moderators(sam, priya, pool):
    await pool.execute(
        "UPDATE forum.users SET silenced_until = now() + interval '1 day', silenced_reason = 'cool off' WHERE id = $1",
        sam.id,
    )
    assert (await start(sam, priya, status=403))["error"]["code"] == "silenced"
    await start(sam, to_moderators=True)


async def test_blocked_word_refused_and_safeguarding_delivered(sam, priya, admin, pool):
    await admin.client.post("/api/admin/watched-words", json={"word": "badword", "action": "block"})
    refused = await start(sam, priya, text="this has badword", status=422)
    assert "text" in refused["error"]["fields"]
    started = await start(sam, priya, text="some nights I want to end my life")
    assert started["support"]["heading"]
    message = (await events(pool, "message.created"))[-1]
    assert message.sensitive is True and message.recipient_ids == [priya.id]
    item = await pool.fetchrow(
        "SELECT kind, priority FROM forum.reviewables WHERE message_id = $1", started["message"]["id"]
    )
    assert item["kind"] == "safeguarding_message"


# --- reports and what moderators see ------------------------------------------------------------------


async def test_report_opens_item_and_context_is_three_before(sam, priya, moderator, pool, app):
    cid = (await start(sam, priya, text="m0"))["id"]
    with settings_changed(app, posts_per_minute=10_000, new_member_posts_per_minute=10_000):
        for n in range(1, 6):
            await say(sam, cid, f"m{n}")
    last = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()["items"][-1]
    assert (await moderator.client.get(f"/api/conversations/{cid}/messages")).status_code == 404
    own = await sam.client.post(f"/api/messages/{last['id']}/flags", json={"reason": "spam"})
    assert own.status_code == 403
    report = await priya.client.post(f"/api/messages/{last['id']}/flags", json={"reason": "inappropriate"})
    assert report.status_code == 201, report.text
    again = await priya.client.post(f"/api/messages/{last['id']}/flags", json={"reason": "inappropriate"})
    assert again.status_code == 409
    assert (await priya.client.post(f"/api/messages/{last['id']}/flags", json={"reason": "x"})).status_code == 422
    item = await pool.fetchrow("SELECT * FROM forum.reviewables WHERE message_id = $1", last["id"])
    assert item["kind"] == "flagged_message" and item["status"] == "pending"
    from services.forum.messages import conversations

    async with forum_pool(app).acquire() as conn:
        shown = await conversations.reported_context(conn, moderator.session, last["id"])
        assert [r["raw"] for r in shown] == ["m2", "m3", "m4", "m5"]
        with pytest.raises(Exception) as refused:
            await conversations.reported_context(conn, moderator.session, shown[0]["id"])
        assert getattr(refused.value, "status", None) == 404
        with pytest.raises(Exception):
            await conversations.reported_context(conn, priya.session, last["id"])
    # still nothing else of the conversation for the moderator, admins included
    assert (await moderator.client.get(f"/api/conversations/{cid}")).status_code == 404


def forum_pool(app: Any) -> Any:
    return app.apps["forum"].state.runtime.pool


async def test_reactions_on_messages(sam, priya, jo):
    started = await start(sam, priya)
    mid = started["message"]["id"]
    given = await priya.client.put(f"/api/messages/{mid}/reactions/hug")
    assert given.status_code == 201 and given.json() == {"reactions": {"hug": 1}, "my_reactions": ["hug"]}
    assert (await priya.client.put(f"/api/messages/{mid}/reactions/hug")).status_code == 200
    assert (await priya.client.put(f"/api/messages/{mid}/reactions/angry")).status_code == 422
    assert (await jo.client.put(f"/api/messages/{mid}/reactions/hug")).status_code == 404
    assert (await priya.client.delete(f"/api/messages/{mid}/reactions/hug")).status_code == 204
    assert (await priya.client.delete(f"/api/messages/{mid}/reactions/hug")).status_code == 404


# --- the moderators' inbox --------------------------------------------------------------------------


async def test_moderators_inbox(sam, moderator, admin, priya, pool):
    started = await start(sam, title="I need help", text="Can someone talk?", to_moderators=True)
    cid = started["id"]
    created = (await events(pool, "conversation.created"))[-1]
    assert created.audience == [audience.conversation(cid), audience.STAFF] and created.with_moderators
    listed = (await moderator.client.get("/api/conversations/moderators")).json()["items"]
    assert [c["id"] for c in listed] == [cid]
    assert (await sam.client.get("/api/conversations/moderators")).status_code == 404
    answer = await say(moderator, cid, "We are here.")
    assert answer["author"]["display_name"] == "The moderators" and answer["author"]["sent_by"] == "mo"
    seen = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()["items"][-1]
    assert seen["author"] == {"id": None, "username": None, "display_name": "The moderators"}
    assert seen["from_moderators"] is True
    await say(admin, cid, "An admin too")
    assert (await priya.client.get(f"/api/conversations/{cid}")).status_code == 404
    invite = await sam.client.post(f"/api/conversations/{cid}/invitations", json={"username": "priya"})
    assert invite.status_code == 403
    message = (await events(pool, "message.created"))[-1]
    assert message.from_moderators and message.author_username == "The moderators"
    assert message.recipient_ids == [sam.id]


async def test_moderators_hide_a_reported_message_from_the_queue(sam, priya, moderator, pool, app):
    """The queue shows a reported message and the 3 before it; hiding it tells search and notify."""
    cid = (await start(sam, priya, text="said-0"))["id"]
    with settings_changed(app, posts_per_minute=10_000, new_member_posts_per_minute=10_000):
        for n in range(1, 5):
            await say(sam, cid, f"said-{n}")
    last = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()["items"][-1]
    report = await priya.client.post(f"/api/messages/{last['id']}/flags", json={"reason": "inappropriate"})
    review_id = report.json()["id"] and await pool.fetchval(
        "SELECT id FROM forum.reviewables WHERE message_id = $1", last["id"]
    )
    item = (await moderator.client.get(f"/api/review/{review_id}")).json()
    assert item["kind"] == "flagged_message" and item["post"]["raw"] == "said-4"
    assert [c["excerpt"] for c in item["context"]] == ["said-1", "said-2", "said-3"]
    assert item["actions"] == ["hide", "ignore"]
    page = await moderator.client.get("/review")
    assert page.status_code == 200 and "private conversation" in page.text and "said-3" in page.text
    assert "said-0" not in page.text
    hidden = await moderator.client.post(f"/api/review/{review_id}", json={"action": "hide", "reason": "Unkind"})
    assert hidden.status_code == 200, hidden.text
    event = (await events(pool, "message.hidden"))[-1]
    assert event.message_id == last["id"] and event.reason == "Unkind"
    seen = (await priya.client.get(f"/api/conversations/{cid}/messages")).json()["items"][-1]
    assert seen["status"] == "hidden" and seen["raw"] is None
    own = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()["items"][-1]
    assert own["raw"] == "said-4" and own["moderation_reason"] == "Unkind"


async def test_export_gives_messages_with_their_audience(sam, priya, moderator, app, settings, client):
    """The internal export (search rebuilds) lists messages with the conversation's audience; members get 401/403."""
    import httpx

    from shared.service_auth import service_headers

    cid = (await start(sam, priya, text="exported words"))["id"]
    mods = (await start(sam, to_moderators=True, text="to the moderators"))["id"]
    await say(moderator, mods, "answered")
    assert (await sam.client.get("/api/export/messages")).status_code in (401, 403)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=service_headers(settings)
    ) as http:
        items = (await http.get("/api/export/messages")).json()["items"]
    assert [(m["conversation_id"], m["text"]) for m in items] == [
        (cid, "exported words"),
        (mods, "to the moderators"),
        (mods, "answered"),
    ]
    assert items[0]["audience"] == [audience.conversation(cid)]
    assert items[2]["audience"] == [audience.conversation(mods), audience.STAFF]
    assert items[2]["author"]["display_name"] == "The moderators" and items[2]["author_id"] == moderator.id


@pytest.fixture
def roomy_messages(app):
    with settings_changed(app, posts_per_minute=10_000, new_member_posts_per_minute=10_000):
        yield


async def test_message_visible_sql_agrees_with_the_predicate(sam, priya, jo, moderator, app, roomy_messages):
    """access.MESSAGE_VISIBLE_SQL (lists) and access.message_visible (one message) say the same for every
    viewer: joined late, left, blocked an author, staff outside, staff reading the moderators' inbox."""
    from services.forum.messages import conversations
    from shared.web import ApiError

    cid = (await start(sam, priya, text="one"))["id"]
    await say(priya, cid, "two")
    await sam.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
    await jo.client.post(f"/api/conversations/{cid}/accept")
    await priya.client.put("/api/me/blocks/jo")
    await say(jo, cid, "three")
    await say(sam, cid, "four")
    await priya.client.post(f"/api/conversations/{cid}/leave")
    await say(sam, cid, "five")
    mods = (await start(sam, to_moderators=True, text="six"))["id"]
    await say(moderator, mods, "seven")
    expected = {
        "sam": ["one", "two", "three", "four", "five"],
        "priya": ["one", "two", "four"],
        "jo": ["three", "four", "five"],
    }
    async with app.apps["forum"].state.runtime.pool.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM forum.messages ORDER BY id")]
        for member in (sam, priya, jo, moderator):
            for conversation_id in (cid, mods):
                try:
                    found = await conversations.readable(conn, member.session, conversation_id)
                except ApiError:
                    listed: list[int] = []
                else:
                    rows, _ = await conversations.messages(conn, member.session, found)
                    listed = [r["id"] for r in rows]
                one_by_one = []
                for message_id in ids:
                    try:
                        row, _ = await conversations.readable_message(conn, member.session, message_id)
                    except ApiError:
                        continue
                    if row["conversation_id"] == conversation_id:
                        one_by_one.append(message_id)
                assert listed == one_by_one, (member.username, conversation_id)
            if member.username in expected:
                assert await texts(member, cid) == expected[member.username]
    assert await texts(moderator, mods) == ["six", "seven"]
    assert (await moderator.client.get(f"/api/conversations/{cid}/messages")).status_code == 404
