"""Private messages as notify tells them (issue 15, point 7): one notification per member and
conversation, counted up and marked unread again; "the moderators" as sender; invitations; nothing
more for a member who left; email per the member's choice, quoting a message only when it may
(a real SMTP server)."""

from __future__ import annotations

from typing import Any

from notify_helpers import now_iso, parts

from services.notify import notification_mail, writer
from services.notify.notifications import describe, live_stream_name, target_url
from services.notify.worker import create_worker
from shared import audience
from shared import events as ev

SAM, ALEX, RUTH, MO = 1, 2, 3, 4
CONVERSATION = 50
_message_ids = iter(range(500, 10_000))


def message(
    author_id: int,
    text: str = "Thank you for listening yesterday.",
    *,
    recipients: tuple[int, ...] = (ALEX,),
    author_username: str | None = None,
    message_id: int | None = None,
    sensitive: bool = False,
    with_moderators: bool = False,
    from_moderators: bool = False,
    conversation_id: int = CONVERSATION,
) -> ev.MessageCreated:
    names = {SAM: "sam", ALEX: "alex", RUTH: "ruth", MO: "mo"}
    return ev.MessageCreated(
        message_id=message_id or next(_message_ids),
        conversation_id=conversation_id,
        author_id=author_id,
        author_username=author_username or names.get(author_id, "someone"),
        title="Night shifts",
        text=text,
        created_at=now_iso(),
        recipient_ids=list(recipients),
        with_moderators=with_moderators,
        audience=[audience.conversation(conversation_id)],
        from_moderators=from_moderators,
        sensitive=sensitive,
    )


def members_changed(
    *, members: list[int], added: tuple[int, ...] = (), removed: tuple[int, ...] = (), invited: tuple[int, ...] = ()
) -> ev.ConversationMembersChanged:
    return ev.ConversationMembersChanged(
        conversation_id=CONVERSATION,
        member_ids=list(members),
        with_moderators=False,
        audience=[audience.conversation(CONVERSATION)],
        added_ids=list(added),
        removed_ids=list(removed),
        invited_ids=list(invited),
    )


async def _people(world) -> None:
    await world.join(SAM, "sam")
    await world.join(ALEX, "alex")
    await world.join(RUTH, "ruth")
    await world.join(MO, "mo", roles=["member", "moderator"])


def _told(row: Any) -> tuple[str, str | None]:
    data = dict(row["data"])
    return describe(row["kind"], data, None), target_url(row["kind"], None, None, None, data)


async def test_messages_in_one_conversation_make_one_notification_that_counts_up(world):
    await _people(world)
    first = message(SAM, recipients=(ALEX, RUTH))
    await world.emit(first)
    [row] = await world.notifications(ALEX)
    assert _told(row) == (
        "sam sent you a message in “Night shifts”",
        f"/messages/{CONVERSATION}#message-{first.message_id}",
    )
    assert row["actor_id"] == SAM
    await world.emit(message(SAM, recipients=(ALEX, RUTH)), message(RUTH, recipients=(ALEX, SAM)))
    [row] = await world.notifications(ALEX)
    assert _told(row) == (
        "3 new messages from ruth and sam in “Night shifts”",
        f"/messages/{CONVERSATION}#message-{first.message_id}",
    ), "the link stays on the first unread message"
    assert row["read_at"] is None


async def test_a_message_handled_twice_counts_once_and_a_read_one_starts_again(world):
    await _people(world)
    first = message(SAM)
    envelopes = await world.emit(first)
    envelope = envelopes[0]
    async with world.pool.acquire() as conn, conn.transaction():
        await writer.write_notifications(conn, envelope, first)
    [row] = await world.notifications(ALEX)
    assert row["data"]["count"] == 1
    await world.pool.execute("UPDATE notify.notifications SET read_at = now() WHERE user_id = $1", ALEX)
    again = message(SAM)
    await world.emit(again)
    [row] = await world.notifications(ALEX)
    assert row["read_at"] is None and row["data"]["count"] == 1
    assert row["data"]["message_id"] == again.message_id


async def test_writing_in_a_conversation_reads_its_notification(world):
    await _people(world)
    await world.emit(message(SAM, recipients=(ALEX,)))
    [row] = await world.notifications(ALEX)
    assert row["read_at"] is None
    await world.emit(message(ALEX, recipients=(SAM,)))
    [row] = await world.notifications(ALEX)
    assert row["read_at"] is not None, "alex answered: they have read it"
    assert "excerpt" not in row["data"], "a read one keeps no words"
    counts = await world.redis.xrange(live_stream_name(world.settings.redis_prefix))
    last_for_alex = [fields for _, fields in counts if fields[b"u"] == str(ALEX).encode()][-1]
    assert last_for_alex[b"n"] == b"0", "the unread count went out live"


def read(user_id: int, message_id: int) -> ev.ConversationRead:
    return ev.ConversationRead(
        user_id=user_id, conversation_id=CONVERSATION, message_id=message_id, audience=[audience.user(user_id)]
    )


async def test_reading_the_conversation_reads_its_notification_unless_newer_messages_came(world):
    await _people(world)
    first, second = message(SAM), message(SAM)
    await world.emit(first, second)
    await world.emit(read(ALEX, first.message_id))
    [row] = await world.notifications(ALEX)
    assert row["read_at"] is None, "read only up to the first: the second is still new"
    await world.emit(read(ALEX, second.message_id), read(ALEX, second.message_id))
    [row] = await world.notifications(ALEX)
    assert row["read_at"] is not None and "excerpt" not in row["data"]
    await world.emit(read(RUTH, second.message_id))
    assert await world.notifications(RUTH) == [], "nothing to read: nothing made"


async def test_from_the_moderators_names_the_moderators_and_a_message_to_them_tells_them(world):
    await _people(world)
    await world.emit(message(MO, recipients=(SAM,), author_username="mo", with_moderators=True, from_moderators=True))
    [row] = await world.notifications(SAM)
    assert _told(row)[0] == "the moderators sent you a message in “Night shifts”"
    assert row["actor_id"] is None, "which moderator wrote is not told"
    assert await world.notifications(MO) == []
    await world.emit(message(SAM, recipients=(), with_moderators=True))
    [row] = await world.notifications(MO)
    assert _told(row)[0] == "sam sent you a message in “Night shifts”, to the moderators"
    await world.join(5, "meg", roles=["member", "moderator"])
    await world.emit(message(SAM, recipients=(), with_moderators=True))
    assert [r["read_at"] for r in await world.notifications(5)] == [None]
    await world.emit(message(MO, recipients=(SAM,), with_moderators=True, from_moderators=True))
    assert [r["read_at"] is not None for r in await world.notifications(5)] == [True], "mo answered for them all"


async def test_a_member_who_muted_the_author_is_not_told(world):
    await _people(world)
    await world.emit(ev.UserMuted(user_id=ALEX, muted_user_id=SAM, level="muted"))
    await world.emit(message(SAM, recipients=(ALEX, RUTH)))
    assert await world.notifications(ALEX) == []
    assert len(await world.notifications(RUTH)) == 1


async def test_an_invitation_is_told_and_leaving_takes_the_conversation_away(world):
    await _people(world)
    await world.emit(members_changed(members=[SAM, ALEX], invited=(RUTH,)), actor_id=SAM)
    [row] = await world.notifications(RUTH)
    assert _told(row) == ("sam invited you to a conversation", f"/messages/{CONVERSATION}")
    await world.emit(members_changed(members=[SAM, ALEX, RUTH], added=(RUTH,)), actor_id=RUTH)
    await world.emit(message(SAM, recipients=(ALEX, RUTH)))
    assert len(await world.notifications(RUTH)) == 2
    await world.emit(members_changed(members=[SAM, ALEX], removed=(RUTH,)), actor_id=RUTH)
    assert await world.notifications(RUTH) == [], "nothing of a conversation they left stays"
    assert len(await world.notifications(ALEX)) == 1


async def _away_with_mail(world) -> None:
    await world.pool.execute("UPDATE notify.users SET last_seen_at = NULL")


async def _run_worker(settings) -> None:
    worker = create_worker(settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_message_is_emailed_when_away_quoted_unless_sensitive(world, smtp, mail_settings):
    await _people(world)
    await _away_with_mail(world)
    await world.emit(message(SAM, "Shall we talk on Thursday about the rota?"))
    await _run_worker(mail_settings)
    sink = smtp[0]
    [mail] = sink.to("alex@example.org")
    assert mail["Subject"] == "sam sent you a message in “Night shifts”"
    assert "message" in mail["List-Unsubscribe"]
    text, html = parts(mail)
    for body in (text, html):
        assert "Shall we talk on Thursday about the rota?" in body
        assert f"http://testserver/messages/{CONVERSATION}#message-" in body
    [row] = await world.notifications(ALEX)
    assert "excerpt" not in row["data"], "a message's words are kept only until its email is sent"
    await world.emit(message(SAM, "Some nights I want to end my life", sensitive=True))
    await _run_worker(mail_settings)
    second = sink.to("alex@example.org")[1]
    assert second["Subject"] == "2 new messages from sam in “Night shifts”"
    for body in parts(second):
        assert "end my life" not in body and "Shall we talk" not in body
        assert "Night shifts" in body and f"/messages/{CONVERSATION}#message-" in body


async def test_message_mail_follows_the_preference(world, smtp, mail_ctx):
    await _people(world)
    await _away_with_mail(world)
    await world.pool.execute("INSERT INTO notify.preferences (user_id, email_on_message) VALUES ($1, 'never')", ALEX)
    sent = message(SAM)
    await world.emit(sent)
    [row] = await world.notifications(ALEX)
    version = f"message-{sent.message_id}"
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], version) is False
    await world.pool.execute("UPDATE notify.preferences SET email_on_message = 'away' WHERE user_id = $1", ALEX)
    await world.seen(ALEX)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], version) is False, "here now"
    await world.pool.execute("UPDATE notify.preferences SET email_on_message = 'always' WHERE user_id = $1", ALEX)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], "message-1") is False, "an old one"
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], version) is True
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], version) is False, "sent once"
    assert len(smtp[0].messages) == 1


async def test_a_hidden_message_is_no_longer_quoted(world, smtp, mail_ctx):
    await _people(world)
    await _away_with_mail(world)
    sent = message(SAM, "Words a moderator later hid")
    await world.emit(sent)
    await world.emit(
        ev.MessageHidden(message_id=sent.message_id, conversation_id=CONVERSATION, author_id=SAM, reason="x")
    )
    [row] = await world.notifications(ALEX)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], f"message-{sent.message_id}") is True
    for body in parts(smtp[0].messages[0]):
        assert "Words a moderator later hid" not in body


async def test_the_api_and_page_say_it_and_lead_to_the_message(world, member_factory):
    """What the member reads in GET /api/notifications and on /notifications, and where it leads."""
    alex = await member_factory("alex")
    sam = await member_factory("sam")
    await world.join(alex.id, "alex")
    await world.join(sam.id, "sam")
    sent = message(sam.id, recipients=(alex.id,), author_username="sam")
    await world.emit(sent)
    listed = (await alex.client.get("/api/notifications")).json()
    [item] = listed["items"]
    assert listed["unread"] == 1
    assert item["kind"] == "message" and item["text"] == "sam sent you a message in “Night shifts”"
    assert item["url"] == f"/messages/{CONVERSATION}#message-{sent.message_id}"
    assert item["actor"] == {"id": sam.id, "username": "sam"}
    assert item["data"]["conversation_id"] == CONVERSATION and item["data"]["count"] == 1
    assert "excerpt" not in item["data"], "the words stay out of the list"
    page = await alex.client.get("/notifications")
    assert page.status_code == 200 and "sam sent you a message in" in page.text
    followed = await alex.client.get(f"/notifications/{item['id']}", follow_redirects=False)
    assert followed.status_code == 303 and followed.headers["location"] == item["url"]
