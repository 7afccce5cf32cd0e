"""Notifications: the writer (consumer group "notify-writer") that turns events into
notifications, the mail job for replies and mentions, `GET /api/notifications`,
`POST /api/notifications/read` and the /notifications page.

One row per (member, what it is about): the unique `dedupe_key` makes an event
handled twice write nothing twice, and reactions to a post share one row that is
updated and marked unread again. A post that mentions, replies to and quotes a
member makes one notification (mention first, then reply, quote, watching).
When a webinar moves (webinar.updated changes its times) or is cancelled, the members
registered or waiting for it (from webinar.registered) hear of it in the app, once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.notify import mail, preferences, projections, unsubscribe
from shared import events as ev
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
from shared.jobs import job_id
from shared.pages import form_data, render
from shared.sessions import Session
from shared.web import ApiError, Runtime, check_csrf, require_viewer, runtime, viewer

log = logging.getLogger("tica.notify")
api = ApiRouter(tag="notifications")

GROUP = "notify-writer"
PAGE_SIZE = 30
LIVE_STREAM_MAXLEN = 10_000
# Kinds a member may get by email, and the preference that decides it.
MAIL_PREFERENCE = {
    "mentioned": "email_on_mention",
    "replied": "email_on_reply",
    "quoted": "email_on_reply",
    "posted": "email_on_watched",
}
# Kinds about a post that go when the post is deleted (moderation outcomes stay).
POST_KINDS = ("mentioned", "replied", "quoted", "posted", "reacted")


def live_stream_name(prefix: str) -> str:
    """notify's own stream of unread counts, which every replica fans out on `user:N` channels."""
    return f"{prefix}notify:live"


# --- what the writer decides -----------------------------------------------------------------


@dataclass
class Outcome:
    """What a handled event changed, for the work done after commit."""

    counts_changed: set[int] = field(default_factory=set)
    mail_ids: list[int] = field(default_factory=list)


WATCHERS_SQL = """
SELECT c.user_id
FROM (SELECT user_id FROM notify.watches WHERE target_kind = 'topic' AND target_id = $1 AND level = 'watching'
      UNION
      SELECT user_id FROM notify.watches WHERE target_kind = 'category' AND target_id = $2 AND level = 'watching') c
LEFT JOIN notify.watches tw ON tw.user_id = c.user_id AND tw.target_kind = 'topic' AND tw.target_id = $1
LEFT JOIN notify.watches cw ON cw.user_id = c.user_id AND cw.target_kind = 'category' AND cw.target_id = $2
WHERE notify.effective_level(tw.level, tw.reason, cw.level) = 'watching'
"""

# Of these members, who may be told about something in this topic by this actor: they can see
# it (unknown members only when it is public), have not muted the topic or category, and have
# not muted or ignored the actor.
ELIGIBLE_SQL = f"""
SELECT c.id
FROM unnest($1::bigint[]) AS c(id)
LEFT JOIN notify.users u ON u.id = c.id
LEFT JOIN notify.watches tw ON tw.user_id = c.id AND tw.target_kind = 'topic' AND tw.target_id = $2
LEFT JOIN notify.watches cw ON cw.user_id = c.id AND cw.target_kind = 'category' AND cw.target_id = $3
WHERE CASE WHEN u.id IS NULL THEN 'public' = ANY($4::text[])
           ELSE {projections.SEES_SQL.format(u="u", aud="$4::text[]")} END
  AND notify.effective_level(tw.level, tw.reason, cw.level) <> 'muted'
  AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = c.id AND m.muted_user_id = $5 AND m.level <> 'none')
"""

INSERT_NOTIFICATIONS_SQL = """
INSERT INTO notify.notifications (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data)
SELECT r.user_id, r.kind, $3, $4, $5, $6, $7, $8 FROM unnest($1::bigint[], $2::text[]) AS r(user_id, kind)
ON CONFLICT (user_id, dedupe_key) DO NOTHING
RETURNING user_id
"""

# Notifications of one key that may become mail: unread, a mail-able kind, a member with a
# verified address who did not choose "never". The job decides "away" when it runs.
MAIL_CANDIDATES_SQL = """
SELECT n.id
FROM notify.notifications n
JOIN notify.users u ON u.id = n.user_id
LEFT JOIN notify.preferences p ON p.user_id = n.user_id
WHERE n.dedupe_key = $1 AND n.user_id = ANY($2::bigint[]) AND n.read_at IS NULL
  AND u.email IS NOT NULL AND u.email_verified
  AND CASE n.kind WHEN 'mentioned' THEN coalesce(p.email_on_mention, 'away')
                  WHEN 'replied' THEN coalesce(p.email_on_reply, 'away')
                  WHEN 'quoted' THEN coalesce(p.email_on_reply, 'away')
                  WHEN 'posted' THEN coalesce(p.email_on_watched, 'never')
                  ELSE 'never' END <> 'never'
"""


async def eligible(
    conn: asyncpg.Connection,
    user_ids: Iterable[int],
    *,
    topic_id: int,
    category_id: int,
    audience: Sequence[str],
    actor_id: int | None,
) -> set[int]:
    """The members among `user_ids` who may be notified about this topic and actor."""
    ids = sorted(set(user_ids) - ({actor_id} if actor_id else set()))
    if not ids:
        return set()
    rows = await conn.fetch(ELIGIBLE_SQL, ids, topic_id, category_id, list(audience), actor_id or 0)
    return {row["id"] for row in rows}


async def insert_notifications(
    conn: asyncpg.Connection,
    kinds: dict[int, str],
    *,
    key: str,
    topic_id: int | None,
    post_id: int | None,
    post_number: int | None,
    actor_id: int | None,
    data: dict[str, Any],
) -> list[int]:
    """Insert one notification per member (kind per member) under one key; returns who got a new one."""
    if not kinds:
        return []
    users = list(kinds)
    rows = await conn.fetch(
        INSERT_NOTIFICATIONS_SQL, users, [kinds[u] for u in users], key, topic_id, post_id, post_number, actor_id, data
    )
    return [row["user_id"] for row in rows]


async def on_post_created(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostCreated) -> Outcome:
    """Mentions, then the replied-to author, then quoted authors, then watchers: one each."""
    kinds: dict[int, str] = {}
    for user_id in event.mentioned_user_ids:
        kinds.setdefault(user_id, "mentioned")
    if event.reply_to_user_id:
        kinds.setdefault(event.reply_to_user_id, "replied")
    for user_id in event.quoted_user_ids:
        kinds.setdefault(user_id, "quoted")
    for row in await conn.fetch(WATCHERS_SQL, event.topic_id, event.category_id):
        kinds.setdefault(row["user_id"], "posted")
    allowed = await eligible(
        conn,
        kinds,
        topic_id=event.topic_id,
        category_id=event.category_id,
        audience=event.audience,
        actor_id=event.author_id,
    )
    kinds = {user_id: kind for user_id, kind in kinds.items() if user_id in allowed}
    key = f"post:{event.post_id}"
    data = {"actor_username": event.author_username, "topic_title": event.topic_title}
    new = await insert_notifications(
        conn,
        kinds,
        key=key,
        topic_id=event.topic_id,
        post_id=event.post_id,
        post_number=event.post_number,
        actor_id=event.author_id,
        data=data,
    )
    # Every unread one of this key, not only the new ones: after a crash between commit and
    # enqueueing, the repeat enqueues the mail (job ids keep that to one).
    mail = await conn.fetch(MAIL_CANDIDATES_SQL, key, list(kinds))
    return Outcome(set(new), [row["id"] for row in mail])


REACTION_SUMMARY_SQL = """
SELECT count(*) AS count,
       coalesce((array_agg(coalesce(u.username, 'a member') ORDER BY r.changed_at DESC))[1:3], '{}') AS usernames,
       coalesce(jsonb_object_agg(r.kind, 1) FILTER (WHERE r.kind IS NOT NULL), '{}'::jsonb) AS kinds
FROM notify.reactions r
LEFT JOIN notify.users u ON u.id = r.user_id
WHERE r.post_id = $1 AND r.active AND r.user_id <> $2
  AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = $2 AND m.muted_user_id = r.user_id
                  AND m.level <> 'none')
"""

UPSERT_REACTED_SQL = """
INSERT INTO notify.notifications (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data)
VALUES ($1, 'reacted', $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, dedupe_key) DO UPDATE SET
    data = EXCLUDED.data, actor_id = EXCLUDED.actor_id, read_at = NULL, updated_at = now()
"""


async def on_reaction(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ReactionAdded | ev.ReactionRemoved
) -> Outcome:
    """Reactions to a post make one notification for its author, updated and marked unread again."""
    changed = await projections.apply_reaction(conn, envelope, event)
    author = event.post_author_id
    if not changed or event.user_id == author:
        return Outcome()
    key = f"reactions:{event.post_id}"
    summary = await conn.fetchrow(REACTION_SUMMARY_SQL, event.post_id, author)
    post = await conn.fetchrow("SELECT post_number, topic_id FROM notify.posts WHERE id = $1", event.post_id)
    topic = await conn.fetchrow("SELECT category_id, title FROM notify.topics WHERE id = $1", event.topic_id)
    if isinstance(event, ev.ReactionRemoved) or summary["count"] == 0:
        return await _reaction_removed(conn, author, key, summary)
    category_id = topic["category_id"] if topic else 0
    if author not in await eligible(
        conn,
        [author],
        topic_id=event.topic_id,
        category_id=category_id,
        audience=event.audience,
        actor_id=event.user_id,
    ):
        return Outcome()
    data = {
        "count": summary["count"],
        "usernames": list(summary["usernames"]),
        "kinds": sorted(summary["kinds"]),
        "topic_title": topic["title"] if topic else None,
    }
    await conn.execute(
        UPSERT_REACTED_SQL,
        author,
        key,
        event.topic_id,
        event.post_id,
        post["post_number"] if post else None,
        event.user_id,
        data,
    )
    return Outcome({author})


async def _reaction_removed(conn: asyncpg.Connection, author: int, key: str, summary: asyncpg.Record) -> Outcome:
    """A removed reaction updates the count quietly; the last one removed takes the notification away."""
    if summary["count"] == 0:
        status = await conn.execute(
            "DELETE FROM notify.notifications WHERE user_id = $1 AND dedupe_key = $2", author, key
        )
        return Outcome({author} if status != "DELETE 0" else set())
    await conn.execute(
        "UPDATE notify.notifications SET data = data || jsonb_build_object('count', $3::int, 'usernames', $4::text[]) "
        "WHERE user_id = $1 AND dedupe_key = $2",
        author,
        key,
        summary["count"],
        list(summary["usernames"]),
    )
    return Outcome()


async def on_post_deleted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostDeleted) -> Outcome:
    """A deleted post takes its notifications with it (its text is gone, so is the reason to look)."""
    rows = await conn.fetch(
        "DELETE FROM notify.notifications WHERE post_id = $1 AND kind = ANY($2::text[]) RETURNING user_id",
        event.post_id,
        list(POST_KINDS),
    )
    return Outcome({row["user_id"] for row in rows})


async def _tell(
    conn: asyncpg.Connection,
    user_id: int | None,
    kind: str,
    key: str,
    *,
    topic_id: int | None = None,
    post_id: int | None = None,
    actor_id: int | None = None,
    data: dict[str, Any],
) -> Outcome:
    """One notification for one member (moderation outcomes and sanctions)."""
    if not user_id:
        return Outcome()
    post_number = None
    if post_id is not None:
        post_number = await conn.fetchval("SELECT post_number FROM notify.posts WHERE id = $1", post_id)
    if topic_id is not None and "topic_title" not in data:
        data = {**data, "topic_title": await conn.fetchval("SELECT title FROM notify.topics WHERE id = $1", topic_id)}
    new = await insert_notifications(
        conn,
        {user_id: kind},
        key=key,
        topic_id=topic_id,
        post_id=post_id,
        post_number=post_number,
        actor_id=actor_id,
        data=data,
    )
    return Outcome(set(new))


async def on_post_hidden(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostHidden) -> Outcome:
    return await _tell(
        conn,
        event.author_id,
        "post_hidden",
        f"hidden:{envelope.id}",
        topic_id=event.topic_id,
        post_id=event.post_id,
        data={"reason": event.reason},
    )


async def on_post_restored(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostRestored) -> Outcome:
    return await _tell(
        conn,
        event.author_id,
        "post_restored",
        f"restored:{envelope.id}",
        topic_id=event.topic_id,
        post_id=event.post_id,
        data={},
    )


# Which outcome of a review its author hears about. Hiding and restoring a published post
# are told through post.hidden / post.restored (an upheld appeal restores the post), so
# those reviews add nothing; a queued post never published has no other event.
REVIEW_KINDS = {
    ("queued_post", "approve"): "post_approved",
    ("queued_post", "reject"): "post_rejected",
    ("queued_post", "hide"): "post_rejected",
    ("appeal", "reject"): "appeal_rejected",
    ("appeal", "hide"): "appeal_rejected",
}


async def on_review_resolved(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ReviewResolved) -> Outcome:
    kind = "post_deleted" if event.action == "delete" else REVIEW_KINDS.get((event.kind, event.action))
    if kind is None:
        return Outcome()
    data: dict[str, Any] = {"reason": event.reason}
    if event.topic_title:
        data["topic_title"] = event.topic_title
    key = f"review:{event.review_id}:{event.action}"
    return await _tell(
        conn,
        event.author_id,
        kind,
        key,
        topic_id=event.topic_id,
        post_id=event.post_id,
        actor_id=event.moderator_id,
        data=data,
    )


async def on_sanction(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserSilenced | ev.UserSuspended
) -> Outcome:
    kind = "silenced" if isinstance(event, ev.UserSilenced) else "suspended"
    return await _tell(
        conn,
        event.user_id,
        kind,
        f"{kind}:{envelope.id}",
        actor_id=envelope.actor_id,
        data={"reason": event.reason, "until": event.until},
    )


REGISTERED_SQL = """
SELECT user_id FROM notify.webinar_registrations WHERE webinar_id = $1 AND status IN ('registered', 'waiting')
"""


async def on_webinar_changed(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.WebinarUpdated | ev.WebinarCancelled
) -> Outcome:
    """Tell registered and waiting members that a webinar moved or was cancelled (in the app only).

    A move is an update whose event changed the webinar's times in the projection (the projection
    remembers which event that was, so a title-only change tells no one, and a repeat finds the same
    event and the same key). Giving up a place sends no event: such members are still told.
    """
    if isinstance(event, ev.WebinarUpdated):
        moved_by = await conn.fetchval("SELECT moved_event_id FROM notify.webinars WHERE id = $1", event.webinar_id)
        if moved_by is None or str(moved_by) != str(envelope.id):
            return Outcome()
        kind = "webinar_changed"
    else:
        kind = "webinar_cancelled"
    users = [row["user_id"] for row in await conn.fetch(REGISTERED_SQL, event.webinar_id)]
    data = {"webinar_id": event.webinar_id, "webinar_title": event.title, "starts_at": event.starts_at}
    new = await insert_notifications(
        conn,
        dict.fromkeys(users, kind),
        key=f"{kind}:{event.webinar_id}:{envelope.id}",
        topic_id=None,
        post_id=None,
        post_number=None,
        actor_id=envelope.actor_id,
        data=data,
    )
    return Outcome(set(new))


async def write_notifications(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.Event) -> Outcome:
    """The notifications one event makes (after the projections took it in)."""
    if isinstance(event, ev.PostCreated):
        return await on_post_created(conn, envelope, event)
    if isinstance(event, ev.ReactionAdded | ev.ReactionRemoved):
        return await on_reaction(conn, envelope, event)
    if isinstance(event, ev.PostDeleted):
        return await on_post_deleted(conn, envelope, event)
    if isinstance(event, ev.PostHidden):
        return await on_post_hidden(conn, envelope, event)
    if isinstance(event, ev.PostRestored):
        return await on_post_restored(conn, envelope, event)
    if isinstance(event, ev.ReviewResolved):
        return await on_review_resolved(conn, envelope, event)
    if isinstance(event, ev.UserSilenced | ev.UserSuspended):
        return await on_sanction(conn, envelope, event)
    if isinstance(event, ev.WebinarUpdated | ev.WebinarCancelled):
        return await on_webinar_changed(conn, envelope, event)
    return Outcome()


# --- the writer -----------------------------------------------------------------------------


async def handle_event(rt: Runtime, envelope: ev.Envelope) -> None:
    """Handle one event: projections and notifications in one transaction, then counts and mail."""
    event = envelope.event()
    async with rt.pool.acquire() as conn, conn.transaction():
        await projections.apply(conn, envelope, event)
        outcome = await write_notifications(conn, envelope, event)
    await after_commit(rt, outcome)


async def after_commit(rt: Runtime, outcome: Outcome) -> None:
    """Tell live clients the new unread counts, and queue the mail (both safe to repeat)."""
    if outcome.counts_changed:
        async with rt.pool.acquire() as conn:
            counts = await unread_counts(conn, outcome.counts_changed)
        await publish_counts(rt.redis, rt.settings.redis_prefix, counts)
    if outcome.mail_ids:
        queue = rt.extras.get("queue")
        if queue is None:
            log.warning("no job queue: %d notification mail(s) not queued", len(outcome.mail_ids))
            return
        for notification_id in outcome.mail_ids:
            await queue.enqueue_job(
                "send_notification_mail", notification_id, _job_id=job_id(queue, f"notification-mail:{notification_id}")
            )


def writer(rt: Runtime, *, name: str | None = None, **options: Any) -> ev.Consumer:
    """The notification writer: one member of the consumer group "notify-writer"."""
    prefix = rt.settings.redis_prefix

    async def handler(envelope: ev.Envelope) -> None:
        await handle_event(rt, envelope)

    return ev.Consumer(
        rt.redis,
        ev.stream_name(prefix),
        GROUP,
        name or f"{socket.gethostname()}-{os.getpid()}",
        handler,
        ev.dead_letter_stream(prefix, GROUP),
        **options,
    )


async def unread_counts(conn: asyncpg.Connection, user_ids: Iterable[int]) -> dict[int, int]:
    """Unread notifications per member (0 for those without any)."""
    ids = sorted(set(user_ids))
    rows = await conn.fetch(
        "SELECT user_id, count(*) AS unread FROM notify.notifications WHERE user_id = ANY($1::bigint[]) "
        "AND read_at IS NULL GROUP BY user_id",
        ids,
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row["user_id"]: row["unread"] for row in rows})
    return counts


async def publish_counts(redis: aioredis.Redis, prefix: str, counts: dict[int, int]) -> None:
    """Put unread counts on notify's live stream, for every replica's `user:N` subscribers."""
    if not counts:
        return
    pipe = redis.pipeline(transaction=False)
    for user_id, unread in counts.items():
        pipe.xadd(
            live_stream_name(prefix), {"u": str(user_id), "n": str(unread)}, maxlen=LIVE_STREAM_MAXLEN, approximate=True
        )
    await pipe.execute()


# --- reading and marking read ---------------------------------------------------------------

LIST_SQL = f"""
SELECT n.id, n.kind, n.topic_id, n.post_id, n.post_number, n.actor_id, n.data, n.read_at, n.created_at,
       n.updated_at, t.title, t.slug
FROM notify.notifications n
LEFT JOIN notify.topics t ON t.id = n.topic_id
WHERE n.user_id = $1 AND (NOT $2::boolean OR n.read_at IS NULL)
  AND (t.id IS NULL OR $3::boolean OR {projections.TOPIC_AUDIENCE_SQL.format(t="t")} && $4::text[])
ORDER BY n.updated_at DESC, n.id DESC
LIMIT $5 OFFSET $6
"""


async def list_notifications(
    conn: asyncpg.Connection, who: Session, *, unread_only: bool, page: int, page_size: int | None = None
) -> tuple[list[asyncpg.Record], int | None]:
    """A page of the viewer's notifications, newest first, only about what they may still see."""
    page_size = page_size or PAGE_SIZE
    audiences = who.audiences()
    rows = await conn.fetch(
        LIST_SQL, who.user_id, unread_only, "staff" in audiences, audiences, page_size + 1, (page - 1) * page_size
    )
    return list(rows[:page_size]), page + 1 if len(rows) > page_size else None


async def mark_read(conn: asyncpg.Connection, user_id: int, ids: Sequence[int] | None) -> int:
    """Mark some (ids) or all (None) of a member's notifications read; returns how many changed."""
    status = await conn.execute(
        "UPDATE notify.notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL "
        "AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))",
        user_id,
        list(ids) if ids is not None else None,
    )
    return int(status.split()[-1])


async def fetch_notification(conn: asyncpg.Connection, user_id: int, notification_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT n.*, t.title, t.slug FROM notify.notifications n LEFT JOIN notify.topics t ON t.id = n.topic_id "
        "WHERE n.id = $1 AND n.user_id = $2",
        notification_id,
        user_id,
    )


def _names(data: dict[str, Any]) -> str:
    names = list(data.get("usernames") or [])
    others = int(data.get("count") or len(names)) - len(names[:1])
    if not names:
        return "Someone"
    if others <= 0:
        return names[0]
    return f"{names[0]} and {others} other{'s' if others > 1 else ''}"


def _until(data: dict[str, Any]) -> str:
    until = data.get("until")
    if not until:
        return " until a moderator lifts it"
    try:
        return " until " + datetime.fromisoformat(until).strftime("%-d %B %Y, %H:%M UTC")
    except ValueError:
        return ""


def _starts(data: dict[str, Any]) -> str:
    try:
        return " It now starts on " + datetime.fromisoformat(str(data.get("starts_at"))).strftime(
            "%A %-d %B %Y, %H:%M UTC."
        )
    except ValueError:
        return ""


def describe(kind: str, data: dict[str, Any], title: str | None) -> str:
    """What a notification says, in plain words."""
    actor = data.get("actor_username") or "Someone"
    where = f"“{title or data.get('topic_title') or 'a topic'}”"
    reason = f" The reason given: {data['reason']}" if data.get("reason") else ""
    webinar = f"“{data.get('webinar_title') or 'a webinar'}”"
    texts = {
        "mentioned": f"{actor} mentioned you in {where}",
        "replied": f"{actor} replied to your post in {where}",
        "quoted": f"{actor} quoted your post in {where}",
        "posted": f"{actor} posted in {where}, which you are watching",
        "reacted": f"{_names(data)} reacted to your post in {where}",
        "post_hidden": f"Your post in {where} has been hidden for now while moderators look at it. You can edit it "
        f"to ask for another review.{reason}",
        "post_restored": f"Your post in {where} can be seen again.",
        "post_approved": f"Your post in {where} was approved and is now published.",
        "post_rejected": f"Your post in {where} was not published.{reason}",
        "post_deleted": f"A moderator removed your post in {where}.{reason}",
        "appeal_rejected": f"Moderators looked at your appeal about your post in {where} and kept their decision."
        f"{reason}",
        "silenced": f"You cannot post for now{_until(data)}. You can still read.{reason}",
        "suspended": f"Your account was suspended{_until(data)}.{reason}",
        "webinar_changed": f"The time of the webinar {webinar}, which you registered for, has changed.{_starts(data)}",
        "webinar_cancelled": f"The webinar {webinar}, which you registered for, has been cancelled. We are sorry "
        "for the change of plans.",
    }
    return texts.get(kind, "Something happened")


def target_url(
    kind: str, topic_id: int | None, slug: str | None, post_id: int | None, data: dict[str, Any] | None = None
) -> str | None:
    """Where a notification leads: the post (the forum's `/p/{id}` finds its page), its topic, a webinar, or nowhere."""
    if kind in ("webinar_changed", "webinar_cancelled"):
        webinar_id = (data or {}).get("webinar_id")
        return f"/webinars/{int(webinar_id)}" if webinar_id is not None else None
    if kind in ("post_rejected", "post_deleted", "silenced", "suspended"):
        return None
    if post_id is not None:
        return f"/p/{post_id}"
    return f"/t/{slug or 'topic'}/{topic_id}" if topic_id is not None else None


def notification_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public shape of a notification."""
    data = dict(row["data"] or {})
    return {
        "id": row["id"],
        "kind": row["kind"],
        "read": row["read_at"] is not None,
        "text": describe(row["kind"], data, row["title"]),
        "url": target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"], data),
        "topic_id": row["topic_id"],
        "post_id": row["post_id"],
        "post_number": row["post_number"],
        "actor": {"id": row["actor_id"], "username": data.get("actor_username")} if row["actor_id"] else None,
        "data": {
            k: v
            for k, v in data.items()
            if k in ("count", "usernames", "kinds", "reason", "until", "webinar_id", "webinar_title", "starts_at")
        },
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


# --- API -------------------------------------------------------------------------------------

READ_IN = Schema(
    "NotificationsReadIn",
    {
        "ids": Field("array", items="integer", max_length=1000, description="these notifications"),
        "all": Field("boolean", description="every notification of the viewer"),
    },
)


def unread_flag(request: Request) -> bool:
    """?unread=1 (or true) lists unread ones only; 0, false or nothing lists all."""
    raw = request.query_params.get("unread", "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ApiError(400, "bad_request", "?unread must be 1 or 0.", {"unread": "must be 1 or 0"})


@api.get(
    "/api/notifications",
    answers={200: "Notifications, newest first"},
    auth=True,
    query={"unread": "1: unread ones only", "page": "page number, from 1"},
)
async def list_endpoint(request: Request) -> Response:
    """The viewer's notifications, newest first, paginated."""
    who = await require_viewer(request)
    unread_only = unread_flag(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, next_page = await list_notifications(conn, who, unread_only=unread_only, page=page)
        unread = (await unread_counts(conn, [who.user_id]))[who.user_id]
    return JSONResponse({"items": [notification_json(row) for row in rows], "next": next_page, "unread": unread})


@api.post("/api/notifications/read", body=READ_IN, answers={204: "Marked read"}, auth=True)
async def read_endpoint(request: Request) -> Response:
    """Mark some (`ids`) or all (`all: true`) of the viewer's notifications read."""
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, READ_IN)
    if data.get("all") is True and data.get("ids") is None:
        ids = None
    elif data.get("ids") is not None and not data.get("all"):
        ids = data["ids"]
        if any(not 0 < value < 2**63 for value in ids):
            raise ApiError(422, "invalid", "Some fields need attention.", {"ids": "must be notification ids"})
    else:
        raise ApiError(422, "invalid", "Send either ids or all: true.", {"ids": "send ids, or all: true"})
    await mark_read_and_publish(runtime(request), who.user_id, ids)
    return Response(status_code=204)


async def mark_read_and_publish(rt: Runtime, user_id: int, ids: Sequence[int] | None) -> None:
    async with rt.pool.acquire() as conn:
        changed = await mark_read(conn, user_id, ids)
        counts = await unread_counts(conn, [user_id]) if changed else {}
    await publish_counts(rt.redis, rt.settings.redis_prefix, counts)


# --- pages ---------------------------------------------------------------------------------


def _login(request: Request) -> Response:
    return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", status_code=303)


async def notifications_page(request: Request) -> Response:
    """The viewer's notifications, with "mark all as read"; works without JavaScript."""
    who = await viewer(request)
    if who is None:
        return _login(request)
    unread_only = unread_flag(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, next_page = await list_notifications(conn, who, unread_only=unread_only, page=page)
        unread = (await unread_counts(conn, [who.user_id]))[who.user_id]
    items = [notification_json(row) for row in rows]
    return await render(
        request,
        "notify/notifications.html",
        {
            "items": items,
            "unread": unread,
            "unread_only": unread_only,
            "page": page,
            "next_page": next_page,
            "marked": request.query_params.get("marked") == "1",
        },
    )


async def read_form(request: Request) -> Response:
    """The page's forms: mark one notification (`id`) or all of them (`all`) read."""
    who = await require_viewer(request)
    form = await form_data(request)
    if form.get("all"):
        ids: list[int] | None = None
    else:
        raw = form.getlist("id")
        if not raw or not all(isinstance(v, str) and v.isdigit() and 0 < int(v) < 2**63 for v in raw):
            raise ApiError(400, "bad_request", "Choose which notification to mark as read.")
        ids = [int(str(v)) for v in raw]
    await mark_read_and_publish(runtime(request), who.user_id, ids)
    back = "/notifications?marked=1" + ("&unread=1" if form.get("unread") == "1" else "")
    return RedirectResponse(back, status_code=303)


async def open_notification(request: Request) -> Response:
    """Follow a notification: mark it read and go where it leads."""
    notification_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return _login(request)
    async with runtime(request).pool.acquire() as conn:
        row = await fetch_notification(conn, who.user_id, notification_id)
    if row is None:
        raise ApiError(404, "not_found", "We could not find that notification.")
    await mark_read_and_publish(runtime(request), who.user_id, [notification_id])
    data = dict(row["data"] or {})
    url = target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"], data) or "/notifications"
    return RedirectResponse(url, status_code=303)


routes = [
    Route("/notifications", notifications_page),
    Route("/notifications/read", read_form, methods=["POST"]),
    Route("/notifications/{id}", open_notification),
]


# --- mail ------------------------------------------------------------------------------------

MAIL_LIST = {"mentioned": "mention", "replied": "reply", "quoted": "reply", "posted": "watched"}
MAIL_WHY = {
    "mention": "you chose to get an email when someone mentions you",
    "reply": "you chose to get an email when someone replies to you or quotes you",
    "watched": "you chose to get an email about new posts in what you watch",
}

MAIL_SQL = f"""
SELECT n.id, n.user_id, n.kind, n.topic_id, n.post_id, n.post_number, n.data, n.read_at, t.title, t.slug,
       p.excerpt, p.content_note, p.status AS post_status, {
    ", ".join("u." + c for c in projections.MEMBER_COLUMNS.split(", ") if c != "id")
}
FROM notify.notifications n
JOIN notify.users u ON u.id = n.user_id
LEFT JOIN notify.topics t ON t.id = n.topic_id
LEFT JOIN notify.posts p ON p.id = n.post_id
WHERE n.id = $1
"""


async def send_notification_mail(ctx: dict[str, Any], notification_id: int) -> bool:
    """Job: email one notification, if it is still unread and the member wants it (now, or when away)."""
    rt: Runtime = ctx["runtime"]
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(MAIL_SQL, notification_id)
        if row is None or row["read_at"] is not None or row["kind"] not in MAIL_LIST:
            return False
        prefs = await preferences.get_preferences(conn, row["user_id"])
    member = projections.member_from({**dict(row), "id": row["user_id"]})
    now = datetime.now(UTC)
    choice = prefs[MAIL_PREFERENCE[row["kind"]]]
    if choice == "never" or (choice == "away" and not member.is_away(now)):
        return False
    if not member.email or not member.email_verified or member.is_suspended(now) or row["post_status"] != "visible":
        return False
    list_name = MAIL_LIST[row["kind"]]
    headline = describe(row["kind"], dict(row["data"] or {}), row["title"])
    base_url = rt.settings.public_url
    path = target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"]) or "/notifications"
    post = {"excerpt": row["excerpt"], "content_note": row["content_note"]} if row["excerpt"] is not None else None
    context = {
        "subject": headline,
        "headline": headline,
        "url": base_url + path,
        "base_url": base_url,
        "post": post,
        "why": MAIL_WHY[list_name],
        "list_words": unsubscribe.LISTS[list_name][1],
        "unsubscribe_url": unsubscribe.unsubscribe_url(rt.settings, member.id, list_name),
    }
    text, html = mail.render_mail("notification", context)
    return await mail.send_mail(
        ctx,
        to=member.email,
        subject=_subject(headline),
        text=text,
        html=html,
        key=f"notification:{notification_id}",
        headers=unsubscribe.headers(rt.settings, member.id, list_name),
    )


def _subject(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
