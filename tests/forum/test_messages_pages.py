"""The pages of private messages, without JavaScript: inbox, new message, conversation (reply, invite,
accept, leave, react, report), the fragment after a message, the moderators' inbox, who may message me."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def sam(member_factory):
    return await member_factory("sam")


@pytest.fixture
async def priya(member_factory):
    return await member_factory("priya")


def form(member: Any, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": member.session.csrf, **fields}


async def send_new(member: Any, **fields: Any) -> Any:
    return await member.client.post("/messages/new", data=form(member, **fields))


async def test_new_message_to_conversation_and_inbox(sam, priya):
    page = await sam.client.get("/messages/new?to=priya")
    assert page.status_code == 200 and 'value="priya"' in page.text
    sent = await send_new(sam, recipients="priya", title="Hello Priya", text="How are *you*?")
    assert sent.status_code == 303
    url = sent.headers["location"].split("#")[0]
    conversation = await sam.client.get(url)
    assert conversation.status_code == 200
    assert 'id="messages"' in conversation.text and 'data-live-channel="conversation:' in conversation.text
    assert "<em>you</em>" in conversation.text
    inbox = await priya.client.get("/messages")
    assert "Hello Priya" in inbox.text and "New" in inbox.text
    await priya.client.get(url)  # reading it marks it read
    assert "tica-conversation--unread" not in (await priya.client.get("/messages")).text


async def test_opening_a_conversation_tells_notify_once_it_was_read(sam, priya, pool):
    """conversation.read is written when the read mark advances (notify then reads the notification),
    not on every visit."""
    sent = await send_new(sam, recipients="priya", title="Hello Priya", text="How are you?")
    url = sent.headers["location"].split("#")[0]
    cid = int(url.split("/")[2].split("?")[0])
    reads = "SELECT payload->'data' AS data FROM forum.outbox WHERE type = 'conversation.read' ORDER BY id"
    await priya.client.get(url)
    await priya.client.get(url)
    [read] = [dict(row["data"]) for row in await pool.fetch(reads) if row["data"]["user_id"] == priya.id]
    last = await pool.fetchval("SELECT max(id) FROM forum.messages WHERE conversation_id = $1", cid)
    assert read["conversation_id"] == cid and read["message_id"] == last
    assert read["audience"] == [f"user:{priya.id}"]


async def test_new_message_errors_keep_what_was_typed(sam, priya):
    await priya.client.post("/account/messages", data=form(priya, who_may_message="nobody"))
    refused = await send_new(sam, recipients="priya", title="Hi", text="Kept words")
    assert refused.status_code == 403 and "not taking new messages" in refused.text and "Kept words" in refused.text
    missing = await send_new(sam, recipients="", title="", text="")
    assert missing.status_code == 422 and "There is a problem" in missing.text
    bad_csrf = await sam.client.post("/messages/new", data={"csrf_token": "nope", "title": "x"})
    assert bad_csrf.status_code == 403


async def test_reply_react_report_and_fragment(sam, priya, pool):
    sent = await send_new(sam, recipients="priya", title="Plans", text="First")
    cid = int(sent.headers["location"].split("/")[2].split("#")[0].split("?")[0])
    replied = await priya.client.post(f"/messages/{cid}", data=form(priya, text="Second"))
    assert replied.status_code == 303
    first_id = await pool.fetchval("SELECT min(id) FROM forum.messages WHERE conversation_id = $1", cid)
    fragment = await sam.client.get(f"/messages/{cid}/after/{first_id}")
    assert fragment.status_code == 200 and "Second" in fragment.text and "First" not in fragment.text
    assert f'id="message-{first_id + 1}"' in fragment.text
    assert (await sam.client.post(f"/messages/{cid}", data=form(sam, text="  "))).status_code == 422
    reacted = await priya.client.post(f"/messages/{cid}/messages/{first_id}/react", data=form(priya, kind="hug"))
    assert reacted.status_code == 303
    assert await pool.fetchval("SELECT reactions FROM forum.messages WHERE id = $1", first_id) == {"hug": 1}
    page = await priya.client.get(f"/messages/{cid}/messages/{first_id}/report")
    assert page.status_code == 200 and "3 messages before it" in page.text
    no_reason = await priya.client.post(f"/messages/{cid}/messages/{first_id}/report", data=form(priya))
    assert no_reason.status_code == 422
    reported = await priya.client.post(
        f"/messages/{cid}/messages/{first_id}/report", data=form(priya, reason="inappropriate")
    )
    assert reported.status_code == 303
    assert await pool.fetchval("SELECT kind FROM forum.reviewables WHERE message_id = $1", first_id) == (
        "flagged_message"
    )


async def test_outsider_gets_404(sam, priya, member_factory):
    sent = await send_new(sam, recipients="priya", title="Ours", text="Private")
    url = sent.headers["location"].split("#")[0]
    jo = await member_factory("jo")
    assert (await jo.client.get(url)).status_code == 404
    admin = await member_factory("ada", roles=("member", "admin"))
    assert (await admin.client.get(url)).status_code == 404
    assert (await sam.client.get("/messages/moderators")).status_code == 404


async def test_invite_accept_and_leave(sam, priya, member_factory):
    jo = await member_factory("jo")
    sent = await send_new(sam, recipients="priya", title="Group", text="Hello")
    cid = int(sent.headers["location"].split("/")[2].split("#")[0].split("?")[0])
    invited = await sam.client.post(f"/messages/{cid}/invite", data=form(sam, username="jo"))
    assert invited.status_code == 303
    invitation = await jo.client.get(f"/messages/{cid}")
    assert "Accept" in invitation.text and "Hello" not in invitation.text
    assert (await jo.client.post(f"/messages/{cid}/accept", data=form(jo))).status_code == 303
    nobody = await sam.client.post(f"/messages/{cid}/invite", data=form(sam, username="nobody-at-all"))
    assert nobody.status_code == 422
    left = await priya.client.post(f"/messages/{cid}/leave", data=form(priya))
    assert left.status_code == 303 and left.headers["location"] == "/messages?done=left"
    assert "You left" in (await priya.client.get("/messages")).text


async def test_moderators_inbox_and_safeguarding_support(sam, member_factory):
    mo = await member_factory("mo", roles=("member", "moderator"))
    sent = await send_new(sam, to_moderators="1", title="Struggling", text="I want to end my life")
    assert "support=1" in sent.headers["location"]
    page = await sam.client.get(sent.headers["location"].split("#")[0])
    assert 'id="support-panel"' in page.text
    inbox = await mo.client.get("/messages/moderators")
    assert inbox.status_code == 200 and "Struggling" in inbox.text
    cid = int(sent.headers["location"].split("/")[2].split("#")[0].split("?")[0])
    assert (await mo.client.post(f"/messages/{cid}", data=form(mo, text="We are here for you"))).status_code == 303
    seen = await sam.client.get(f"/messages/{cid}")
    assert "The moderators" in seen.text and "written by mo" not in seen.text
    assert "written by mo" in (await mo.client.get(f"/messages/{cid}")).text


async def test_settings_and_blocks(sam, priya):
    page = await sam.client.get("/account/messages")
    assert page.status_code == 200 and 'value="anyone" checked' in page.text
    saved = await sam.client.post("/account/messages", data=form(sam, who_may_message="talked"))
    assert saved.status_code == 303
    assert 'value="talked" checked' in (await sam.client.get("/account/messages")).text
    assert (await sam.client.post("/account/messages", data=form(sam, who_may_message="x"))).status_code == 422
    blocked = await sam.client.post("/account/messages/block", data=form(sam, username="priya"))
    assert blocked.status_code == 303
    assert "@priya" in (await sam.client.get("/account/messages")).text
    await sam.client.post("/account/messages/unblock", data=form(sam, username="priya"))
    assert "You have not blocked anyone" in (await sam.client.get("/account/messages")).text


async def test_visitor_is_sent_to_log_in(client):
    response = await client.get("/messages")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_profile_and_post_links(sam, priya, member_factory):
    """A profile offers a message and block; a post offers "Message the author", never for an anonymous one."""
    from moderation_helpers import new_category, new_topic

    admin = await member_factory("ada", roles=("member", "admin"))
    profile = await sam.client.get("/u/priya")
    assert "/messages/new?to=priya" in profile.text and "Block Priya" in profile.text
    assert "/messages/new?to=sam" not in (await sam.client.get("/u/sam")).text
    await sam.client.post("/account/messages/block", data=form(sam, username="priya"))
    assert "You blocked Priya" in (await sam.client.get("/u/priya")).text
    assert "Block Sam" in (await priya.client.get("/u/sam")).text  # nothing says priya is blocked
    category = await new_category(admin, allow_anonymous=True)
    topic = await new_topic(priya, category["id"], title="A topic by priya", body="Hello all")
    page = await sam.client.get(f"/t/{topic['slug']}/{topic['id']}")
    assert "/messages/new?to=priya" in page.text and "Message the author" in page.text
    hidden = await new_topic(priya, category["id"], title="Anonymous words", body="Quietly", anonymous=True)
    page = await sam.client.get(f"/t/{hidden['slug']}/{hidden['id']}")
    assert "Message the author" not in page.text and "to=priya" not in page.text


async def test_header_counts_conversations_with_something_new(sam, priya):
    await send_new(sam, recipients="priya", title="Hello", text="Hi")
    page = await priya.client.get("/messages")
    assert 'id="tica-message-count">1<' in page.text
    assert 'id="tica-message-count"' not in (await sam.client.get("/messages")).text


async def test_first_unread_message_is_marked(sam, priya):
    sent = await send_new(sam, recipients="priya", title="Marks", text="First words")
    url = sent.headers["location"].split("#")[0]
    page = await priya.client.get(url)
    assert page.text.count('id="first-unread"') == 1
    assert 'id="first-unread"' not in (await priya.client.get(url)).text  # read now
    assert 'id="first-unread"' not in (await sam.client.get(url)).text  # their own


async def test_members_are_told_who_can_read_their_messages(client, sam):
    """The guidelines say who reads private messages (a reported message and the three before it, the
    moderators' inbox), and the messaging settings link there."""
    guidelines = (await client.get("/guidelines")).text
    assert 'id="private-messages"' in guidelines
    assert "the three messages before it" in guidelines and "cannot read your conversations" in guidelines
    settings = (await sam.client.get("/account/messages")).text
    assert 'href="/guidelines#private-messages"' in settings
