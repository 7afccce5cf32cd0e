"""New documents and upcoming webinars in the digest, and telling registered members when a webinar moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notify_helpers import parts

from services.notify import channels, digests, notifications, projections, writer
from shared import events as ev
from shared.web import Runtime

ALICE, BOB, CAROL = 1, 2, 3
PRIVATE_GROUP = 7


def _iso(at: datetime) -> str:
    return at.isoformat()


def folder(folder_id: int, *, name: str = "Guides", audience: list[str] | None = None) -> ev.FolderUpdated:
    return ev.FolderUpdated(folder_id=folder_id, parent_id=None, name=name, audience=audience or ["public"])


def document(document_id: int, *, folder_id: int, title: str, audience: list[str] | None = None) -> ev.DocumentUploaded:
    return ev.DocumentUploaded(
        document_id=document_id,
        folder_id=folder_id,
        document_version=1,
        title=title,
        description="",
        filename="guide.pdf",
        kind="pdf",
        size_bytes=1000,
        uploader_id=BOB,
        uploader_username="bob",
        audience=audience or ["public"],
        created_at=_iso(datetime.now(UTC)),
    )


def scheduled(webinar_id: int, *, title: str, starts_in: timedelta) -> ev.WebinarScheduled:
    starts = datetime.now(UTC) + starts_in
    return ev.WebinarScheduled(
        webinar_id=webinar_id,
        title=title,
        starts_at=_iso(starts),
        ends_at=_iso(starts + timedelta(hours=1)),
        topic_id=None,
        audience=["public"],
    )


def moved(webinar_id: int, *, title: str, starts_in: timedelta, sequence: int = 1) -> ev.WebinarUpdated:
    starts = datetime.now(UTC) + starts_in
    return ev.WebinarUpdated(
        webinar_id=webinar_id,
        title=title,
        starts_at=_iso(starts),
        ends_at=_iso(starts + timedelta(hours=1)),
        status="scheduled",
        sequence=sequence,
        audience=["public"],
    )


def took_a_seat(webinar_id: int, user_id: int, status: str = "registered") -> ev.WebinarRegistered:
    return ev.WebinarRegistered(webinar_id=webinar_id, user_id=user_id, status=status, audience=["staff"])


async def _members_a_week_old(world) -> None:
    await world.join(ALICE, "alice")
    await world.join(BOB, "bob")
    await world.join(CAROL, "carol", group_ids=[PRIVATE_GROUP])
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '8 days'")


def _ctx(world, mail_settings) -> dict:
    rt = world.rt
    return {"runtime": Runtime(mail_settings, rt.pool, rt.redis, rt.sessions, rt.extras), "job_try": 1}


async def _send(world, mail_settings, user_id: int, key: str) -> str:
    # A fresh activity index each time: the worker's shared one is read again only every few minutes.
    async with world.pool.acquire() as conn:
        index = await digests.ActivityIndex.load(conn, datetime.now(UTC))
    return await digests.send_digest(_ctx(world, mail_settings), user_id, key, index=index)


async def test_a_digest_holds_new_visible_documents_and_upcoming_webinars(world, smtp, mail_settings):
    await _members_a_week_old(world)
    await world.emit(
        folder(1, name="Guides"),
        folder(2, name="Group papers", audience=[f"group:{PRIVATE_GROUP}"]),
        document(10, folder_id=1, title="Grounding <script>alert(1)</script>\nhttp://evil.example"),
        document(20, folder_id=2, title="Private minutes"),
        scheduled(5, title="Safe supervision & you", starts_in=timedelta(days=12)),
        scheduled(6, title="Called off", starts_in=timedelta(days=3)),
        scheduled(7, title="Too far ahead", starts_in=timedelta(days=45)),
    )
    await world.emit(
        ev.WebinarCancelled(webinar_id=6, title="Called off", starts_at=_iso(datetime.now(UTC)), audience=["public"])
    )

    assert await _send(world, mail_settings, ALICE, "k1") == "sent"
    [message] = smtp[0].to("alice@example.org")
    assert message["Subject"] == "Your weekly tica summary: 2 things to catch up on"
    text, html = parts(message)
    base = mail_settings.public_url
    for body in (text, html):
        assert f"{base}/library/documents/10" in body and f"{base}/webinars/5" in body
        assert "Private minutes" not in body and "/library/documents/20" not in body, "a private folder stays private"
        assert "Called off" not in body and "/webinars/6" not in body, "a cancelled webinar is left out"
        assert "Too far ahead" not in body, "only the next 30 days"
    assert "NEW IN THE LIBRARY" in text and "UPCOMING WEBINARS" in text
    assert "Grounding <script>alert(1)</script> http://evil.example, in Guides" in text, "a title stays on one line"
    assert "<script>" not in html and "Grounding &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Safe supervision &amp; you" in html

    # Carol is in the group: she sees the private folder's document.
    assert await _send(world, mail_settings, CAROL, "k1") == "sent"
    carol_text, _ = parts(smtp[0].to("carol@example.org")[0])
    assert "Private minutes" in carol_text and f"{base}/library/documents/20" in carol_text


async def test_nothing_new_sends_nothing_and_a_webinar_is_not_told_again(world, smtp, mail_settings):
    await _members_a_week_old(world)
    assert await _send(world, mail_settings, ALICE, "k0") == "nothing new"
    assert smtp[0].messages == []

    await world.emit(scheduled(5, title="Trauma and sleep", starts_in=timedelta(days=12)))
    assert await _send(world, mail_settings, ALICE, "k1") == "sent"
    # Next time: the same upcoming webinar (not within a week yet), nothing else new.
    assert await _send(world, mail_settings, ALICE, "k2") == "nothing new"
    assert len(smtp[0].to("alice@example.org")) == 1

    # Once it comes within a week of starting, one reminder.
    # (As if a few days passed: announced three days ago, the last digest two days ago, starting in six.)
    await world.pool.execute(
        "UPDATE notify.webinars SET starts_at = now() + interval '6 days', announced_at = now() - interval '3 days'"
    )
    await world.pool.execute("UPDATE notify.digests SET last_sent_at = now() - interval '2 days'")
    assert await _send(world, mail_settings, ALICE, "k3") == "sent"
    text, _ = parts(smtp[0].to("alice@example.org")[-1])
    assert "Trauma and sleep" in text and "(coming up this week)" in text
    assert await _send(world, mail_settings, ALICE, "k4") == "nothing new", "reminded once"


async def test_a_moved_webinar_tells_registered_members_once(world):
    await _members_a_week_old(world)
    await world.emit(scheduled(5, title="Trauma and sleep", starts_in=timedelta(days=12)))
    await world.emit(took_a_seat(5, ALICE), took_a_seat(5, CAROL, "waiting"))

    # A title-only change is not a move: no one is told.
    same = await world.pool.fetchrow("SELECT starts_at, ends_at FROM notify.webinars WHERE id = 5")
    await world.emit(
        ev.WebinarUpdated(
            webinar_id=5,
            title="Trauma and rest",
            starts_at=_iso(same["starts_at"]),
            ends_at=_iso(same["ends_at"]),
            status="scheduled",
            sequence=1,
            audience=["public"],
        )
    )
    assert await world.notifications(ALICE) == []

    [envelope] = await world.emit(moved(5, title="Trauma and rest", starts_in=timedelta(days=14), sequence=2))
    # The same event handled twice (redelivered): one notification each.
    async with world.pool.acquire() as conn, conn.transaction():
        await projections.apply(conn, envelope, envelope.event())
        await writer.write_notifications(conn, envelope, envelope.event())
    for user_id in (ALICE, CAROL):
        [note] = await world.notifications(user_id)
        assert note["kind"] == "webinar_changed"
        shown = notifications.notification_json({**note, "title": None, "slug": None})
        assert shown["url"] == "/webinars/5"
        assert "Trauma and rest" in shown["text"] and "has changed" in shown["text"]
    assert await world.notifications(BOB) == [], "not registered: not told"

    await world.emit(
        ev.WebinarCancelled(
            webinar_id=5, title="Trauma and rest", starts_at=_iso(same["starts_at"]), audience=["public"]
        )
    )
    kinds = [n["kind"] for n in await world.notifications(ALICE)]
    assert kinds == ["webinar_changed", "webinar_cancelled"]


async def test_a_member_who_gave_up_their_place_is_not_told_of_a_move(world):
    """Giving a place up (webinar.registered with status cancelled) stops the webinar's notices."""
    await _members_a_week_old(world)
    await world.emit(scheduled(6, title="Grounding at work", starts_in=timedelta(days=12)))
    await world.emit(took_a_seat(6, ALICE), took_a_seat(6, CAROL))
    await world.emit(took_a_seat(6, CAROL, "cancelled"))
    await world.emit(moved(6, title="Grounding at work", starts_in=timedelta(days=13), sequence=1))
    assert [n["kind"] for n in await world.notifications(ALICE)] == ["webinar_changed"]
    assert await world.notifications(CAROL) == []


def test_a_registration_is_never_sent_on_live_channels():
    """webinar.registered is staff-only (who registered): no live channel carries it."""
    assert channels.live_messages(ev.Envelope.wrap(took_a_seat(5, ALICE), actor_id=ALICE)) == []
