"""Safeguarding alerts as notify tells them (issue 15, point 1): a calm notification to each member the
forum names, linking to the review item, once per item and round; an email to the safeguarding leads
whatever their email choices, never with the words that matched (a real SMTP server); the unread
count goes out live; a resolved item's alerts are read."""

from __future__ import annotations

from notify_helpers import category, parts, post, topic

from services.notify import notification_mail
from services.notify.notifications import describe, live_stream_name, target_url
from services.notify.worker import create_worker
from shared import events as ev

MO, LEAD, ADA, SAM = 1, 2, 3, 4
REVIEW = 77
WORDS = "Some nights I still think I want to end my life"


def alerted(round_: int, recipients: tuple[int, ...], leads: tuple[int, ...], **about: int) -> ev.SafeguardingAlerted:
    return ev.SafeguardingAlerted(
        review_id=REVIEW, round=round_, recipient_ids=list(recipients), email_ids=list(leads), **about
    )


async def _staff(world) -> None:
    await world.join(MO, "mo", roles=["member", "moderator"])
    await world.join(LEAD, "lee")  # a member with the safeguarding lead duty
    await world.join(ADA, "ada", roles=["member", "admin"])
    await world.join(SAM, "sam")
    await world.emit(
        category(1),
        topic(10, author_id=SAM, title="Nights"),
        post(100, topic_id=10, number=1, author_id=SAM, text=WORDS),
    )


async def _alerts(world, user_id: int) -> list:
    return [row for row in await world.notifications(user_id) if row["kind"] == "safeguarding_alert"]


async def _run_worker(settings) -> None:
    worker = create_worker(settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_an_alert_tells_each_one_named_calmly_and_once_per_round(world):
    await _staff(world)
    first = alerted(1, (MO, LEAD), (LEAD,), post_id=100, topic_id=10)
    await world.emit(first)
    await world.emit(first)  # the same round again: nothing more
    for user_id in (MO, LEAD):
        [row] = await _alerts(world, user_id)
        data = dict(row["data"])
        assert describe(row["kind"], data, None) == "A post may need a safeguarding response."
        assert target_url(row["kind"], None, None, None, data) == f"/review/{REVIEW}"
        assert row["topic_id"] is None and row["post_id"] is None
    assert await _alerts(world, ADA) == []
    [before] = await _alerts(world, MO)
    await world.pool.execute("UPDATE notify.notifications SET read_at = now() WHERE user_id = $1", MO)
    await world.emit(alerted(2, (MO, LEAD, ADA), (LEAD,), post_id=100, topic_id=10))
    [row] = await _alerts(world, MO)
    assert row["id"] == before["id"] and row["read_at"] is None, "one per item, unread again"
    assert describe(row["kind"], dict(row["data"]), None).startswith("Still waiting: a post may need")
    assert len(await _alerts(world, ADA)) == 1, "admins are told from the second round"
    counts = await world.redis.xrange(live_stream_name(world.settings.redis_prefix))
    told = {fields[b"u"] for _, fields in counts}
    assert {str(MO).encode(), str(LEAD).encode(), str(ADA).encode()} <= told, "the unread counts went out live"


async def test_a_message_alert_says_a_private_message(world):
    await _staff(world)
    await world.emit(alerted(1, (MO,), (), message_id=9, conversation_id=5))
    [row] = await _alerts(world, MO)
    assert describe(row["kind"], dict(row["data"]), None) == "A private message may need a safeguarding response."


async def test_leads_are_emailed_whatever_their_choices_without_the_words(world, smtp, mail_settings):
    await _staff(world)
    await world.pool.execute(
        "INSERT INTO notify.preferences (user_id, email_on_reply, email_on_mention, email_on_watched, digest) "
        "VALUES ($1, 'never', 'never', 'never', 'never')",
        LEAD,
    )
    await world.seen(LEAD)  # here right now: still emailed, it is a duty
    await world.emit(alerted(1, (MO, LEAD), (LEAD,), post_id=100, topic_id=10))
    await _run_worker(mail_settings)
    sink = smtp[0]
    assert sink.to("mo@example.org") == [], "only the leads are emailed"
    [mail] = sink.to("lee@example.org")
    assert mail["Subject"] == "A post may need a safeguarding response."
    assert mail["List-Unsubscribe"] is None, "a duty has no unsubscribe link"
    text, html = parts(mail)
    for body in (text, html, str(mail["Subject"])):
        assert "end my life" not in body and "Nights" not in body
    for body in (text, html):
        assert f"http://testserver/review/{REVIEW}" in body
        assert "whatever your other email choices" in body
    await world.emit(alerted(2, (MO, LEAD, ADA), (LEAD,), post_id=100, topic_id=10))
    await _run_worker(mail_settings)
    second = sink.to("lee@example.org")[1]
    assert second["Subject"].startswith("Still waiting: a post may need a safeguarding response")
    await world.emit(alerted(2, (MO, LEAD, ADA), (LEAD,), post_id=100, topic_id=10))
    await _run_worker(mail_settings)
    assert len(sink.to("lee@example.org")) == 2, "a round is mailed once"


async def test_an_older_round_is_not_mailed_and_resolving_reads_the_alerts(world, smtp, mail_ctx):
    await _staff(world)
    await world.emit(alerted(1, (MO, LEAD), (LEAD,)))
    await world.emit(alerted(2, (MO, LEAD), (LEAD,)))
    [row] = await _alerts(world, LEAD)
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], "round-1") is False
    assert await notification_mail.send_notification_mail(mail_ctx, row["id"], "round-2") is True
    await world.emit(ev.SafeguardingPickedUp(review_id=REVIEW, moderator_id=MO, moderator_username="mo"))
    assert (await _alerts(world, LEAD))[0]["read_at"] is None, "picking up tells no one"
    await world.emit(ev.SafeguardingResolved(review_id=REVIEW, outcome="reached_out", moderator_id=MO))
    for user_id in (MO, LEAD):
        [row] = await _alerts(world, user_id)
        assert row["read_at"] is not None
