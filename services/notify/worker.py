"""The arq worker of notify: mail now; digests and reminders join as they land.

`worker_settings(settings)` builds the arq settings for `tica worker` and for the
all-in-one run. Jobs receive `ctx["runtime"]` (pool, redis, settings).
"""

from __future__ import annotations

from typing import Any

from arq.worker import Function, Worker, func

from services.notify import mail
from shared.jobs import queue_name, redis_settings
from shared.settings import Settings
from shared.web import open_runtime

FUNCTIONS: list[Function] = [func(mail.send_mail, name="send_mail", max_tries=5)]


def create_worker(settings: Settings, *, burst: bool = False) -> Worker:
    """An arq worker for tica's jobs; signals are left to the caller."""
    runtime_cm = open_runtime(settings, pool_max=5)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["runtime"] = await runtime_cm.__aenter__()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await runtime_cm.__aexit__(None, None, None)

    return Worker(
        functions=FUNCTIONS,
        queue_name=queue_name(settings),
        redis_settings=redis_settings(settings),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=False,
        burst=burst,
        poll_delay=0.2,
        keep_result=3600,
    )
