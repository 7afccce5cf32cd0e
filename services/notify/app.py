"""The notify service: notifications, watch levels, preferences, the live websocket
endpoint, email and digests (the arq worker). It owns the schema "notify".

Its background tasks: the notification writer (consumer group "notify-writer") and
the live fan-out (plain XREAD, so every replica sees every event).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from services.notify import devmail, live, notifications, preferences, unsubscribe, watches, writer
from shared import api as api_lib
from shared import pages
from shared.events import group_lag, stream_name
from shared.jobs import close_job_queue, open_job_queue
from shared.settings import Settings
from shared.web import Runtime, build_app

SCHEMA = "notify"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# Every JSON API module of notify, in the order the OpenAPI document (services/openapi.py) lists them.
ROUTERS: list[api_lib.ApiRouter] = [notifications.api, preferences.api, watches.api]


async def notification_writer(rt: Runtime, stop: asyncio.Event) -> None:
    """Turn events into projections and notifications (a member of the consumer group)."""
    consumer = writer.consumer(rt)
    rt.extras["writer"] = consumer
    await consumer.run(stop)


async def ready_detail(rt: Runtime) -> dict[str, Any]:
    """/readyz detail: the writer's lag and the live fan-out."""
    lag = await group_lag(rt.redis, stream_name(rt.settings.redis_prefix), writer.GROUP)
    return {"writer": lag, **await live.hub_detail(rt)}


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The notify app; `background=False` leaves its consumers to the caller (tests)."""
    app = build_app(
        settings=settings,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS_DIR,
        routes=[
            *api_lib.routes(ROUTERS),
            *watches.routes,
            *notifications.routes,
            *preferences.routes,
            *unsubscribe.routes,
            *live.routes,
            *devmail.routes,
        ],
        background=(notification_writer, live.live_fanout) if background else (),
        follow_settings=background,  # what admins set (the site's name in pages), as the forum publishes it
        startup=(open_job_queue, live.start_hub),
        shutdown=(close_job_queue,),
        ready_detail=ready_detail,
        exception_handlers=pages.ERROR_HANDLERS,
    )
    app.state.templates = pages.environment(TEMPLATES_DIR)
    return app
