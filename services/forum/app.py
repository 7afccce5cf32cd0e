"""The forum service: accounts, categories, topics, posts, moderation, documents,
webinars; its HTML pages and JSON API. It owns the schema "forum" and the outbox.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.applications import Starlette

from services.forum import (
    account_pages,
    accounts,
    audit,
    categories,
    directory,
    document_pages,
    documents,
    export,
    group_pages,
    groups,
    member_controls,
    moderation,
    moderation_pages,
    posts,
    safety,
    topic_pages,
    topics,
)
from shared import api as api_lib
from shared import pages
from shared.events import Relay, stream_name
from shared.jobs import open_queue
from shared.settings import Settings
from shared.web import Runtime, build_app

SCHEMA = "forum"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# Every JSON API module of the forum, in the order the OpenAPI document lists them.
ROUTERS: list[api_lib.ApiRouter] = [
    accounts.api,
    categories.api,
    topics.api,
    posts.api,
    export.api,
    groups.api,
    directory.api,
    documents.api,
    moderation.api,
    safety.api,
    audit.api,
    member_controls.api,
]


async def outbox_relay(rt: Runtime, stop: asyncio.Event) -> None:
    """Publish the outbox to the event stream (safe in every replica)."""
    assert rt.settings.database_url
    relay = Relay(rt.pool, rt.redis, stream_name(rt.settings.redis_prefix), maxlen=rt.settings.stream_maxlen)
    rt.extras["relay"] = relay
    await relay.run(stop, rt.settings.database_url)


async def open_job_queue(rt: Runtime) -> None:
    rt.extras["queue"] = await open_queue(rt.settings)


async def close_job_queue(rt: Runtime) -> None:
    queue = rt.extras.pop("queue", None)
    if queue is not None:
        await queue.aclose()


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The forum app; `background=False` leaves the relay to the caller (tests)."""
    app = build_app(
        settings=settings,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS_DIR,
        routes=[
            *api_lib.routes(ROUTERS),
            *account_pages.routes,
            *topic_pages.routes,
            *group_pages.routes,
            *directory.routes,
            *document_pages.routes,
            *moderation_pages.routes,
            *pages.static_routes(),
        ],
        background=(outbox_relay,) if background else (),
        startup=(open_job_queue,),
        shutdown=(close_job_queue,),
        exception_handlers=pages.ERROR_HANDLERS,
        large_body_paths=documents.UPLOAD_PATHS,  # uploads enforce TICA_MAX_UPLOAD_BYTES themselves
    )
    app.state.templates = pages.environment(TEMPLATES_DIR)
    return app
