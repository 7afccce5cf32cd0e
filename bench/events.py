"""Event pipeline benchmark: outbox relay throughput and commit-to-handler latency.

    .venv/bin/python bench/events.py [--events 100000] [--rate 1000] [--seconds 10]

Uses real servers (TICA_BENCH_DATABASE_URL / TICA_BENCH_REDIS_URL, by default the local
ones), in a database `tica_bench_<random>` and under a key prefix of its own, both
removed at the end. Each figure is set beside a raw-Redis baseline on the same server.
See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.cli import migration_plan
from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from shared import db
from shared.events import (
    STREAM_FIELD,
    Consumer,
    Envelope,
    PostCreated,
    Relay,
    dead_letter_stream,
    stream_name,
    write_event,
)

DATABASE_URL = os.environ.get("TICA_BENCH_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("TICA_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"


@dataclass
class Row:
    name: str
    events: int
    seconds: float
    latencies_ms: list[float] | None = None

    def cells(self) -> list[str]:
        rate = f"{self.events / self.seconds:,.0f}" if self.seconds else "-"
        cells = [self.name, f"{self.events:,}", rate]
        if self.latencies_ms:
            q = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
            cells += [f"{q[49]:.1f}", f"{q[94]:.1f}", f"{q[98]:.1f}", f"{max(self.latencies_ms):.1f}"]
        else:
            cells += ["", "", "", ""]
        return cells


def post_event(number: int) -> PostCreated:
    """A post of realistic size (about 700 bytes of JSON)."""
    return PostCreated(
        post_id=number,
        topic_id=number // 10,
        post_number=number % 10 + 1,
        category_id=3,
        topic_title="Grounding techniques that helped our team after a difficult shift",
        author_id=42,
        author_username="jordan_rivers",
        text="We started each handover with two minutes of grounding. " * 6,
        content_note=None,
        audience=["public"],
        reply_to_post_id=None,
        reply_to_user_id=None,
        mentioned_user_ids=[7, 9],
        quoted_user_ids=[],
        created_at="2026-01-01T12:00:00+00:00",
    )


# --- setup ---------------------------------------------------------------------


@asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """A migrated database of the benchmark's own, dropped at the end."""
    name = f"tica_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(DATABASE_URL)._replace(path="/" + name))
    try:
        conn = await db.connect(url)
        try:
            await db.migrate(conn, migration_plan())
        finally:
            await conn.close()
        yield url
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def delete_prefix(redis: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def fill_outbox(pool: asyncpg.Pool, count: int) -> list[str]:
    """Insert `count` unpublished events (batched, not timed); their payloads as the relay will read them."""
    for start in range(0, count, 10_000):
        envelopes = [Envelope.wrap(post_event(n), actor_id=42) for n in range(start, min(start + 10_000, count))]
        await pool.execute(
            "INSERT INTO forum.outbox (event_id, type, payload) "
            "SELECT e, t, p::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(e, t, p)",
            [e.id for e in envelopes],
            [e.type for e in envelopes],
            [e.to_json() for e in envelopes],
        )
    await pool.execute("VACUUM ANALYZE forum.outbox")
    return [r["payload"] for r in await pool.fetch("SELECT payload::text AS payload FROM forum.outbox ORDER BY id")]


# --- throughput ----------------------------------------------------------------


async def relay_throughput(pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str, count: int) -> Row:
    """(a) Relay.publish_all() over a full outbox."""
    stream = stream_name(prefix)
    relay = Relay(pool, redis, stream, FORUM_OUTBOX, maxlen=max(count, 200_000))
    started = time.perf_counter()
    published = await relay.publish_all()
    seconds = time.perf_counter() - started
    assert published == count == await redis.xlen(stream), (published, count)
    return Row("(a) relay: outbox -> stream", published, seconds)


async def raw_xadd_throughput(redis: aioredis.Redis, prefix: str, payloads: list[str]) -> Row:
    """(b) Pipelined XADD of the same payloads, 1,000 a round trip."""
    stream = f"{prefix}raw"
    started = time.perf_counter()
    for start in range(0, len(payloads), 1000):
        pipe = redis.pipeline(transaction=False)
        for payload in payloads[start : start + 1000]:
            pipe.xadd(stream, {STREAM_FIELD: payload}, maxlen=max(len(payloads), 200_000), approximate=True)
        await pipe.execute()
    seconds = time.perf_counter() - started
    assert await redis.xlen(stream) == len(payloads)
    return Row("(b) raw pipelined XADD, 1,000/batch", len(payloads), seconds)


# --- latency -------------------------------------------------------------------


async def paced(rate: int, seconds: float, writers: int, send: Callable[[int], Awaitable[None]]) -> float:
    """Call send(n) for n = 0, 1, ... at `rate` per second, spread over `writers` tasks; returns the time taken."""
    total = int(rate * seconds)
    started = time.perf_counter()

    async def writer(first: int) -> None:
        for n in range(first, total, writers):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(n)

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return time.perf_counter() - started


async def wait_for_count(seen: dict[str, float], count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def commit_to_handler(
    pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str, dsn: str, rate: int, seconds: float
) -> Row:
    """(c) From just before COMMIT of write_event to the consumer's handler, with Relay.run and Consumer.run."""
    stream = stream_name(prefix)
    sent: dict[str, float] = {}
    received: dict[str, float] = {}

    async def handler(envelope: Envelope) -> None:
        received[envelope.id] = time.perf_counter()

    consumer = Consumer(redis, stream, "bench", "c1", handler, dead_letter_stream(prefix, "bench"))
    await consumer.ensure_group()
    relay = Relay(pool, redis, stream, FORUM_OUTBOX)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop, dsn)), asyncio.create_task(consumer.run(stop))]
    await asyncio.sleep(0.5)  # the relay is listening

    async def send(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            envelope = await write_event(conn, post_event(n), actor_id=42, outbox=FORUM_OUTBOX)
            sent[envelope.id] = time.perf_counter()

    took = await paced(rate, seconds, 8, send)
    await wait_for_count(received, len(sent), 30)
    stop.set()
    await asyncio.gather(*tasks)
    latencies = [(received[i] - t0) * 1000 for i, t0 in sent.items() if i in received]
    assert len(latencies) == len(sent), f"{len(sent) - len(latencies)} events not handled"
    return Row(f"(c) commit -> handler at {rate:,}/s", len(sent), took, latencies)


async def raw_xadd_to_xreadgroup(
    redis: aioredis.Redis, prefix: str, payloads: list[str], rate: int, seconds: float
) -> Row:
    """(d) One XADD each at the same rate to an XREADGROUP reader that acks each entry."""
    stream = f"{prefix}raw-latency"
    await redis.xgroup_create(stream, "bench", id="0", mkstream=True)
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            reply = await redis.xreadgroup("bench", "r1", {stream: ">"}, count=100, block=200)
            for entry_id, _ in reply[0][1] if reply else []:
                received[entry_id.decode()] = time.perf_counter()
                await redis.xack(stream, "bench", entry_id)

    async def send(n: int) -> None:
        t0 = time.perf_counter()
        entry_id = await redis.xadd(stream, {STREAM_FIELD: payloads[n % len(payloads)]})
        sent[entry_id.decode()] = t0

    task = asyncio.create_task(reader())
    took = await paced(rate, seconds, 8, send)
    await wait_for_count(received, len(sent), 30)
    stop.set()
    await task
    latencies = [(received[i] - t0) * 1000 for i, t0 in sent.items() if i in received]
    return Row(f"(d) raw XADD -> XREADGROUP at {rate:,}/s", len(sent), took, latencies)


# --- main ----------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = ["measure", "events", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    body = [row.cells() for row in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = []
    for r in [head, *body]:
        pairs = enumerate(zip(r, widths, strict=True))
        cells = [cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in pairs]
        lines.append("  ".join(cells))
    return "\n".join(lines)


async def main(events: int, rate: int, seconds: float) -> None:
    prefix = f"tica-bench-{secrets.token_hex(4)}:"
    load_before = os.getloadavg()[0]
    redis = aioredis.Redis.from_url(REDIS_URL)
    rows: list[Row] = []
    try:
        async with bench_database() as url:
            pool = await db.create_pool(url, min_size=4, max_size=12)
            try:
                payloads = await fill_outbox(pool, events)
                rows.append(await relay_throughput(pool, redis, prefix, events))
                rows.append(await raw_xadd_throughput(redis, prefix, payloads))
                await pool.execute("TRUNCATE forum.outbox")
                await redis.delete(stream_name(prefix))
                rows.append(await commit_to_handler(pool, redis, prefix, url, rate, seconds))
                rows.append(await raw_xadd_to_xreadgroup(redis, prefix, payloads, rate, seconds))
            finally:
                await pool.close()
    finally:
        await delete_prefix(redis, prefix)
        await redis.aclose()
    print(table(rows))
    # Other work on the machine shows in the latencies first: say how busy it was.
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} cores")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the outbox for (a) and (b)")
    parser.add_argument("--rate", type=int, default=1000, help="events per second for (c) and (d)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (c) and (d) run")
    options = parser.parse_args()
    asyncio.run(main(options.events, options.rate, options.seconds))
