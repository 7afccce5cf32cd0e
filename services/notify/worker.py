"""The arq worker of notify: mail, notification mail, digests (and, as they land,
reminders). `create_worker(settings)` builds it and `run_worker` runs it, for `tica
worker` and for the all-in-one run. Jobs receive `ctx["runtime"]` (pool, redis,
settings) and `ctx["redis"]` (the queue, for jobs that queue more jobs). The runtime's
settings follow what admins set (the site's name in mail) as the services' do: a
site_settings follower runs beside the jobs (shared/site_settings.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from services.notify import digests, mail, notification_mail
from shared import site_settings
from shared.events import LoopHealth
from shared.jobs import queue_name, redis_settings
from shared.settings import Settings
from shared.web import Runtime, open_runtime, supervise

log = logging.getLogger("tica.worker")

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


def create_worker(settings: Settings, *, burst: bool = False, settings_health: LoopHealth | None = None) -> Worker:
    """An arq worker for tica's jobs; signals are left to the caller. `settings_health` reports its
    site settings follower (`tica run` shows it on /readyz)."""
    runtime_cm = open_runtime(settings, pool_max=5)

    async def startup(ctx: dict[str, Any]) -> None:
        if "runtime" not in ctx:  # arq starts up again each time run_worker restarts it
            ctx["runtime"] = rt = await runtime_cm.__aenter__()
            ctx[SETTINGS_FOLLOWER] = await follow_settings(rt, settings_health)

    async def shutdown(ctx: dict[str, Any]) -> None:
        following = ctx.pop(SETTINGS_FOLLOWER, None)
        if following is not None:
            await stop_following(*following)
        if ctx.pop("runtime", None) is not None:
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


SETTINGS_FOLLOWER = "site_settings_follower"


async def follow_settings(rt: Runtime, health: LoopHealth | None = None) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Load what admins set, then follow their changes until stopped (shared/site_settings.py), with
    backoff while Redis is away, as the services' loops do."""
    follower = site_settings.Follower()
    await follower.start(rt)
    stop = asyncio.Event()

    async def follow() -> None:
        await follower.run(rt, stop)

    health = health or LoopHealth("site_settings")
    task = asyncio.create_task(supervise(health, follow, stop), name="site_settings")
    return stop, task


async def stop_following(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=5)
    except TimeoutError:  # wait_for has cancelled it
        log.warning("the site settings follower did not stop in time")


async def run_worker(worker: Worker, stop: asyncio.Event, health: LoopHealth | None = None) -> None:
    """Run the worker until `stop` (or, in burst mode, until the queue is empty). When Redis goes away
    arq's poll loop fails: the worker is started again with backoff, its jobs in progress left running,
    so a Redis restart never stops the mail; `health` says meanwhile that it is failing."""

    async def attempt() -> None:
        await _release_jobs_left_behind(worker)
        main, stopping = asyncio.ensure_future(worker.main()), asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not main.done():  # asked to stop: arq's poll loop does not watch `stop` itself
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
        if not main.cancelled():
            main.result()  # its error, if any, for the supervisor
            if worker.burst:
                stop.set()

    await supervise(health or LoopHealth("job_worker"), attempt, stop)


async def _release_jobs_left_behind(worker: Worker) -> None:
    """arq re-raises, one a poll, the error of each job task that ended while Redis was away: each
    would end the restarted poll loop again and cost a backoff (mail then crawled at ~2 a second).
    Such a job stays queued in Redis, but still marked in progress for as long as the longest job
    may run (half an hour, for the digests' cron): its mark is removed so it runs again at once (the
    jobs are idempotent: a mail recorded as sent is not sent again). Nobody else can hold it: the
    mark was never lifted. While Redis is still away this fails and the supervisor tries again."""
    for job_id, task in list(worker.tasks.items()):
        if not task.done():
            continue
        if not task.cancelled() and task.exception() is not None:
            await worker.pool.delete(in_progress_key_prefix + job_id)
            log.warning("job %s ended while Redis was away, queued to run again: %r", job_id, task.exception())
        del worker.tasks[job_id]


async def close_worker(worker: Worker) -> None:
    """Let the jobs in progress finish and close the connections; Redis may be away at that moment."""
    try:
        await worker.close()
    except (RedisError, OSError, asyncpg.PostgresError) as exc:
        log.warning("job worker: closing it failed (%r)", exc)
        if worker.on_shutdown is not None:  # the database pool is closed all the same
            await worker.on_shutdown(worker.ctx)
