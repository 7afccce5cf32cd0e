"""Email on reply and mention, through a real SMTP server: preferences, "when away", idempotency, retries."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from arq import Retry
from notify_helpers import category, free_port, parts, post, topic

from services.notify import mail, notification_mail
from services.notify.worker import create_worker
from shared.web import Runtime

ALICE, BOB = 1, 2


async def _reply(world, *, note: str | None = None, mention: bool = False) -> int:
    await world.join(ALICE, "alice")
    await world.join(BOB, "bob")
    await world.emit(
        category(1),
        topic(10, author_id=ALICE, title="Coping with night shifts"),
        post(100, topic_id=10, number=1, author_id=ALICE),
    )
    text = "Thank you for sharing this, it helped me a lot. " * 10
    await world.emit(
        post(
            101,
            topic_id=10,
            number=2,
            author_id=BOB,
            author_username="bob",
            text=text,
            reply_to_user_id=None if mention else ALICE,
            mentioned=(ALICE,) if mention else (),
            content_note=note,
        )
    )
    [note_row] = await world.notifications(ALICE)
    return int(note_row["id"])


async def _run_worker(settings) -> None:
    worker = create_worker(settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_reply_is_emailed_when_away_with_both_parts_and_unsubscribe_headers(world, smtp, mail_settings):
    """The writer queues the job; the worker sends it through SMTP_URL: text and HTML, List-Unsubscribe."""
    await _reply(world)
    await _run_worker(mail_settings)
    sink, _ = smtp
    [message] = sink.to("alice@example.org")
    assert message["Subject"] == "bob replied to your post in “Coping with night shifts”"
    text, html = parts(message)
    assert "Thank you for sharing this" in text and "http://testserver/p/101" in text
    assert "Thank you for sharing this" in html and 'href="http://testserver/p/101"' in html
    assert message["List-Unsubscribe"].startswith("<http://testserver/unsubscribe?token=")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "reply" in message["List-Unsubscribe"]


async def test_no_email_while_the_member_is_here_unless_always(world, smtp, mail_ctx):
    notification_id = await _reply(world)
    await world.seen(ALICE)
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is False
    await world.pool.execute("INSERT INTO notify.preferences (user_id, email_on_reply) VALUES ($1, 'always')", ALICE)
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is True
    assert len(smtp[0].messages) == 1


async def test_away_means_not_seen_for_ten_minutes(world, smtp, mail_ctx):
    notification_id = await _reply(world)
    await world.seen(ALICE, datetime.now(UTC) - timedelta(minutes=11))
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is True


async def test_never_means_no_job_and_no_mail(world, smtp, mail_settings):
    await world.join(ALICE, "alice")
    await world.pool.execute("INSERT INTO notify.preferences (user_id, email_on_mention) VALUES ($1, 'never')", ALICE)
    await world.emit(
        category(1), topic(10, author_id=BOB), post(101, topic_id=10, number=2, author_id=BOB, mentioned=(ALICE,))
    )
    assert len(await world.notifications(ALICE)) == 1
    await _run_worker(mail_settings)
    assert smtp[0].messages == []


async def test_read_before_sending_or_sent_already_sends_nothing_more(world, smtp, mail_ctx):
    notification_id = await _reply(world, mention=True)
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is True
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is False  # the same key
    assert len(smtp[0].messages) == 1
    assert smtp[0].messages[0]["Subject"] == "bob mentioned you in “Coping with night shifts”"
    await world.pool.execute("DELETE FROM notify.sent_mail")
    await world.pool.execute("UPDATE notify.notifications SET read_at = now()")
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is False


async def test_a_content_noted_post_shows_its_note_not_its_text(world, smtp, mail_ctx):
    notification_id = await _reply(world, note="self-harm")
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is True
    text, html = parts(smtp[0].messages[0])
    for body in (text, html):
        assert "Content note: self-harm" in body
        assert "Thank you for sharing this" not in body


async def test_unverified_or_suspended_members_get_no_mail(world, smtp, mail_ctx):
    notification_id = await _reply(world)
    await world.pool.execute("UPDATE notify.users SET email_verified = false WHERE id = $1", ALICE)
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is False
    await world.pool.execute(
        "UPDATE notify.users SET email_verified = true, suspended_until = now() + interval '1 day' WHERE id = $1", ALICE
    )
    assert await notification_mail.send_notification_mail(mail_ctx, notification_id) is False
    assert smtp[0].messages == []


async def test_a_failed_send_retries_with_backoff_and_masks_the_address(world, settings, caplog):
    """No SMTP server listening: the job asks arq to retry later, logs the address masked, records no send."""
    rt = world.rt
    dead = settings.replace(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    ctx = {"runtime": Runtime(dead, rt.pool, rt.redis, rt.sessions), "job_try": 2}
    with caplog.at_level(logging.WARNING, logger="tica.mail"), pytest.raises(Retry) as retry:
        await mail.send_mail(
            ctx, to="someone.private@example.org", subject="Hello", text="Hi", html="<p>Hi</p>", key="test:retry"
        )
    assert retry.value.defer_score == 10_000  # 5 s, doubled on the second try
    assert "s***@example.org" in caplog.text and "someone.private" not in caplog.text
    assert await world.pool.fetchval("SELECT count(*) FROM notify.sent_mail") == 0
