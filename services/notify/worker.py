"""The arq worker of notify: mail, notification mail, digests (and, as they land,
reminders). `create_worker(settings)` builds it for `tica worker` and for the
all-in-one run. Jobs receive `ctx["runtime"]` (pool, redis, settings) and
`ctx["redis"]` (the queue, for jobs that queue more jobs).
"""

from __future__ import annotations

from typing import Any

from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func

from services.notify import digests, mail, notification_mail
from shared.jobs import queue_name, redis_settings
from shared.settings import Settings
from shared.web import open_runtime

FUNCTIONS: list[Function] = [
    func(mail.send_mail, name="send_mail", max_tries=5),
    func(notification_mail.send_notification_mail, name="send_notification_mail", max_tries=5),
    func(digests.send_digest, name="send_digest", max_tries=5),
]
DIGEST_MINUTES = {0, 15, 30, 45}


def cron_jobs(settings: Settings) -> list[CronJob]:
    """Scheduled jobs. Names carry the install's prefix: arq keys cron job ids by name, and
    installs sharing one Redis must not take each other's runs."""
    return [
        cron(
            digests.enqueue_due_digests,
            name=f"cron:{settings.redis_prefix}digests",
            minute=DIGEST_MINUTES,
            unique=True,
            timeout=1800,
        )
    ]


def create_worker(settings: Settings, *, burst: bool = False) -> Worker:
    """An arq worker for tica's jobs; signals are left to the caller."""
    runtime_cm = open_runtime(settings, pool_max=5)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["runtime"] = await runtime_cm.__aenter__()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await runtime_cm.__aexit__(None, None, None)

    return Worker(
        functions=FUNCTIONS,
        cron_jobs=cron_jobs(settings),
        queue_name=queue_name(settings),
        redis_settings=redis_settings(settings),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=False,
        burst=burst,
        poll_delay=0.2,
        keep_result=3600,
    )
