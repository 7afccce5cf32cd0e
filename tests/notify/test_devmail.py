"""/dev/mail shows caught mail in the development run, and nowhere else."""

import pytest_asyncio

from services.allinone import AllInOne
from services.notify.worker import create_worker
from shared.jobs import enqueue_mail, open_queue


async def _send_and_deliver(settings, subject: str) -> None:
    queue = await open_queue(settings)
    try:
        await enqueue_mail(
            queue,
            to="sam@example.org",
            subject=subject,
            text="Open http://testserver/verify?token=abc<script> to confirm.",
            html=None,
            key=f"test:{subject}",
        )
    finally:
        await queue.aclose()
    worker = create_worker(settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


@pytest_asyncio.fixture(loop_scope="session")
async def dev_client(migrated, pool, redis):
    import httpx

    app = AllInOne(migrated.replace(dev_mail=True), background=False)
    async with (
        app.running(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


async def test_caught_mail_is_listed_and_readable(dev_client, settings):
    """A sent mail appears in the list; its page shows the text with the link clickable and escaped."""
    await _send_and_deliver(settings, "Confirm your email")
    listing = await dev_client.get("/dev/mail")
    assert listing.status_code == 200
    assert "Confirm your email" in listing.text
    page = await dev_client.get("/dev/mail/1")
    assert page.status_code == 200
    assert '<a href="http://testserver/verify?token=abc&lt;script&gt;">' in page.text
    assert "<script>" not in page.text.split("</h1>", 1)[1]


async def test_mail_with_the_same_key_is_sent_once(dev_client, settings):
    """Enqueuing the same idempotency key twice delivers one mail."""
    await _send_and_deliver(settings, "Once")
    await _send_and_deliver(settings, "Once")
    listing = await dev_client.get("/dev/mail")
    assert listing.text.count(">Once</a>") == 1


async def test_dev_mail_is_off_by_default(client):
    """Without the development run's flag the page does not exist."""
    assert (await client.get("/dev/mail")).status_code == 404
    assert (await client.get("/dev/mail/1")).status_code == 404
