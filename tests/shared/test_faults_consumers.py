"""Consumers keep their name across restarts, so a restarted replica takes back its own unacked entries
at once; members gone for good are forgotten; the reclaim idle time is TICA_RECLAIM_IDLE_S; and /readyz
names a background loop that keeps failing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from services.notify import app as notify_app
from services.notify import writer
from services.search import indexer
from shared.events import (
    STREAM_FIELD,
    Consumer,
    Envelope,
    Handler,
    UserRegistered,
    dead_letter_stream,
    stream_name,
)
from shared.sessions import SessionStore
from shared.settings import Settings
from shared.web import Runtime, build_app

GROUP = "g"


async def put(redis: aioredis.Redis, stream: str, count: int) -> list[Envelope]:
    envelopes = [
        Envelope.wrap(UserRegistered(user_id=n, username=f"u{n}", display_name=f"U {n}"), actor_id=None)
        for n in range(count)
    ]
    for envelope in envelopes:
        await redis.xadd(stream, {STREAM_FIELD: envelope.to_json()})
    return envelopes


def consumer(redis: aioredis.Redis, settings: Settings, name: str, handler: Handler, **options: Any) -> Consumer:
    prefix = settings.redis_prefix
    return Consumer(redis, stream_name(prefix), GROUP, name, handler, dead_letter_stream(prefix, GROUP), **options)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (answer := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return answer


async def _true(value: bool) -> bool:
    return value


async def test_a_restarted_consumer_takes_back_its_own_entries_at_once(redis, settings):
    """A member stopped mid-batch and started again under the same name handles what it had not
    acked at once, not after the reclaim idle time (ten minutes here)."""
    stream = stream_name(settings.redis_prefix)
    envelopes = await put(redis, stream, 3)
    started = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        started.set()
        await asyncio.sleep(60)

    before = consumer(redis, settings, "replica-0", stuck, block_ms=100)
    task = asyncio.create_task(before.run(asyncio.Event()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    after = consumer(redis, settings, "replica-0", record, claim_idle_ms=600_000, block_ms=50)
    stop = asyncio.Event()
    run = asyncio.create_task(after.run(stop))
    try:
        await wait_for(lambda: _true(len(handled) == 3), 3, "the restarted member to handle its entries")
    finally:
        stop.set()
        await asyncio.wait_for(run, 5)
    assert handled == envelopes
    assert (await redis.xpending(stream, GROUP))["pending"] == 0


async def test_members_gone_for_good_are_forgotten_but_not_those_holding_entries(redis, settings):
    """A member with nothing pending that has not read for forget_idle_ms is removed from the group;
    one still holding entries, and one that read just now, stay."""
    stream = stream_name(settings.redis_prefix)
    await put(redis, stream, 2)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xgroup_createconsumer(stream, GROUP, "gone")
    await redis.xreadgroup(GROUP, "holding", {stream: ">"}, count=1)  # read, never acked
    await asyncio.sleep(0.2)
    await redis.xgroup_createconsumer(stream, GROUP, "recent")

    async def nothing(envelope: Envelope) -> None:
        pass

    sweeper = consumer(redis, settings, "sweeper", nothing, forget_idle_ms=150)
    assert await sweeper.forget_dead_members() == ["gone"]
    members = {info["name"].decode() for info in await redis.xinfo_consumers(stream, GROUP)}
    assert members == {"holding", "recent"}


async def test_services_name_consumers_after_the_host_and_reclaim_after_the_setting(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """The notification writer and the indexer are named after the host (the same after a restart) and
    take over another member's entries after TICA_RECLAIM_IDLE_S."""
    rt = Runtime(settings.replace(reclaim_idle_s=7), pool, redis, SessionStore(redis, settings.redis_prefix))
    for member in (writer.consumer(rt), indexer.make_consumer(rt)):
        assert member.name == socket.gethostname()
        assert member.claim_idle_ms == 7000


async def test_readyz_names_a_background_loop_that_fails_or_ends(migrated: Settings) -> None:
    """A loop that raises, or returns before it is asked to stop, is restarted and named by /readyz (503)."""

    async def broken_loop(rt: Runtime, stop: asyncio.Event) -> None:
        raise ValueError("a bug in the loop")

    async def quitting_loop(rt: Runtime, stop: asyncio.Event) -> None:
        return

    app = build_app(
        settings=migrated,
        schema=notify_app.SCHEMA,
        migrations_dir=notify_app.MIGRATIONS_DIR,
        routes=[],
        background=(broken_loop, quitting_loop),
    )
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def named() -> list[str] | None:
            response = await http.get("/readyz")
            problems: list[str] = response.json()["problems"]
            text = " ".join(problems)
            failing = "broken_loop failing for" in text and "quitting_loop failing for" in text
            return problems if response.status_code == 503 and failing else None

        problems = await wait_for(named, 5, "/readyz to name both loops")
    assert any("ValueError: a bug in the loop" in p for p in problems)
    assert any("it ended by itself" in p for p in problems)
