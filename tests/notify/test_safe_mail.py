"""Mail never quotes what it must not (issue 15, point 3): a post that matched a safeguarding phrase,
is hidden, is waiting for a moderator, or carries a content note. Posts are written through the
forum's API (its screening decides what is sensitive or held), its events reach notify, and the
digest and notification mails go through a real SMTP server: text and HTML parts both checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from notify_helpers import category, drain, parts, post, topic

from services.allinone import AllInOne
from services.notify import digests, notification_mail
from shared import events as ev
from shared.web import Runtime

ORDINARY_FIRST = "Our team tried grounding exercises before handover"
ORDINARY_REPLY = "Welcome, the first month is the hardest part"
SENSITIVE_REPLY = "Some nights I still think I want to end my life"
SENSITIVE_FIRST = "I keep thinking I might kill myself after the inquest"
HIDDEN_REPLY = "Buy discount pills from my shop today"
PENDING_REPLY = "Waiting words the moderators have not approved"
NOTED_REPLY = "When my brother died the grief was physical"


@contextmanager
def forum_settings(app: AllInOne, **changes: Any) -> Iterator[None]:
    """Run with some forum settings changed (limits, review of new members), restored afterwards."""
    rt = app.apps["forum"].state.runtime
    before = rt.settings
    rt.settings = before.replace(**changes)
    try:
        yield
    finally:
        rt.settings = before


async def _relay(world) -> None:
    """Publish what the forum wrote to its outbox, and let notify's writer handle it."""
    await ev.Relay(
        world.pool,
        world.redis,
        ev.stream_name(world.settings.redis_prefix),
        "forum.outbox",
        maxlen=world.settings.stream_maxlen,
    ).publish_all()
    await drain(world.consumer)


async def _posted(member, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await member.client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


async def _forum_activity(app, world, member_factory) -> dict[str, Any]:
    """Alice's topic with an ordinary, a sensitive, a hidden, a waiting and a content-noted reply;
    Bob's topics: an ordinary one and one whose first post matched a safeguarding phrase."""
    admin = await member_factory("ada", roles=("member", "admin"))
    alice, bob, carol = [await member_factory(name) for name in ("alice", "bob", "carol")]
    newcomer = await member_factory("nell")
    for member in (admin, alice, bob, carol, newcomer):
        await world.join(member.id, member.username, roles=list(member.session.roles))
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '8 days'")
    with forum_settings(
        app,
        posts_per_minute=10_000,
        new_member_posts_per_minute=10_000,
        topics_per_day=10_000,
        new_member_topics_per_day=10_000,
    ):
        general = await _posted(admin, "/api/categories", {"name": "General"})
        mine = await _posted(
            alice, "/api/topics", {"category_id": general["id"], "title": "My first month", "body": "It was a lot."}
        )
        await _posted(bob, f"/api/topics/{mine['id']}/posts", {"body": ORDINARY_REPLY})
        sensitive = await _posted(carol, f"/api/topics/{mine['id']}/posts", {"body": SENSITIVE_REPLY})
        assert "support" in sensitive, "the forum saw the safeguarding phrase"
        hidden = await _posted(bob, f"/api/topics/{mine['id']}/posts", {"body": HIDDEN_REPLY})
        moderated = await admin.client.post(f"/api/posts/{hidden['id']}/hide", json={"reason": "Advertising"})
        assert moderated.status_code == 200, moderated.text
        await _posted(carol, f"/api/topics/{mine['id']}/posts", {"body": NOTED_REPLY, "content_note": "bereavement"})
        with forum_settings(app, new_member_review_posts=5):
            pending = await _posted(newcomer, f"/api/topics/{mine['id']}/posts", {"body": PENDING_REPLY}, status=202)
        await _posted(
            bob, "/api/topics", {"category_id": general["id"], "title": "Handover rituals", "body": ORDINARY_FIRST}
        )
        await _posted(
            carol, "/api/topics", {"category_id": general["id"], "title": "After the inquest", "body": SENSITIVE_FIRST}
        )
    await _relay(world)
    return {"alice": alice, "bob": bob, "carol": carol, "sensitive": sensitive, "pending": pending, "topic": mine}


def _ctx(world, mail_settings) -> dict[str, Any]:
    rt = world.rt
    return {"runtime": Runtime(mail_settings, rt.pool, rt.redis, rt.sessions, rt.extras), "job_try": 1}


async def test_the_forum_marks_a_post_that_matched_a_safeguarding_phrase_and_notify_keeps_it(
    app, world, member_factory
):
    activity = await _forum_activity(app, world, member_factory)
    created = {
        e.post_id: e
        for e in (
            ev.Envelope(**row["payload"]).event()
            for row in await world.pool.fetch("SELECT payload FROM forum.outbox WHERE type = 'post.created'")
        )
    }
    assert created[activity["sensitive"]["id"]].sensitive is True
    assert [e.sensitive for e in created.values()].count(True) == 2, "the reply and the topic's first post"
    assert activity["pending"]["id"] not in created, "a waiting post sends no event at all"
    flags = dict(await world.pool.fetch("SELECT id, sensitive FROM notify.posts"))
    assert flags[activity["sensitive"]["id"]] is True
    assert sum(flags.values()) == 2


async def test_a_digest_quotes_only_what_it_may(app, world, member_factory, smtp, mail_settings):
    """Alice's digest: the ordinary reply and topic are quoted; the sensitive, hidden, waiting and
    content-noted posts are not (their words absent from both parts), titles, the note and links are."""
    activity = await _forum_activity(app, world, member_factory)
    alice = activity["alice"]
    result = await digests.send_digest(_ctx(world, mail_settings), alice.id, "safe", force=True)
    assert result == "sent"
    [message] = smtp[0].to("alice@example.org")
    text, html = parts(message)
    for body in (text, html, str(message["Subject"])):
        for words in (SENSITIVE_REPLY, SENSITIVE_FIRST, HIDDEN_REPLY, PENDING_REPLY, NOTED_REPLY):
            assert words not in body
        for fragment in ("end my life", "kill myself", "discount pills", "not approved", "grief was physical"):
            assert fragment not in body
    for body in (text, html):
        assert ORDINARY_REPLY in body, "an ordinary reply is quoted"
        assert ORDINARY_FIRST in body, "an ordinary topic's first post is quoted"
        assert "My first month" in body and "After the inquest" in body and "Handover rituals" in body
        assert "Content note: bereavement" in body
        assert f"/p/{activity['sensitive']['id']}" in body, "a sensitive reply still has its title and link"
        assert "to read it when you are ready" in body


async def test_a_notification_mail_about_a_sensitive_reply_gives_the_title_and_a_link(
    app, world, member_factory, smtp, mail_ctx
):
    activity = await _forum_activity(app, world, member_factory)
    alice = activity["alice"]
    await world.pool.execute("UPDATE notify.users SET last_seen_at = NULL")
    await world.pool.execute(
        "INSERT INTO notify.preferences (user_id, email_on_watched) VALUES ($1, 'always')", alice.id
    )
    rows = await world.pool.fetch(
        "SELECT id, post_id FROM notify.notifications WHERE user_id = $1 AND kind = 'posted' ORDER BY id", alice.id
    )
    by_post = {row["post_id"]: row["id"] for row in rows}
    sensitive_id = activity["sensitive"]["id"]
    assert await notification_mail.send_notification_mail(mail_ctx, by_post[sensitive_id]) is True
    [message] = smtp[0].to("alice@example.org")
    text, html = parts(message)
    for body in (text, html, str(message["Subject"])):
        assert SENSITIVE_REPLY not in body and "end my life" not in body
    for body in (text, html):
        assert "carol posted in “My first month”" in body
        assert f"http://testserver/p/{sensitive_id}" in body
    ordinary = min(by_post)  # bob's reply came first
    assert await notification_mail.send_notification_mail(mail_ctx, by_post[ordinary]) is True
    text, html = parts(smtp[0].to("alice@example.org")[1])
    assert ORDINARY_REPLY in text and ORDINARY_REPLY in html, "an ordinary reply is quoted"


async def test_an_edit_that_matched_keeps_a_post_unquoted(world, smtp, mail_ctx):
    """post.edited with `sensitive` marks the projection; an edit taking the words out does not unmark it."""
    await world.join(1, "alice")
    await world.join(2, "bob")
    await world.emit(
        category(1),
        topic(10, author_id=1, title="Coping"),
        post(100, topic_id=10, number=1, author_id=1),
        post(101, topic_id=10, number=2, author_id=2, author_username="bob", reply_to_user_id=1, text="Fine words"),
    )

    def edited(text: str, sensitive: bool) -> ev.PostEdited:
        return ev.PostEdited(
            post_id=101,
            topic_id=10,
            post_number=2,
            category_id=1,
            author_id=2,
            author_username="bob",
            text=text,
            content_note=None,
            audience=["public"],
            revision=2,
            sensitive=sensitive,
        )

    await world.emit(edited("Now I want to end my life", True))
    await world.emit(edited("Fine words again", False))
    assert await world.pool.fetchval("SELECT sensitive FROM notify.posts WHERE id = 101") is True
    [row] = await world.notifications(1)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"]) is True
    text, html = parts(smtp[0].messages[0])
    assert "Fine words" not in text and "Fine words" not in html
    assert "http://testserver/p/101" in text


async def test_an_author_edit_that_brings_a_safeguarding_phrase_is_sensitive(app, world, member_factory):
    """The forum's post.edited says `sensitive` when the edit matched a phrase, and keeps saying it after."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    general = await _posted(admin, "/api/categories", {"name": "General"})
    started = await _posted(sam, "/api/topics", {"category_id": general["id"], "title": "Nights", "body": "Hard."})
    first = (await sam.client.get(f"/api/topics/{started['id']}")).json()
    post_id = (first.get("posts") or [{}])[0].get("id") or started.get("first_post_id")
    assert post_id, first
    for body in ("Some nights I feel I can't go on", "Some nights are hard but better now"):
        response = await sam.client.patch(f"/api/posts/{post_id}", json={"body": body})
        assert response.status_code == 200, response.text
    rows = await world.pool.fetch("SELECT payload FROM forum.outbox WHERE type = 'post.edited' ORDER BY id")
    assert [ev.Envelope(**row["payload"]).event().sensitive for row in rows] == [True, True]


async def test_a_post_flagged_for_safeguarding_is_no_longer_quoted(world, smtp, mail_ctx):
    """A member's safeguarding flag (post.flagged, review kind safeguarding) marks the post sensitive."""
    await world.join(1, "alice")
    await world.join(2, "bob")
    await world.emit(
        category(1),
        topic(10, author_id=1, title="Coping"),
        post(100, topic_id=10, number=1, author_id=1),
        post(101, topic_id=10, number=2, author_id=2, author_username="bob", reply_to_user_id=1, text="Quiet words"),
    )

    def flagged(kind: str) -> ev.PostFlagged:
        return ev.PostFlagged(
            post_id=101,
            topic_id=10,
            category_id=1,
            author_id=2,
            reason="other",
            review_id=5,
            review_kind=kind,
            score=1,
            priority=1,
        )

    await world.emit(flagged("flagged_post"))
    assert await world.pool.fetchval("SELECT sensitive FROM notify.posts WHERE id = 101") is False
    await world.emit(flagged("safeguarding"))
    assert await world.pool.fetchval("SELECT sensitive FROM notify.posts WHERE id = 101") is True
    [row] = await world.notifications(1)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"]) is True
    for body in parts(smtp[0].messages[0]):
        assert "Quiet words" not in body and "http://testserver/p/101" in body
