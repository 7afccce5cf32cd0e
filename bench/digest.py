"""Digest benchmark: N members' digests built from notify's projections and handed to an SMTP sink.

    .venv/bin/python bench/digest.py [--members 100000] [--topics 2000] [--posts 20000] [--concurrency 8]

Fills notify's projections directly (bulk SQL, not timed): members a week old and due,
public and group categories, topics and a week of posts (some content-noted), some
muted topics and ignored members. Then `digests.send_due_now()` (what `tica digests
run --now` does) builds and sends every due digest through SMTP_URL to an aiosmtpd sink
in a process of its own, which only counts what it receives. Timed: the whole run,
and how the time splits between building (SQL and templates) and SMTP.

Real servers: TICA_BENCH_DATABASE_URL / TICA_BENCH_REDIS_URL (default the local ones);
a database `tica_bench_<random>` and a key prefix of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from bench.events import REDIS_URL, bench_database, delete_prefix
from services.notify import digests, mail
from shared.settings import Settings
from shared.web import open_runtime

SECRET = "bench-secret-" + "x" * 40


# --- the SMTP sink (its own process) ------------------------------------------------------------


class CountingSink:
    def __init__(self, counter: Any, size: Any) -> None:
        self.counter, self.size = counter, size

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.counter.get_lock():
            self.counter.value += 1
            self.size.value += len(envelope.content)
        return "250 OK"


def sink_process(port: int, counter: Any, size: Any, ready: Any, stop: Any, cpu_s: Any) -> None:
    import resource

    from aiosmtpd.controller import Controller

    controller = Controller(CountingSink(counter, size), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s.value = usage.ru_utime + usage.ru_stime


# --- filling the projections -----------------------------------------------------------------------

FILL_SQL = [
    # Members: verified, registered eight days ago, never seen since (so every one is due).
    """INSERT INTO notify.users (id, username, display_name, email, email_verified, roles, group_ids, registered_at)
       SELECT g, 'member' || g, 'Member ' || g, 'member' || g || '@example.org', true,
              CASE WHEN g % 500 = 0 THEN '{member,moderator}'::text[] ELSE '{member}'::text[] END,
              CASE WHEN g % 10 = 0 THEN '{7}'::bigint[] ELSE '{}'::bigint[] END,
              now() - interval '8 days'
       FROM generate_series(1, $1) g""",
    """INSERT INTO notify.categories (id, slug, name, audience)
       SELECT g, 'c' || g, 'Category ' || g, CASE WHEN g = 6 THEN '{group:7}'::text[] ELSE '{public}'::text[] END
       FROM generate_series(1, 6) g""",
    """INSERT INTO notify.topics (id, category_id, title, slug, author_id, audience, content_note, created_at)
       SELECT g, 1 + g % 6, 'Topic number ' || g || ' about trauma-informed practice', 'topic-' || g,
              1 + (g * 7919) % $1, CASE WHEN g % 6 = 5 THEN '{group:7}'::text[] ELSE '{public}'::text[] END,
              CASE WHEN g % 50 = 0 THEN 'self-harm' END, now() - interval '6 days'
       FROM generate_series(1, $2) g""",
    # A week of posts, spread over the topics (some much busier than others).
    """INSERT INTO notify.posts (id, topic_id, post_number, author_id, author_username, excerpt, content_note,
                                created_at)
       SELECT g, 1 + ((g * g) % $2), 1 + g / $2, 1 + (g * 104729) % $1, 'member' || (1 + (g * 104729) % $1),
              'We started each handover with two minutes of grounding, and it changed how the shift felt. ' ||
              'Here is what we learned about making it stick.', CASE WHEN g % 40 = 0 THEN 'suicide' END,
              now() - (g % 6000) * interval '1 minute'
       FROM generate_series(1, $3) g""",
    """INSERT INTO notify.watches (user_id, target_kind, target_id, level)
       SELECT g, 'topic', 1 + g % $2, 'muted' FROM generate_series(1, $1, 20) g""",
    """INSERT INTO notify.mutes (user_id, muted_user_id, level, event_id)
       SELECT g, 1 + (g * 31) % $1, 'ignored', gen_random_uuid() FROM generate_series(1, $1, 25) g""",
    "ANALYZE",
]


async def fill(pool: Any, members: int, topics: int, posts: int) -> None:
    for sql in FILL_SQL:
        used = max((n for n in (1, 2, 3) if f"${n}" in sql), default=0)
        await pool.execute(sql, *[members, topics, posts][:used])


# --- timing the parts -------------------------------------------------------------------------------


class Timer:
    """Wraps build_digest and deliver to add up the time spent in each (wall time, overlapping tasks)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def wrap(self, module: Any, name: str, label: str) -> None:
        original = getattr(module, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        setattr(module, name, timed)


async def main(members: int, topics: int, posts: int, concurrency: int) -> None:
    prefix = f"tica-bench-{secrets.token_hex(4)}:"
    redis = aioredis.Redis.from_url(REDIS_URL)
    ctx = mp.get_context("spawn")
    counter, size, ready, stop = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event(), ctx.Event()
    sink_cpu_s = ctx.Value("d", 0.0)
    port = _free_port()
    sink = ctx.Process(target=sink_process, args=(port, counter, size, ready, stop, sink_cpu_s))
    sink.start()
    load_before = os.getloadavg()[0]
    try:
        await asyncio.to_thread(ready.wait, 30)
        async with bench_database() as url:
            settings = Settings.from_env({}).replace(
                database_url=url,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                secret_key=SECRET,
                smtp_url=f"smtp://127.0.0.1:{port}",
                base_url="https://tica.example.org",
            )
            async with open_runtime(settings, pool_max=concurrency + 2) as rt:
                filled = time.perf_counter()
                await fill(rt.pool, members, topics, posts)
                fill_s = time.perf_counter() - filled
                timer = Timer()
                timer.wrap(digests, "build_digest", "build (SQL)")
                timer.wrap(mail, "deliver", "SMTP")
                started, cpu_before = time.perf_counter(), _cpu_s()
                results = await digests.send_due_now(rt, concurrency=concurrency)
                took, builder_cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
                sent_rows = await rt.pool.fetchval("SELECT count(*) FROM notify.sent_mail")
    finally:
        stop.set()
        sink.join(30)
        await delete_prefix(redis, prefix)
        await redis.aclose()
    received = counter.value
    print(f"members: {members:,}; topics: {topics:,}; posts in the week: {posts:,}; fill (untimed) {fill_s:.0f} s")
    print(
        f"results: {dict(results)}; sent_mail rows: {sent_rows:,}; the sink received {received:,} "
        f"({size.value / max(received, 1) / 1024:.1f} KiB each)"
    )
    print(
        f"total: {took:.1f} s = {members / took:,.0f} digests/s; 100,000 would take {100_000 / (members / took):.0f} s"
    )
    print(
        f"CPU: the builder process {builder_cpu_s:.0f} s, the SMTP sink {sink_cpu_s.value:.0f} s "
        f"(of {took:.0f} s wall time)"
    )
    busy = sum(timer.seconds.values())
    for label, seconds in timer.seconds.most_common():
        print(f"  {label}: {seconds / concurrency:.1f} s of the wall time per task ({seconds / busy:.0%} of task time)")
    print(
        f"concurrency {concurrency}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{os.cpu_count()} cores"
    )


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--topics", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    asyncio.run(main(options.members, options.topics, options.posts, options.concurrency))
