"""notify fixtures: the writer driven by hand (`world`), members notify knows, a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from notify_helpers import MailSink, World, smtp_server

from services.allinone import AllInOne
from services.notify import writer
from shared.web import Runtime


@pytest_asyncio.fixture(loop_scope="session")
async def world(app: AllInOne, pool, redis, settings) -> AsyncIterator[World]:
    """Events in through the forum's outbox, handled by a notification writer we drive by hand."""
    rt: Runtime = app.apps["notify"].state.runtime
    consumer = writer.consumer(rt, name="test-writer")
    await consumer.ensure_group()
    yield World(pool, redis, settings, rt, consumer)


@pytest.fixture
def smtp() -> Iterator[tuple[MailSink, int]]:
    """A real SMTP server (aiosmtpd) on loopback: (sink, port)."""
    with smtp_server() as running:
        yield running


@pytest.fixture
def mail_settings(settings, smtp) -> Any:
    """The test settings with SMTP_URL pointing at the real SMTP server."""
    return settings.replace(smtp_url=f"smtp://127.0.0.1:{smtp[1]}")


@pytest.fixture
def mail_ctx(world: World, mail_settings) -> dict[str, Any]:
    """An arq job context whose runtime sends through the real SMTP server."""
    rt = world.rt
    return {"runtime": Runtime(mail_settings, rt.pool, rt.redis, rt.sessions, rt.extras), "job_try": 1}
