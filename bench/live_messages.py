"""Private messages, send to live delivery: a message POSTed to the forum's API until the event
reaches the recipient's `/live` websocket, at a steady rate, beside a baseline measured in the same
run the same way: a reply POSTed to a topic until post.created reaches a reader of `topic:N`.

    .venv/bin/python bench/live_messages.py [--rate 50] [--seconds 20] [--conversations 20]

Real servers in processes of their own: `tica serve forum` (two workers, its outbox relay) and
`tica serve notify` (its writer, which projects who is in each conversation, and the live fan-out).
Senders write with API tokens; each conversation's recipient follows `conversation:<id>` on a
websocket with their session cookie, as the conversation page's script does. Sends are open-loop
(scheduled at the rate whatever the answers), spread round robin over the conversations. Measured per
message: from just before the POST to the websocket message (p50, p99, max), how many arrived, and
the POST's own answer time (p50/p99: how much of the delivery time is the forum's write) and the
p99 of the time from the 201 to the websocket message (the live leg, as near as a client can see it).

Needs PostgreSQL and Redis (TICA_BENCH_DATABASE_URL, TICA_BENCH_REDIS_URL; default the local ones);
creates and drops its own database and Redis key prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.events import delete_prefix  # noqa: E402
from bench.forum import BIN, DATABASE, REDIS, admin, free_port, start, stop, wait_ready, with_database  # noqa: E402
from services.cli import apply_migrations  # noqa: E402
from shared.sessions import SessionStore, token_digest  # noqa: E402
from shared.settings import Settings  # noqa: E402

TEXT = "Thank you for writing. I'm here, and there's no rush: take your time, and say as much or as little as you like."


@dataclass
class Person:
    id: int
    username: str
    session: str
    token: str


@dataclass
class Run:
    """One measured stream of sends: when each was sent (by the id the answer gave) and received."""

    label: str
    sent_at: dict[int, float] = field(default_factory=dict)
    received_at: dict[int, float] = field(default_factory=dict)
    answered_at: dict[int, float] = field(default_factory=dict)  # the 201: where the time goes
    failed: int = 0

    def summary(self) -> dict[str, float]:
        ms = sorted((self.received_at[i] - t) * 1000 for i, t in self.sent_at.items() if i in self.received_at)
        if not ms:
            return {"sent": len(self.sent_at), "received": 0, "failed": self.failed}
        return {
            "sent": len(self.sent_at),
            "received": len(ms),
            "failed": self.failed,
            "p50": statistics.median(ms),
            "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "max": ms[-1],
            "post_p50": _percentile([(self.answered_at[i] - t) * 1000 for i, t in self.sent_at.items()], 0.5),
            "post_p99": _percentile([(self.answered_at[i] - t) * 1000 for i, t in self.sent_at.items()], 0.99),
            # After the forum answered (negative: the event reached the socket before the answer reached us).
            "after_p99": _percentile(
                [(self.received_at[i] - self.answered_at[i]) * 1000 for i in self.sent_at if i in self.received_at],
                0.99,
            ),
        }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def seed(settings: Settings, pairs: int) -> tuple[list[Person], list[Person]]:
    """Senders and recipients (members of some standing), each with a session and an API token."""
    assert settings.database_url and settings.redis_url
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.Redis.from_url(settings.redis_url)
    store = SessionStore(redis, settings.redis_prefix)
    people: list[Person] = []
    try:
        await conn.execute("INSERT INTO forum.categories (name, slug) VALUES ('Practice', 'practice')")
        for n in range(pairs * 2):
            username = f"bench{n}"
            user_id = await conn.fetchval(
                "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at, "
                "created_at) VALUES ($1, $2, 'x', $3, '{member}', now(), now() - interval '90 days') RETURNING id",
                username,
                f"{username}@example.org",
                f"Bench {n}",
            )
            session = await store.create(user_id=user_id, username=username, roles=["member"], group_ids=[])
            token = "tica_" + secrets.token_urlsafe(32)
            await store.store_token(
                token_digest(token), user_id=user_id, username=username, roles=["member"], group_ids=[]
            )
            people.append(Person(user_id, username, session.id, token))
    finally:
        await redis.aclose()
        await conn.close()
    return people[:pairs], people[pairs:]


async def receive(ws: ClientConnection, run: Run, key: str) -> None:
    """Note when each event arrives (by its message or post id)."""
    async for raw in ws:
        now = time.perf_counter()
        message = json.loads(raw)
        if message.get("type") == "event" and key in message.get("data", {}):
            run.received_at.setdefault(int(message["data"][key]), now)


async def follow(notify: str, person: Person, channel: str) -> ClientConnection:
    ws = await connect(notify, additional_headers={"Cookie": f"tica_session={person.session}"}, open_timeout=10)
    await ws.send(json.dumps({"type": "subscribe", "channels": [channel]}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if message.get("type") == "subscribed":
            return ws
        if message.get("type") == "error":
            raise RuntimeError(f"{person.username} could not follow {channel}: {message}")


async def send_at_rate(
    http: httpx.AsyncClient,
    run: Run,
    targets: list[tuple[str, str]],
    body_key: str,
    key: str,
    rate: float,
    seconds: float,
) -> None:
    """POST to the targets round robin at `rate` a second (open loop), noting each send's start."""
    count = int(rate * seconds)
    start_at = time.perf_counter()

    async def one(n: int) -> None:
        path, token = targets[n % len(targets)]
        await asyncio.sleep(max(0.0, start_at + n / rate - time.perf_counter()))
        began = time.perf_counter()
        response = await http.post(path, json={body_key: f"{TEXT} ({n})"}, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 201:
            run.failed += 1
            if run.failed <= 3:
                print(f"  {run.label}: {response.status_code} {response.text[:200]}", flush=True)
            return
        answered = time.perf_counter()
        sent_id = int(response.json()["id"])  # a message's or a reply's
        run.sent_at[sent_id], run.answered_at[sent_id] = began, answered

    await asyncio.gather(*(one(n) for n in range(count)))
    await asyncio.sleep(2.0)  # the last ones' delivery


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="sends a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of sending, each run")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--forum-workers", type=int, default=2)
    args = parser.parse_args()

    run_id = secrets.token_hex(4)
    name = f"tica_bench_messages_{run_id}"
    await admin(f"CREATE DATABASE {name}")
    settings = Settings.from_env({}).replace(
        database_url=with_database(DATABASE, name),
        redis_url=REDIS,
        redis_prefix=f"tica-bench-{run_id}:",
        secret_key=secrets.token_urlsafe(48),
    )
    processes = []
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    try:
        await apply_migrations(settings)
        senders, recipients = await seed(settings, args.conversations)
        forum_port, notify_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": REDIS,
            "TICA_REDIS_PREFIX": settings.redis_prefix,
            "TICA_SECRET_KEY": settings.secret_key or "",
            "TICA_LOG_LEVEL": "WARNING",
            # The bench measures delivery, not the limits that keep a person from flooding others.
            "TICA_POSTS_PER_MINUTE": "100000",
            "TICA_NEW_MEMBER_POSTS_PER_MINUTE": "100000",
            "TICA_CONVERSATIONS_PER_DAY": "100000",
            "PYTHONPATH": str(ROOT),
        }
        for service, port, workers in (("forum", forum_port, str(args.forum_workers)), ("notify", notify_port, "1")):
            cmd = [
                str(BIN / "python"),
                "-m",
                "services.cli",
                "serve",
                service,
                "--workers",
                workers,
                "--port",
                str(port),
            ]
            log = Path(f"/tmp/tica-bench-messages-{run_id}-{service}.log")
            processes.append(start(cmd, {**env, "PORT": str(port)}, log=log, cwd=ROOT))
        forum, notify = f"http://127.0.0.1:{forum_port}", f"ws://127.0.0.1:{notify_port}/live"
        await wait_ready(forum + "/readyz")
        await wait_ready(f"http://127.0.0.1:{notify_port}/readyz")

        async with httpx.AsyncClient(base_url=forum, timeout=30, limits=httpx.Limits(max_connections=64)) as http:
            conversations: list[int] = []
            for sender, recipient in zip(senders, recipients, strict=True):
                response = await http.post(
                    "/api/conversations",
                    json={"recipients": [recipient.username], "title": "A quiet word", "text": TEXT},
                    headers={"Authorization": f"Bearer {sender.token}"},
                )
                response.raise_for_status()
                conversations.append(int(response.json()["id"]))
            category = (await http.get("/api/categories")).json()["items"][0]["id"]
            topic = await http.post(
                "/api/topics",
                json={"category_id": category, "title": "What does safety mean here?", "body": TEXT},
                headers={"Authorization": f"Bearer {senders[0].token}"},
            )
            topic.raise_for_status()
            topic_id = int(topic.json()["id"])

            messages, replies = Run("message send -> live delivery"), Run("baseline: reply -> live delivery")
            for recipient, conversation_id in zip(recipients, conversations, strict=True):
                ws = await follow(notify, recipient, f"conversation:{conversation_id}")  # waits out the projection
                sockets.append(ws)
                readers.append(asyncio.create_task(receive(ws, messages, "message_id")))
            reader = await follow(notify, recipients[0], f"topic:{topic_id}")
            sockets.append(reader)
            readers.append(asyncio.create_task(receive(reader, replies, "post_id")))

            message_targets = [
                (f"/api/conversations/{c}/messages", s.token) for c, s in zip(conversations, senders, strict=True)
            ]
            reply_targets = [(f"/api/topics/{topic_id}/posts", s.token) for s in senders]
            print(f"{args.rate:g}/s for {args.seconds:g} s each, {args.conversations} conversations", flush=True)
            # Baseline, messages, baseline again: both see the same machine and the same warm servers.
            await send_at_rate(http, replies, reply_targets, "body", "post_id", args.rate, args.seconds / 2)
            await send_at_rate(http, messages, message_targets, "text", "message_id", args.rate, args.seconds)
            await send_at_rate(http, replies, reply_targets, "body", "post_id", args.rate, args.seconds / 2)

        print(
            f"{'':36} {'sent':>6} {'recv':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
            "  POST p50/p99, after 201 p99"
        )
        for run in (messages, replies):
            s = run.summary()
            p50, p99, most, post50, post99, after99 = (
                s.get(k, float("nan")) for k in ("p50", "p99", "max", "post_p50", "post_p99", "after_p99")
            )
            print(
                f"{run.label:36} {s['sent']:>6} {s['received']:>6} {s['failed']:>6} "
                f"{p50:>8.1f} {p99:>8.1f} {most:>8.1f}  {post50:.1f}/{post99:.1f}, {after99:.1f}"
            )
    finally:
        for task in readers:
            task.cancel()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for process in processes:
            stop(process)
        redis = aioredis.Redis.from_url(REDIS)
        try:
            await delete_prefix(redis, settings.redis_prefix)
        finally:
            await redis.aclose()
        await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
