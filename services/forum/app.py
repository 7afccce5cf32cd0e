"""The forum service: accounts, categories, topics, posts, moderation, documents,
webinars; its HTML pages and JSON API. It owns the schema "forum" and the outbox.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.applications import Starlette

from shared.events import Relay, stream_name
from shared.settings import Settings
from shared.web import Runtime, build_app

SCHEMA = "forum"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def outbox_relay(rt: Runtime, stop: asyncio.Event) -> None:
    """Publish the outbox to the event stream (safe in every replica)."""
    assert rt.settings.database_url
    relay = Relay(rt.pool, rt.redis, stream_name(rt.settings.redis_prefix), maxlen=rt.settings.stream_maxlen)
    rt.extras["relay"] = relay
    await relay.run(stop, rt.settings.database_url)


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The forum app; `background=False` leaves the relay to the caller (tests)."""
    return build_app(
        settings=settings,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS_DIR,
        routes=[],
        background=(outbox_relay,) if background else (),
    )
