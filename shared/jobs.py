"""The arq job queue every service enqueues on; the jobs themselves live in notify's worker.

Services enqueue by job name (e.g. "send_mail") with a deterministic `_job_id`, so
a retried request never queues the same mail twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.web import Runtime

_QUEUE_SUFFIX = "arq:queue"


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}{_QUEUE_SUFFIX}"


def job_id(queue: ArqRedis, name: str) -> str:
    """A job id under the install's prefix: arq keeps job keys as `arq:job:{id}` whatever the queue."""
    return queue.default_queue_name.removesuffix(_QUEUE_SUFFIX) + name


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for REDIS_URL (redis://, rediss:// or unix://)."""
    assert settings.redis_url
    if settings.redis_url.startswith("unix://"):
        return RedisSettings(unix_socket_path=unquote(urlsplit(settings.redis_url).path))
    return RedisSettings.from_dsn(settings.redis_url)


async def open_queue(settings: Settings) -> ArqRedis:
    return await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))


async def open_job_queue(rt: Runtime) -> None:
    """A service's start-up step: the queue in `rt.extras["queue"]`, where its handlers enqueue."""
    rt.extras["queue"] = await open_queue(rt.settings)


async def close_job_queue(rt: Runtime) -> None:
    """A service's shut-down step: close the queue open_job_queue opened, if it did."""
    queue = rt.extras.pop("queue", None)
    if queue is not None:
        await queue.aclose()


async def enqueue_mail(
    queue: ArqRedis,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    key: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Queue one mail; `key` makes it idempotent (same key, one mail)."""
    kwargs: dict[str, Any] = {"to": to, "subject": subject, "text": text, "html": html, "key": key}
    if headers:
        kwargs["headers"] = headers
    await queue.enqueue_job("send_mail", _job_id=job_id(queue, f"mail:{key}"), **kwargs)
