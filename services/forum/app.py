"""The forum service: accounts, categories, topics, posts, moderation, documents,
webinars; its HTML pages and JSON API. It owns the schema "forum" and the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.forum import export, outbox
from services.forum.accounts import api as account_api
from services.forum.accounts import login
from services.forum.accounts import pages as account_pages
from services.forum.admin import pages as admin_pages
from services.forum.directory import api as directory_api
from services.forum.directory import pages as directory_pages
from services.forum.groups import api as group_api
from services.forum.groups import pages as group_pages
from services.forum.library import api as library_api
from services.forum.library import pages as document_pages
from services.forum.members import api as member_api
from services.forum.members import pages as member_pages
from services.forum.messages import api as message_api
from services.forum.messages import pages as message_pages
from services.forum.moderation import admin_pages as moderation_admin_pages
from services.forum.moderation import api as moderation_api
from services.forum.moderation import audit, safeguarding
from services.forum.moderation import pages as moderation_pages
from services.forum.signups import api as signup_api
from services.forum.signups import pages as signup_pages
from services.forum.site import api as site_api
from services.forum.site import pages as site_pages
from services.forum.site import settings as stored_settings
from services.forum.topics import category_admin_pages, category_pages
from services.forum.topics import pages as topic_pages
from services.forum.topics.api import categories_api, posts_api, topics_api
from services.forum.webinars import api as webinar_api
from services.forum.webinars import pages as webinar_pages
from services.forum.writings import api as writings_api
from shared import api as api_lib
from shared import markdown, pages
from shared.events import Relay, stream_name
from shared.jobs import close_job_queue, open_job_queue
from shared.sessions import Session
from shared.settings import Settings
from shared.web import Runtime, build_app

SCHEMA = "forum"
log = logging.getLogger("tica.forum")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# Every JSON API module of the forum, in the order the OpenAPI document lists them.
ROUTERS: list[api_lib.ApiRouter] = [
    account_api.api,
    categories_api,
    topics_api,
    posts_api,
    writings_api.posts_api,
    export.api,
    group_api.api,
    directory_api.api,
    library_api.api,
    writings_api.documents_api,
    writings_api.moderation_api,
    moderation_api.api,
    audit.api,
    account_api.controls_api,
    webinar_api.api,
    member_api.api,
    signup_api.api,
    site_api.api,
    message_api.api,
]


async def outbox_relay(rt: Runtime, stop: asyncio.Event) -> None:
    """Publish the outbox to the event stream (safe in every replica)."""
    assert rt.settings.database_url
    stream = stream_name(rt.settings.redis_prefix)
    relay = Relay(rt.pool, rt.redis, stream, outbox.OUTBOX, maxlen=rt.settings.stream_maxlen)
    rt.extras["relay"] = relay
    await relay.run(stop, rt.settings.database_url)


class ActivityTracker:
    """After a signed-in member's request: note their activity (at most every few minutes).

    Each worker remembers for a minute which members it has already noted (or found noted) in
    Redis, so most requests skip the Redis round trip; Redis still decides across workers, and
    the minute is well inside login.ACTIVITY_EVERY_S, so no visit is missed.
    """

    REMEMBER_S = 60.0
    MAX_REMEMBERED = 10_000  # members; past this the memory starts again (only a few extra Redis calls)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.noted: dict[int, float] = {}  # user id -> when (monotonic) this worker last asked Redis

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        who = scope.get("viewer") if scope["type"] == "http" else None
        if who is None or who.via_token:
            return
        now = time.monotonic()
        if now - self.noted.get(who.user_id, -self.REMEMBER_S) < self.REMEMBER_S:
            return
        try:
            await login.note_activity(scope["app"].state.runtime, who)
        except (OSError, RedisError, asyncpg.PostgresError) as exc:  # never fail a request for this
            log.warning("could not record activity: %s", exc)
            return
        if len(self.noted) >= self.MAX_REMEMBERED:
            self.noted.clear()
        self.noted[who.user_id] = now


async def close_render_workers(rt: Runtime) -> None:
    """The markdown render workers end with the app (tica run's Ctrl-C leaves no process behind)."""
    markdown.close_render_pool()


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The forum app; `background=False` leaves the relay to the caller (tests)."""
    app = build_app(
        settings=settings,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS_DIR,
        # Starlette tries routes in order: the most visited pages first (no other route shares their paths).
        routes=[
            *topic_pages.routes,
            *category_pages.routes,
            *api_lib.routes(ROUTERS),
            *account_pages.routes,
            *group_pages.routes,
            *directory_pages.routes,
            *document_pages.routes,
            *moderation_pages.routes,
            *moderation_admin_pages.routes,
            *webinar_pages.routes,
            *site_pages.routes,
            *admin_pages.routes,
            *member_pages.routes,
            *signup_pages.routes,
            *category_admin_pages.routes,
            *message_pages.routes,
            *pages.static_routes(),
        ],
        background=(outbox_relay, safeguarding.realert_loop) if background else (),
        follow_settings=background,  # what admins set, from forum.site_settings (site/settings.py)
        settings_loader=stored_settings.load_snapshot,
        startup=(open_job_queue,),
        shutdown=(close_job_queue, close_render_workers),
        exception_handlers=pages.ERROR_HANDLERS,
        large_body_paths=library_api.UPLOAD_PATHS,  # uploads enforce TICA_MAX_UPLOAD_BYTES themselves
    )
    app.add_middleware(ActivityTracker)
    app.state.templates = pages.environment(TEMPLATES_DIR)
    app.state.page_context = header_context
    return app


async def header_context(request: Request, who: Session | None) -> dict[str, Any]:
    """What every page's header shows: staff's review count, and a member's conversations with something new."""
    return {
        **(await moderation_pages.header_context(request, who)),
        **(await message_pages.header_context(request, who)),
    }
