"""Killing the notification writer in the middle of a batch loses and doubles no notification."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from notify_helpers import drain, post, reaction

from services.notify import writer

ROOT = Path(__file__).resolve().parents[2]
AUTHOR = 1
READERS = list(range(100, 140))
REACTORS = list(range(200, 230))


async def test_killing_the_writer_mid_batch_loses_and_doubles_nothing(world, settings):
    """SIGKILL a writer process mid-batch; a survivor reclaims its entries; every count is exact."""
    await world.join(AUTHOR, "author")
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TICA_REDIS_PREFIX": settings.redis_prefix,
        "TICA_SECRET_KEY": settings.secret_key,
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "writer_process.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"ready"
        # One mention per reader (a post each), and reactions that batch into one notification.
        events = [
            post(1000 + i, topic_id=10, number=i + 2, author_id=AUTHOR, mentioned=(reader,))
            for i, reader in enumerate(READERS)
        ]
        events += [reaction(999, topic_id=10, post_author_id=AUTHOR, user_id=user) for user in REACTORS]
        await world.emit(*events, handle=False)
        handled = 0
        while handled < 25:  # well into its batch of 70
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            handled += line.strip() == b"handled"
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    survivor = writer.consumer(world.rt, name="survivor", claim_idle_ms=0)
    reclaimed = await survivor.reclaim()
    reclaimed += await drain(survivor)
    assert reclaimed >= len(events) - 25 - 1, "the survivor took over what the dead writer had not acked"

    rows = await world.pool.fetch("SELECT user_id, kind, dedupe_key, data FROM notify.notifications ORDER BY user_id")
    mentions = [r for r in rows if r["kind"] == "mentioned"]
    assert sorted(r["user_id"] for r in mentions) == READERS, "every mention once, none lost, none doubled"
    [batched] = [r for r in rows if r["kind"] == "reacted"]
    assert batched["user_id"] == AUTHOR and batched["data"]["count"] == len(REACTORS)
    assert len(rows) == len(READERS) + 1
    lag = await world.redis.xpending(world.consumer.stream, writer.GROUP)
    assert lag["pending"] == 0, "everything is acked at the end"
