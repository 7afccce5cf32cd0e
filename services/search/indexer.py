"""The indexer: the search service's consumer group ("search-indexer"), the only writer of
the index from events, and the index's freshness for /readyz and GET /metrics.

Each event is applied in one transaction that also records its id in
search.applied_events, so an event delivered twice changes nothing; the per-field
versions in store.py make a late, older event change nothing either. While a rebuild
runs (reindex.py), the same transaction also appends the event to the rebuild journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.search import store
from services.search.store import Content, DocumentWrite, LibraryPlace, Placement, Tables
from shared import audience
from shared.events import (
    STREAM_FIELD,
    CategoryCreated,
    CategoryUpdated,
    Consumer,
    ConversationCreated,
    ConversationMembersChanged,
    DocumentCommentCreated,
    DocumentCommentDeleted,
    DocumentCommentEdited,
    DocumentDeleted,
    DocumentUpdated,
    DocumentUploaded,
    Envelope,
    Event,
    FolderUpdated,
    MessageCreated,
    MessageHidden,
    PostCreated,
    PostDeleted,
    PostEdited,
    PostHidden,
    PostRestored,
    TopicCreated,
    TopicUpdated,
    UserRegistered,
    UserUpdated,
    consumer_name,
    dead_letter_stream,
    group_lag,
    stream_name,
)
from shared.web import Runtime, runtime

log = logging.getLogger("tica.search.indexer")

GROUP = "search-indexer"
APPLIED_EVENTS_KEPT_DAYS = 30
LAG_COUNT_CAP = 100_000


# --- from events to index writes ------------------------------------------------------------

Apply = Callable[[asyncpg.Connection, Tables, Any, Envelope], Awaitable[None]]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _stamped(env: Envelope, kind: str, id: int, **fields: Any) -> DocumentWrite:
    """A write to one document, stamped with its event: the event's id is the write's version."""
    return DocumentWrite(kind=kind, id=id, version=env.id, at=_time(env.occurred_at), **fields)


async def _user(conn: asyncpg.Connection, tables: Tables, e: UserRegistered | UserUpdated, env: Envelope) -> None:
    await store.write_user(
        conn, tables, user_id=e.user_id, username=e.username, display_name=e.display_name, version=env.id
    )


async def _category(
    conn: asyncpg.Connection, tables: Tables, e: CategoryCreated | CategoryUpdated, env: Envelope
) -> None:
    applied = await store.write_category(
        conn, tables, category_id=e.category_id, slug=e.slug, name=e.name, audience=e.audience, version=env.id
    )
    if applied:  # only the newest word on a category may move its documents
        await store.propagate_category(conn, tables, e.category_id, e.audience, env.id)


# A topic's status on topic.updated: hidden while moderators hide its first post, deleted for good.
TOPIC_STATUSES = {"visible": "visible", "hidden": "hidden", "deleted": "deleted"}


async def _topic(conn: asyncpg.Connection, tables: Tables, e: TopicCreated | TopicUpdated, env: Envelope) -> None:
    if isinstance(e, TopicCreated) and not e.anonymous:
        await store.add_author(conn, tables, user_id=e.author_id, username=e.author_username)
    status = TOPIC_STATUSES.get(e.status, "hidden") if isinstance(e, TopicUpdated) else "visible"
    write = _stamped(
        env,
        "topic",
        e.topic_id,
        topic_id=e.topic_id,
        author_id=None if e.anonymous else e.author_id,
        anonymous=e.anonymous,
        created_at=_time(e.created_at) if isinstance(e, TopicCreated) else None,
        content=Content(body="", content_note=e.content_note, topic_kind=e.kind),
        status=status,
        # While a topic is hidden its replies are for staff only, as in the forum.
        placement=Placement(
            e.category_id, e.audience if status == "visible" else audience.staff_only(), e.title, e.slug
        ),
    )
    write = await store.resolve_placement(conn, tables, write)
    versions = await store.write_document(conn, tables, write)
    if versions["placement_version"] is not None and str(versions["placement_version"]) == write.placement_version:
        assert write.placement is not None
        await store.propagate_topic(conn, tables, e.topic_id, write.placement, write.placement_version)
    if status == "deleted":
        await store.erase_topic_posts(conn, tables, e.topic_id, env.id)


async def _post(conn: asyncpg.Connection, tables: Tables, e: PostCreated | PostEdited, env: Envelope) -> None:
    if not e.anonymous:
        await store.add_author(conn, tables, user_id=e.author_id, username=e.author_username)
    created = isinstance(e, PostCreated)
    # Where a post is follows its topic (topic.updated, category.updated); an edit only
    # says where it is for a post the index has not seen.
    write = _stamped(
        env,
        "post",
        e.post_id,
        topic_id=e.topic_id,
        post_number=e.post_number,
        author_id=None if e.anonymous else e.author_id,
        anonymous=e.anonymous,
        created_at=_time(e.created_at) if isinstance(e, PostCreated) else None,
        content=Content(e.text, e.content_note),
        status="visible" if created else None,
        placement=Placement(e.category_id, e.audience, e.topic_title if isinstance(e, PostCreated) else None),
        placement_if_new=not created,
    )
    await store.write_document(conn, tables, await store.resolve_placement(conn, tables, write))


async def _post_status(
    conn: asyncpg.Connection, tables: Tables, e: PostDeleted | PostHidden | PostRestored, env: Envelope
) -> None:
    status = {PostDeleted: "deleted", PostHidden: "hidden", PostRestored: "visible"}[type(e)]
    # A deleted post's text leaves the index for good; a hidden one keeps it for a restore.
    erase = Content(body="", content_note=None) if status == "deleted" else None
    # No author: these events do not say whether the post is pseudonymous (its creation does).
    write = _stamped(
        env,
        "post",
        e.post_id,
        topic_id=e.topic_id,
        post_number=getattr(e, "post_number", None),
        content=erase,
        status=status,
    )
    await store.write_document(conn, tables, write)


# --- the library: comments on documents -------------------------------------------------------


async def _folder(conn: asyncpg.Connection, tables: Tables, e: FolderUpdated, env: Envelope) -> None:
    await store.write_folder(conn, tables, folder_id=e.folder_id, audience=e.audience, version=env.id)


async def _note_document(
    conn: asyncpg.Connection,
    tables: Tables,
    e: DocumentUploaded | DocumentUpdated | DocumentCommentCreated | DocumentCommentEdited,
    title: str,
    env: Envelope,
) -> LibraryPlace:
    """Note where the event says a document is (unless the index knows newer); where its comments belong now."""
    return await store.note_document(
        conn, tables, document_id=e.document_id, folder_id=e.folder_id, title=title, audience=e.audience, version=env.id
    )


async def _document(
    conn: asyncpg.Connection, tables: Tables, e: DocumentUploaded | DocumentUpdated, env: Envelope
) -> None:
    await store.place_comments(conn, tables, await _note_document(conn, tables, e, e.title, env))


async def _document_deleted(conn: asyncpg.Connection, tables: Tables, e: DocumentDeleted, env: Envelope) -> None:
    await store.delete_library_document(conn, tables, document_id=e.document_id, folder_id=e.folder_id, version=env.id)


async def _comment(
    conn: asyncpg.Connection, tables: Tables, e: DocumentCommentCreated | DocumentCommentEdited, env: Envelope
) -> None:
    await store.add_author(conn, tables, user_id=e.author_id, username=e.author_username)
    # The event says where the document was; the index may know a newer place, or that it is gone.
    place = await _note_document(conn, tables, e, e.document_title, env)
    write = _stamped(
        env,
        "document_comment",
        e.comment_id,
        author_id=e.author_id,
        created_at=_time(e.created_at) if isinstance(e, DocumentCommentCreated) else None,
        content=Content("" if place.deleted else e.text),
        status=_comment_status(e, place),
        placement=Placement(None, place.audience, place.title),
        placement_version=place.version,
        placement_if_new=True,
        document_id=e.document_id,
        folder_id=place.folder_id,
    )
    await store.write_document(conn, tables, write)
    await store.place_comments(conn, tables, place)


def _comment_status(e: DocumentCommentCreated | DocumentCommentEdited, place: LibraryPlace) -> str:
    if place.deleted:  # the document is gone, and its comments with it
        return "deleted"
    if isinstance(e, DocumentCommentCreated):
        return "visible"
    # A moderator hides or restores a comment with an edit event that says its status.
    return e.status if e.status in ("visible", "hidden") else "visible"


async def _comment_deleted(conn: asyncpg.Connection, tables: Tables, e: DocumentCommentDeleted, env: Envelope) -> None:
    write = _stamped(
        env,
        "document_comment",
        e.comment_id,
        content=Content(""),
        status="deleted",
        document_id=e.document_id,
        folder_id=e.folder_id,
    )
    await store.write_document(conn, tables, write)


# --- private messages ----------------------------------------------------------------------------


async def _conversation(
    conn: asyncpg.Connection, tables: Tables, e: ConversationCreated | ConversationMembersChanged, env: Envelope
) -> None:
    # Kept in the live schema whatever `tables` (a rebuild's journal replays onto the same rows).
    await store.write_conversation(
        conn,
        conversation_id=e.conversation_id,
        member_ids=e.member_ids,
        with_moderators=e.with_moderators,
        version=env.id,
    )


async def _message(conn: asyncpg.Connection, tables: Tables, e: MessageCreated, env: Envelope) -> None:
    if not e.from_moderators:
        await store.add_author(conn, tables, user_id=e.author_id, username=e.author_username)
    write = _stamped(
        env,
        "message",
        e.message_id,
        author_id=None if e.from_moderators else e.author_id,
        from_moderators=e.from_moderators,
        conversation_id=e.conversation_id,
        created_at=_time(e.created_at),
        content=Content(e.text),
        status="visible",
        placement=Placement(None, e.audience, e.title),
    )
    await store.write_document(conn, tables, write)


async def _message_hidden(conn: asyncpg.Connection, tables: Tables, e: MessageHidden, env: Envelope) -> None:
    # Hidden by a moderator after a report: it leaves search (the text is kept, as for a hidden post).
    write = _stamped(env, "message", e.message_id, conversation_id=e.conversation_id, status="hidden")
    await store.write_document(conn, tables, write)


APPLIERS: dict[type[Event], Apply] = {
    UserRegistered: _user,
    UserUpdated: _user,
    CategoryCreated: _category,
    CategoryUpdated: _category,
    TopicCreated: _topic,
    TopicUpdated: _topic,
    PostCreated: _post,
    PostEdited: _post,
    PostDeleted: _post_status,
    PostHidden: _post_status,
    PostRestored: _post_status,
    FolderUpdated: _folder,
    DocumentUploaded: _document,
    DocumentUpdated: _document,
    DocumentDeleted: _document_deleted,
    DocumentCommentCreated: _comment,
    DocumentCommentEdited: _comment,
    DocumentCommentDeleted: _comment_deleted,
    ConversationCreated: _conversation,
    ConversationMembersChanged: _conversation,
    MessageCreated: _message,
    MessageHidden: _message_hidden,
}
HANDLED_TYPES = frozenset(cls.type for cls in APPLIERS)


async def apply_event(conn: asyncpg.Connection, tables: Tables, envelope: Envelope) -> bool:
    """Apply one event to the index tables; False when the event does not concern search."""
    if envelope.type not in HANDLED_TYPES:
        return False
    event = envelope.event()
    await APPLIERS[type(event)](conn, tables, event, envelope)
    return True


# --- the handler ------------------------------------------------------------------------------

# Records the event as applied (nothing comes back when it was applied before) and reads the
# rebuild's state, holding its row FOR SHARE until commit: a rebuild locks that row FOR UPDATE
# to start and to swap, so it waits for this transaction, and this one for it (and then reads
# the state the rebuild left).
CLAIM_EVENT_SQL = """
INSERT INTO search.applied_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING
RETURNING coalesce((SELECT state FROM search.rebuild WHERE id = 1 FOR SHARE), 'idle')
"""
JOURNAL_SQL = "INSERT INTO search.rebuild_journal (envelope) VALUES ($1::text::jsonb)"


class Indexer:
    """Applies events to the live index, each once; journals them while a rebuild runs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def handle(self, envelope: Envelope) -> None:
        """The consumer's handler: one event, one transaction."""
        await self.handle_many([envelope])

    async def handle_many(self, envelopes: list[Envelope]) -> None:
        """Several events in one transaction (one commit to wait for instead of one each)."""
        envelopes = [e for e in envelopes if e.type in HANDLED_TYPES]
        if not envelopes:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            for envelope in envelopes:
                await self._apply(conn, envelope)

    async def _apply(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        claimed = await conn.fetchrow(CLAIM_EVENT_SQL, envelope.id)
        if claimed is None:
            return  # applied before: a second delivery changes nothing
        await apply_event(conn, store.LIVE, envelope)
        if claimed[0] == "building":
            await conn.execute(JOURNAL_SQL, envelope.to_json())


class IndexerConsumer(Consumer):
    """A member of the search-indexer group that applies what one read returns in one transaction.

    Committing once per read instead of once per event keeps up with bursts and a busy
    disk. If the batch fails, its events are handled one by one as a plain Consumer does,
    so one bad event is retried and dead-lettered alone and the others still apply.
    """

    indexer: Indexer | None = None

    async def read_once(self, *, block_ms: int | None = None) -> int:
        reply = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch_size, block=block_ms
        )
        entries = reply[0][1] if reply else []
        if len(entries) > 1 and await self._apply_batch(entries):
            return len(entries)
        for entry_id, fields in entries:
            await self._handle(entry_id, fields, deliveries=1)
        return len(entries)

    async def _apply_batch(self, entries: list[Any]) -> bool:
        assert self.indexer is not None
        envelopes = []
        try:
            for _, fields in entries:
                envelope = Envelope.from_json(fields.get(STREAM_FIELD) or fields.get(STREAM_FIELD.encode()) or b"")
                envelope.event()
                envelopes.append(envelope)
            await self.indexer.handle_many(envelopes)
        except Exception as exc:  # the one-by-one path retries and dead-letters
            log.warning("indexer: a batch of %d failed, handling them one by one: %r", len(entries), exc)
            return False
        await self.redis.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        self.handled_total += len(entries)
        self.last_handled_at = time.time()
        self.last_event_occurred_at = envelopes[-1].occurred_at
        return True


def make_consumer(rt: Runtime, name: str | None = None) -> IndexerConsumer:
    """This process's member of the search-indexer group (named as shared.events.consumer_name says)."""
    consumer = indexer_consumer(rt.pool, rt.redis, rt.settings.redis_prefix, name or consumer_name())
    consumer.claim_idle_ms = rt.settings.reclaim_idle_s * 1000
    return consumer


def indexer_consumer(pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str, name: str) -> IndexerConsumer:
    """A member of the search-indexer group on the stream of the installation with this key prefix."""
    handler = Indexer(pool)
    stream, dead_letter = stream_name(prefix), dead_letter_stream(prefix, GROUP)
    consumer = IndexerConsumer(redis, stream, GROUP, name, handler.handle, dead_letter)
    consumer.indexer = handler
    return consumer


async def run_indexer(rt: Runtime, stop: asyncio.Event) -> None:
    """Background task of the search service: keep the index up to date until stop."""
    consumer = rt.extras.get("indexer")
    if not isinstance(consumer, Consumer):
        consumer = rt.extras["indexer"] = make_consumer(rt)
    await consumer.run(stop)


async def prune_applied_events(rt: Runtime, stop: asyncio.Event) -> None:
    """Background task: forget applied event ids after a month (versions still guard them)."""
    while not stop.is_set():
        try:
            await rt.pool.execute(
                "DELETE FROM search.applied_events WHERE applied_at < now() - make_interval(days => $1)",
                APPLIED_EVENTS_KEPT_DAYS,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("pruning applied events failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=3600)


# --- freshness ----------------------------------------------------------------------------------


async def stream_lag(redis: aioredis.Redis, stream: str, group: str) -> dict[str, int | None]:
    """Entries not yet delivered to the group (lag) and delivered but not acknowledged (pending).

    Redis 7 reports the lag itself; on Redis 6.2 (the embedded one) it is counted, up to a cap.
    """
    lag = await group_lag(redis, stream, group)
    if lag["lag"] is not None or lag["pending"] is None:
        return {"lag": lag["lag"], "pending": lag["pending"]}
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return {"lag": None, "pending": lag["pending"]}
    for info in groups:
        if _text(info.get("name")) == group:
            last = _text(info.get("last-delivered-id"))
            entries = await redis.xrange(stream, min=f"({last}", max="+", count=LAG_COUNT_CAP)
            return {"lag": len(entries), "pending": lag["pending"]}
    return {"lag": None, "pending": lag["pending"]}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def freshness(rt: Runtime) -> dict[str, Any]:
    """How far the index is behind the forum: for /readyz detail and /metrics."""
    consumer = rt.extras.get("indexer")
    try:
        lag = await stream_lag(rt.redis, stream_name(rt.settings.redis_prefix), GROUP)
    except (RedisError, OSError):
        lag = {"lag": None, "pending": None}
    last_at = consumer.last_event_occurred_at if isinstance(consumer, Consumer) else None
    age_s = None
    if last_at is not None:
        age_s = round(max(0.0, time.time() - datetime.fromisoformat(last_at).timestamp()), 3)
    rebuild = await rt.pool.fetchrow("SELECT state, started_at FROM search.rebuild WHERE id = 1")
    return {
        "group": GROUP,
        "lag_events": lag["lag"],
        "pending_events": lag["pending"],
        "last_event_occurred_at": last_at,
        "last_event_age_seconds": age_s,
        "handled_total": consumer.handled_total if isinstance(consumer, Consumer) else 0,
        "rebuild": {
            "state": rebuild["state"] if rebuild else "idle",
            "started_at": rebuild["started_at"].isoformat() if rebuild and rebuild["started_at"] else None,
        },
    }


async def ready_detail(rt: Runtime) -> dict[str, Any]:
    """/readyz detail of the search service: the index's freshness."""
    return {"index": await freshness(rt)}


METRICS = (
    (
        "tica_search_index_lag_events",
        "gauge",
        "lag_events",
        "Events on the stream not yet delivered to the search indexer group.",
    ),
    (
        "tica_search_index_pending_events",
        "gauge",
        "pending_events",
        "Events delivered to the search indexer group but not yet acknowledged.",
    ),
    (
        "tica_search_index_last_event_age_seconds",
        "gauge",
        "last_event_age_seconds",
        "Seconds since the newest event this process indexed happened.",
    ),
    (
        "tica_search_index_events_handled_total",
        "counter",
        "handled_total",
        "Events this process's indexer has handled since it started.",
    ),
)


def prometheus_text(values: dict[str, Any]) -> str:
    """Freshness figures in the Prometheus text format (NaN when unknown)."""
    lines = []
    for name, kind, key, help_text in METRICS:
        value = values.get(key)
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {'NaN' if value is None else value}"]
    building = 1 if values.get("rebuild", {}).get("state") == "building" else 0
    lines += [
        "# HELP tica_search_rebuild_in_progress 1 while `tica search reindex` is rebuilding the index.",
        "# TYPE tica_search_rebuild_in_progress gauge",
        f"tica_search_rebuild_in_progress {building}",
    ]
    return "\n".join(lines) + "\n"


async def metrics(request: Request) -> Response:
    """GET /metrics: the index's freshness for Prometheus."""
    values = await freshness(runtime(request))
    return PlainTextResponse(prometheus_text(values), media_type="text/plain; version=0.0.4")


routes = [Route("/metrics", metrics, methods=["GET"])]
