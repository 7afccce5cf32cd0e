"""Private messages, the inbox: 10,000 conversations, one member in 500 of them; the inbox page (HTML)
and the inbox API timed at the server, beside a baseline measured in the same run the same way: the
home page's latest topics (HTML) and GET /api/topics.

    .venv/bin/python bench/messages.py [--requests 300] [--conversations 10000] [--mine 500]

The forum runs in this process (the all-in-one ASGI app, no background loops) and each request is timed
from the moment it enters the app until its last byte leaves it: the time at the server, without a
network or a client. Requests are sequential, after a warm-up. The data is written with bulk SQL: 2,000
members, the conversations (each between two members, 3 messages each, about half of the member's
unread), and 30 topics for the baseline (through the API, as an admin).

Needs PostgreSQL and Redis (TICA_BENCH_DATABASE_URL, TICA_BENCH_REDIS_URL; default the local ones);
creates and drops its own database and Redis key prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.allinone import AllInOne  # noqa: E402
from services.cli import apply_migrations  # noqa: E402
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore  # noqa: E402
from shared.settings import Settings  # noqa: E402

DATABASE = os.environ.get("TICA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TICA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMBERS = 2000

SEED_SQL = """
INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at, created_at)
SELECT 'member' || n, 'member' || n || '@example.org', 'no-login', 'Member ' || n,
       CASE WHEN n = 2 THEN ARRAY['member', 'admin'] ELSE ARRAY['member'] END, now(), now() - interval '1 year'
FROM generate_series(1, {members}) n;

-- Member 1 (the one measured) is in every ({every})th conversation; the others pair up across the rest.
CREATE TEMP TABLE pairs AS
SELECT n, CASE WHEN n % {every} = 0 THEN 1 ELSE 3 + (n % 997) END AS a, 1001 + (n % 997) AS b
FROM generate_series(1, {conversations}) n;

INSERT INTO forum.conversations (title, started_by, created_at, last_message_at)
SELECT 'Conversation number ' || n, a, now() - n * interval '1 minute', now() - n * interval '1 minute'
FROM pairs ORDER BY n;

INSERT INTO forum.messages (conversation_id, author_id, raw, cooked, plain, created_at)
SELECT p.n, CASE WHEN k % 2 = 1 THEN p.a ELSE p.b END,
       'Message ' || k || ' of conversation ' || p.n || ', with a few words in it so that it reads like one.',
       '<p>Message ' || k || ' of conversation ' || p.n || ', with a few words in it so that it reads like one.</p>',
       'Message ' || k || ' of conversation ' || p.n || ', with a few words in it so that it reads like one.',
       now() - p.n * interval '1 minute' - (3 - k) * interval '1 second'
FROM pairs p, generate_series(1, 3) k
ORDER BY p.n, k;

UPDATE forum.conversations c SET last_message_id = m.last_id, message_count = 3
FROM (SELECT conversation_id, max(id) AS last_id FROM forum.messages GROUP BY conversation_id) m
WHERE m.conversation_id = c.id;

INSERT INTO forum.conversation_members (conversation_id, user_id, state, joined_at, last_read_message_id,
                                        last_message_id, last_message_at)
SELECT c.id, u.user_id, 'active', c.created_at,
       CASE WHEN c.id % 2 = 0 THEN c.last_message_id ELSE c.last_message_id - 1 END, c.last_message_id,
       c.last_message_at
FROM forum.conversations c JOIN pairs p ON p.n = c.id
CROSS JOIN LATERAL (VALUES (p.a), (p.b)) AS u(user_id);
ANALYZE;
"""


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(DATABASE)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Timed:
    """An ASGI wrapper timing each request from its start to the last byte of its answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_ms = (time.perf_counter() - started) * 1000

        await self.app(scope, receive, timed_send)


async def seed(settings: Settings, conversations: int, mine: int) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        every = max(1, conversations // mine)
        await conn.execute(SEED_SQL.format(members=MEMBERS, every=every, conversations=conversations))
        count = await conn.fetchval(
            "SELECT count(*) FROM forum.conversation_members WHERE user_id = 1 AND state = 'active'"
        )
        print(f"seeded: {conversations:,} conversations, member 1 in {count}")
    finally:
        await conn.close()


async def client_for(app: Any, store: SessionStore, user_id: int, username: str, roles: list[str]) -> httpx.AsyncClient:
    session = await store.create(user_id=user_id, username=username, roles=roles, group_ids=[])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.test")
    http.cookies.set(SESSION_COOKIE, session.id)
    http.cookies.set(CSRF_COOKIE, session.csrf)
    http.headers[CSRF_HEADER] = session.csrf
    return http


async def measure(http: httpx.AsyncClient, timed: Timed, path: str, requests: int) -> list[float]:
    for _ in range(20):  # warm-up: caches, prepared statements, pool connections
        (await http.get(path)).raise_for_status()
    times = []
    for _ in range(requests):
        response = await http.get(path)
        response.raise_for_status()
        times.append(timed.last_ms)
    return times


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"| {name} | {statistics.median(ordered):.1f} | {pick(0.95):.1f} | {pick(0.99):.1f} | {ordered[-1]:.1f} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--mine", type=int, default=500)
    args = parser.parse_args()
    run_id = secrets.token_hex(4)
    name = f"tica_bench_inbox_{run_id}"
    await admin_sql(f"CREATE DATABASE {name}")
    settings = Settings.from_env({}).replace(
        database_url=with_database(DATABASE, name),
        redis_url=REDIS,
        redis_prefix=f"tica-bench-{run_id}:",
        secret_key=secrets.token_urlsafe(48),
    )
    redis = aioredis.from_url(REDIS)
    try:
        await apply_migrations(settings)
        await seed(settings, args.conversations, args.mine)
        allinone = AllInOne(settings, background=False)
        timed = Timed(allinone)
        store = SessionStore(redis, settings.redis_prefix)
        async with allinone.running():
            member = await client_for(timed, store, 1, "member1", ["member"])
            staff = await client_for(timed, store, 2, "member2", ["member", "admin"])
            category = (await staff.post("/api/categories", json={"name": "General"})).json()
            for n in range(30):
                body = {"category_id": category["id"], "title": f"Benchmark topic {n}", "body": "Some words."}
                (await staff.post("/api/topics", json=body)).raise_for_status()
            results = []
            for label, path in (
                ("inbox page `/messages`", "/messages"),
                ("inbox API `/api/conversations`", "/api/conversations"),
                ("baseline: home page `/` (latest topics)", "/"),
                ("baseline: `/api/topics`", "/api/topics"),
            ):
                results.append(row(label, await measure(member, timed, path, args.requests)))
            await member.aclose()
            await staff.aclose()
        load = os.getloadavg()[0]
        print(f"\n{args.requests} sequential requests each, at the server (ms); load average {load:.1f}\n")
        print("| request | p50 | p95 | p99 | max |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print("\n".join(results))
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
