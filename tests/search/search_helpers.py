"""Helpers for the search tests: a stand-in for the forum that writes its rows and events
in one transaction (as the forum does), and the real event path into the index
(outbox -> relay -> Redis stream -> the search-indexer consumer group)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from services.forum import access
from services.forum.demo import tiny_pdf
from services.search import indexer
from shared.events import (
    CategoryCreated,
    CategoryUpdated,
    Consumer,
    Event,
    PostCreated,
    PostDeleted,
    PostEdited,
    PostHidden,
    PostRestored,
    Relay,
    TopicCreated,
    TopicUpdated,
    UserRegistered,
    stream_name,
    write_event,
)
from shared.settings import Settings

_numbers = itertools.count(1)
OUTBOX = "forum.outbox"  # where the forum writes its events


@dataclass
class Forum:
    """Writes forum rows and their events in one transaction each, like the forum does."""

    pool: asyncpg.Pool
    groups: dict[int, list[int]] = field(default_factory=dict)  # category id -> group ids

    async def _write(self, conn: asyncpg.Connection, event: Event, actor_id: int | None = None) -> None:
        await write_event(conn, event, actor_id=actor_id, outbox=OUTBOX)

    async def user(self, username: str, display_name: str | None = None) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO forum.users (username, email, password_hash, display_name, email_verified_at) "
                "VALUES ($1, $2, 'x', $3, now()) RETURNING id",
                username,
                f"{username}@example.org",
                display_name or username.title(),
            )
            await self._write(
                conn,
                UserRegistered(user_id=user_id, username=username, display_name=display_name or username.title()),
                user_id,
            )
        return int(user_id)

    async def category(self, name: str, slug: str | None = None, group_ids: tuple[int, ...] = ()) -> int:
        slug = slug or name.lower().replace(" ", "-")
        async with self.pool.acquire() as conn, conn.transaction():
            category_id = await conn.fetchval(
                "INSERT INTO forum.categories (name, slug, group_ids) VALUES ($1, $2, $3) RETURNING id",
                name,
                slug,
                list(group_ids),
            )
            await self._write(
                conn,
                CategoryCreated(
                    category_id=category_id, slug=slug, name=name, audience=access.groups_audience(group_ids)
                ),
            )
        self.groups[category_id] = list(group_ids)
        return int(category_id)

    async def set_groups(self, category_id: int, group_ids: tuple[int, ...]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE forum.categories SET group_ids = $2 WHERE id = $1 RETURNING name, slug",
                category_id,
                list(group_ids),
            )
            await self._write(
                conn,
                CategoryUpdated(
                    category_id=category_id,
                    slug=row["slug"],
                    name=row["name"],
                    audience=access.groups_audience(group_ids),
                ),
            )
        self.groups[category_id] = list(group_ids)

    async def _author(self, conn: asyncpg.Connection, user_id: int) -> str:
        return str(await conn.fetchval("SELECT username FROM forum.users WHERE id = $1", user_id))

    async def topic(
        self,
        category_id: int,
        author_id: int,
        title: str,
        body: str = "Opening post",
        created_at: datetime | None = None,
        content_note: str | None = None,
    ) -> tuple[int, int]:
        """A topic with its first post: (topic id, post id)."""
        created_at = created_at or datetime.now(UTC)
        slug = "-".join(title.lower().split())[:60] or "topic"
        async with self.pool.acquire() as conn, conn.transaction():
            topic_id = await conn.fetchval(
                "INSERT INTO forum.topics (category_id, title, slug, author_id, content_note, created_at, "
                "last_posted_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                category_id,
                title,
                slug,
                author_id,
                content_note,
                created_at,
            )
            await self._write(
                conn,
                TopicCreated(
                    topic_id=topic_id,
                    category_id=category_id,
                    title=title,
                    slug=slug,
                    kind="discussion",
                    author_id=author_id,
                    author_username=await self._author(conn, author_id),
                    audience=access.groups_audience(self.groups.get(category_id, [])),
                    content_note=content_note,
                    created_at=created_at.isoformat(),
                ),
                author_id,
            )
            post_id = await self._post(conn, topic_id, author_id, body, created_at, content_note)
        return int(topic_id), post_id

    async def reply(
        self,
        topic_id: int,
        author_id: int,
        body: str,
        created_at: datetime | None = None,
        content_note: str | None = None,
    ) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._post(conn, topic_id, author_id, body, created_at or datetime.now(UTC), content_note)

    async def _post(
        self,
        conn: asyncpg.Connection,
        topic_id: int,
        author_id: int,
        body: str,
        created_at: datetime,
        content_note: str | None,
    ) -> int:
        topic = await conn.fetchrow(
            "UPDATE forum.topics SET highest_post_number = highest_post_number + 1, posts_count = posts_count + 1 "
            "WHERE id = $1 RETURNING highest_post_number, category_id, title",
            topic_id,
        )
        post_id = await conn.fetchval(
            "INSERT INTO forum.posts (topic_id, post_number, author_id, raw, cooked, plain, content_note, created_at) "
            "VALUES ($1, $2, $3, $4, '', $4, $5, $6) RETURNING id",
            topic_id,
            topic["highest_post_number"],
            author_id,
            body,
            content_note,
            created_at,
        )
        await self._write(
            conn,
            PostCreated(
                post_id=post_id,
                topic_id=topic_id,
                post_number=topic["highest_post_number"],
                category_id=topic["category_id"],
                topic_title=topic["title"],
                author_id=author_id,
                author_username=await self._author(conn, author_id),
                text=body,
                content_note=content_note,
                audience=access.groups_audience(self.groups.get(topic["category_id"], [])),
                reply_to_post_id=None,
                reply_to_user_id=None,
                mentioned_user_ids=[],
                quoted_user_ids=[],
                created_at=created_at.isoformat(),
            ),
            author_id,
        )
        return int(post_id)

    async def _post_row(self, conn: asyncpg.Connection, post_id: int) -> asyncpg.Record:
        return await conn.fetchrow(
            "SELECT p.*, t.category_id, u.username FROM forum.posts p JOIN forum.topics t ON t.id = p.topic_id "
            "JOIN forum.users u ON u.id = p.author_id WHERE p.id = $1",
            post_id,
        )

    async def edit(self, post_id: int, body: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            revision = await conn.fetchval(
                "UPDATE forum.posts SET raw = $2, plain = $2, revision = revision + 1 WHERE id = $1 RETURNING revision",
                post_id,
                body,
            )
            p = await self._post_row(conn, post_id)
            await self._write(
                conn,
                PostEdited(
                    post_id=post_id,
                    topic_id=p["topic_id"],
                    post_number=p["post_number"],
                    category_id=p["category_id"],
                    author_id=p["author_id"],
                    author_username=p["username"],
                    text=body,
                    content_note=p["content_note"],
                    audience=access.groups_audience(self.groups.get(p["category_id"], [])),
                    revision=revision,
                ),
            )

    async def set_status(self, post_id: int, status: str) -> None:
        """hidden, visible (restore) or deleted, with the matching event."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE forum.posts SET status = $2 WHERE id = $1", post_id, status)
            p = await self._post_row(conn, post_id)
            common: dict[str, Any] = {
                "post_id": post_id,
                "topic_id": p["topic_id"],
                "category_id": p["category_id"],
                "author_id": p["author_id"],
            }
            event: Event
            if status == "hidden":
                event = PostHidden(**common, reason="flagged")
            elif status == "deleted":
                event = PostDeleted(**common, post_number=p["post_number"])
            else:
                event = PostRestored(**common)
            await self._write(conn, event)

    async def move_topic(self, topic_id: int, category_id: int, title: str | None = None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            t = await conn.fetchrow(
                "UPDATE forum.topics SET category_id = $2, title = coalesce($3, title) WHERE id = $1 RETURNING *",
                topic_id,
                category_id,
                title,
            )
            await self._write(
                conn,
                TopicUpdated(
                    topic_id=topic_id,
                    category_id=category_id,
                    title=t["title"],
                    slug=t["slug"],
                    kind=t["kind"],
                    author_id=t["author_id"],
                    audience=access.groups_audience(self.groups.get(category_id, [])),
                    content_note=t["content_note"],
                    pinned=t["pinned"],
                    closed=t["closed"],
                ),
            )


def found(body: dict[str, Any]) -> list[tuple[str, int]]:
    """A search answer's results as (kind, id), in order."""
    return [(item["kind"], item["id"]) for item in body["items"]]


def unique(prefix: str = "w") -> str:
    """A made-up word no other test uses (so searches for it are exact)."""
    return f"{prefix}{next(_numbers)}zq"


@dataclass
class Pipeline:
    """The real event path into the index, driven step by step."""

    relay: Relay
    consumer: Consumer

    async def sync(self) -> int:
        """Publish the outbox and let the indexer handle everything; returns events read."""
        await self.relay.publish_all()
        total = 0
        while (count := await self.consumer.read_once()) > 0:
            total += count
        return total


def pipeline(pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings, name: str = "test") -> Pipeline:
    """The search service's own consumer (batched), under a name of its own."""
    consumer = indexer.indexer_consumer(pool, redis, settings.redis_prefix, name)
    return Pipeline(Relay(pool, redis, stream_name(settings.redis_prefix), OUTBOX), consumer)


# --- the library, through the forum's own API ------------------------------------------------------


def api_ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    """The body of a forum API answer that must have succeeded."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def new_group(admin: httpx.AsyncClient, name: str) -> int:
    return int(api_ok(await admin.post("/api/groups", json={"name": name, "access": "private"}))["id"])


async def new_folder(admin: httpx.AsyncClient, name: str, **fields: Any) -> int:
    return int(api_ok(await admin.post("/api/folders", json={"name": name, **fields}))["id"])


async def share(who: httpx.AsyncClient, folder_id: int, title: str) -> int:
    """A small PDF shared in a folder, with a title; the document's id."""
    response = await who.post(
        "/api/documents",
        data={"folder_id": str(folder_id), "title": title},
        files={"file": ("paper.pdf", tiny_pdf(title, ["A line."]), "application/pdf")},
    )
    return int(api_ok(response)["id"])


async def comment(who: httpx.AsyncClient, document_id: int, body: str) -> int:
    return int(api_ok(await who.post(f"/api/documents/{document_id}/comments", json={"body": body}))["id"])
