"""Helpers for notify's tests: events as the forum emits them, a real SMTP server, real uvicorn.

Tests produce events the way the forum does (write_event in a transaction on forum.outbox, the
relay publishes them) and drive notify's writer with `read_once()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import uvicorn
from aiosmtpd.controller import Controller

from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from services.notify import projections
from shared import events as ev
from shared.settings import Settings
from shared.web import Runtime

_ids = itertools.count(1000)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- events as the forum emits them ------------------------------------------------------------


def registered(
    user_id: int, username: str, *, email_address: str | None = None, verified: bool = True
) -> ev.UserRegistered:
    return ev.UserRegistered(
        user_id=user_id,
        username=username,
        display_name=username.title(),
        email=email_address or f"{username}@example.org",
        email_verified=verified,
    )


def updated(
    user_id: int,
    username: str,
    *,
    roles: list[str] | None = None,
    group_ids: list[int] | None = None,
    verified: bool = True,
    suspended_until: str | None = None,
    email_address: str | None = None,
) -> ev.UserUpdated:
    return ev.UserUpdated(
        user_id=user_id,
        username=username,
        display_name=username.title(),
        roles=roles or ["member"],
        email_verified=verified,
        suspended_until=suspended_until,
        email=email_address,
        group_ids=group_ids,
    )


def category(category_id: int, *, audience: list[str] | None = None, slug: str | None = None) -> ev.CategoryCreated:
    return ev.CategoryCreated(
        category_id=category_id,
        slug=slug or f"c{category_id}",
        name=f"Category {category_id}",
        audience=audience or ["public"],
    )


def topic(
    topic_id: int,
    *,
    author_id: int,
    author_username: str = "author",
    category_id: int = 1,
    title: str | None = None,
    audience: list[str] | None = None,
    content_note: str | None = None,
) -> ev.TopicCreated:
    return ev.TopicCreated(
        topic_id=topic_id,
        category_id=category_id,
        title=title or f"Topic {topic_id}",
        slug=f"topic-{topic_id}",
        kind="discussion",
        author_id=author_id,
        author_username=author_username,
        audience=audience or ["public"],
        content_note=content_note,
        created_at=now_iso(),
    )


def post(
    post_id: int,
    *,
    topic_id: int,
    number: int,
    author_id: int,
    author_username: str = "author",
    text: str = "A thoughtful reply about trauma-informed practice.",
    category_id: int = 1,
    audience: list[str] | None = None,
    reply_to_user_id: int | None = None,
    mentioned: tuple[int, ...] = (),
    quoted: tuple[int, ...] = (),
    content_note: str | None = None,
    topic_title: str | None = None,
    created_at: str | None = None,
) -> ev.PostCreated:
    return ev.PostCreated(
        post_id=post_id,
        topic_id=topic_id,
        post_number=number,
        category_id=category_id,
        topic_title=topic_title or f"Topic {topic_id}",
        author_id=author_id,
        author_username=author_username,
        text=text,
        content_note=content_note,
        audience=audience or ["public"],
        reply_to_post_id=None,
        reply_to_user_id=reply_to_user_id,
        mentioned_user_ids=list(mentioned),
        quoted_user_ids=list(quoted),
        created_at=created_at or now_iso(),
    )


def reaction(
    post_id: int,
    *,
    topic_id: int,
    post_author_id: int,
    user_id: int,
    kind: str = "heart",
    removed: bool = False,
    audience: list[str] | None = None,
) -> ev.Event:
    cls = ev.ReactionRemoved if removed else ev.ReactionAdded
    return cls(
        post_id=post_id,
        topic_id=topic_id,
        post_author_id=post_author_id,
        user_id=user_id,
        kind=kind,
        audience=audience or ["public"],
    )


# --- producing and handling ---------------------------------------------------------------------


async def emit(
    pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings, *events: ev.Event, actor_id: int | None = None
) -> list[ev.Envelope]:
    """Write events in one forum transaction and publish them, as the forum does."""
    envelopes = []
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            envelopes.append(await ev.write_event(conn, event, actor_id=actor_id, outbox=FORUM_OUTBOX))
    await ev.Relay(
        pool, redis, ev.stream_name(settings.redis_prefix), FORUM_OUTBOX, maxlen=settings.stream_maxlen
    ).publish_all()
    return envelopes


async def drain(consumer: ev.Consumer) -> int:
    """Let a consumer handle everything new on the stream."""
    total = 0
    while (count := await consumer.read_once()) > 0:
        total += count
    return total


async def wait_for(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 5.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class World:
    """The forum side as notify sees it: events in, notifications out."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    settings: Settings
    rt: Runtime
    consumer: ev.Consumer
    users: dict[int, str] = field(default_factory=dict)

    async def emit(self, *events: ev.Event, actor_id: int | None = None, handle: bool = True) -> list[ev.Envelope]:
        envelopes = await emit(self.pool, self.redis, self.settings, *events, actor_id=actor_id)
        if handle:
            await drain(self.consumer)
        return envelopes

    async def join(
        self,
        user_id: int,
        username: str,
        *,
        roles: list[str] | None = None,
        group_ids: list[int] | None = None,
        verified: bool = True,
    ) -> None:
        """A member as notify learns of them: registered, then updated with roles and groups."""
        self.users[user_id] = username
        await self.emit(
            registered(user_id, username, verified=verified),
            updated(user_id, username, roles=roles, group_ids=group_ids or [], verified=verified),
        )

    async def notifications(self, user_id: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM notify.notifications WHERE user_id = $1 ORDER BY id", user_id))

    async def watch(self, user_id: int, target: str, level: str) -> None:
        """A member chooses a watch level (as PUT /api/watch does)."""
        kind, _, number = target.partition(":")
        async with self.pool.acquire() as conn:
            await projections.set_watch(conn, user_id, kind, int(number), level)

    async def seen(self, user_id: int, at: datetime | None = None) -> None:
        await self.pool.execute(
            "UPDATE notify.users SET last_seen_at = $2 WHERE id = $1", user_id, at or datetime.now(UTC)
        )


def next_id() -> int:
    return next(_ids)


# --- a real SMTP server ------------------------------------------------------------------------------


class MailSink:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@contextlib.contextmanager
def smtp_server() -> Any:
    """A real SMTP server on a free loopback port: (sink, port)."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of a mail."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "a mail has a text and an HTML part"
    return text.get_content(), html.get_content()


# --- real uvicorn ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn (websockets) on a free loopback port; yields the port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _started(server, task), timeout_s=10, what="uvicorn to start")
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises the start-up error
    return bool(server.started)
