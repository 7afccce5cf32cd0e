"""Topics: the topic a post is in (TopicContext, who may read it), lists (latest/top, by
category and kind), each member's read state (unread counts, "new since your last visit"),
the events that tell the other services about a topic, and what moderators do to a topic
(close, pin, move).

A topic's first post and every reply are written by posts.py, which builds on this module;
a topic whose first post waits for review is not listed and is shown only to its author and
staff (access.topic_shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from services.forum.topics.categories import KINDS, archived_refusal, fetch_category, readable_category
from shared import audience
from shared.api import query_choice, query_int
from shared.events import TopicCreated, TopicRead, TopicUpdated
from shared.sessions import Session
from shared.web import invalid

# KINDS, the topic kinds, are defined with categories (each starts new topics as one of them).
KIND_LABELS = {
    "discussion": "Discussion",
    "blog": "Blog",
    "case_study": "Case study",
    "narrative": "Personal narrative",
}
SORTS = ("latest", "top")
TOPICS_PER_PAGE = 30
TITLE_MIN, TITLE_MAX = 5, 200
REASON_MAX = 500

# What pseudonymous posting shows instead of the member who wrote a topic or post.
ANONYMOUS_NAME = "Anonymous member"
ANONYMOUS_USERNAME = "anonymous"  # reserved: no account can have it
ANONYMOUS_AUTHOR = {"id": None, "username": ANONYMOUS_USERNAME, "display_name": ANONYMOUS_NAME}


# --- topics as posts see them ----------------------------------------------------------------


@dataclass(frozen=True)
class TopicContext:
    """What writing in a topic needs to know about it and its category."""

    id: int
    title: str
    slug: str
    category_id: int
    group_ids: list[int]
    author_id: int
    closed: bool
    deleted: bool
    status: str = "visible"  # pending, rejected or hidden while its first post is
    anonymous: bool = False
    allow_anonymous: bool = False  # its category allows pseudonymous posts
    archived: bool = False  # its category is archived: no new replies (categories.takes_posts)

    @property
    def audience(self) -> list[str]:
        return access.groups_audience(self.group_ids)


TOPIC_CONTEXT_SQL = """
SELECT t.id, t.title, t.slug, t.category_id, c.group_ids, t.author_id, t.closed, t.deleted_at IS NOT NULL AS deleted,
       t.status, t.anonymous, c.allow_anonymous, c.archived_at
FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id
WHERE t.id = $1
"""


def _topic_context(row: asyncpg.Record) -> TopicContext:
    return TopicContext(
        row["id"],
        row["title"],
        row["slug"],
        row["category_id"],
        list(row["group_ids"]),
        row["author_id"],
        row["closed"],
        row["deleted"],
        row["status"],
        row["anonymous"],
        row["allow_anonymous"],
        row["archived_at"] is not None,
    )


async def readable_topic(conn: asyncpg.Connection, who: Session | None, topic_id: int) -> TopicContext:
    """The topic if it exists and the viewer may read it; 404 otherwise."""
    row = await conn.fetchrow(TOPIC_CONTEXT_SQL, topic_id)
    if (
        row is None
        or row["deleted"]
        or not access.groups_readable(who, row["group_ids"])
        or not access.topic_shown(who, row["status"], row["author_id"])
    ):
        raise access.not_found("that topic")
    return _topic_context(row)


# --- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicQuery:
    """Which topics a list shows: ?category_id=&kind=&sort=latest|top&page=."""

    category_id: int | None = None
    kind: str | None = None
    sort: str = "latest"
    page: int = 1


def parse_topic_query(request: Request, *, category_id: int | None = None) -> TopicQuery:
    """The list query of a request; 400 for values that are not allowed."""
    params = request.query_params
    sort = query_choice(
        request,
        "sort",
        SORTS,
        default="latest",
        message="?sort must be latest or top.",
        field_error="must be latest or top",
    )
    kind = query_choice(request, "kind", KINDS, field_error=f"must be one of: {', '.join(KINDS)}")
    if category_id is None and params.get("category_id"):
        category_id = query_int(request, "category_id", 0, minimum=1, maximum=access.MAX_ID)
    return TopicQuery(category_id=category_id, kind=kind, sort=sort, page=query_int(request, "page", 1))


def _topic_select(since: str, viewer_columns: str = "", viewer_join: str = "") -> str:
    """A topic with its author, category and the viewer's read state ($3 the viewer's id); `since` is
    what "new" is measured from."""
    return f"""
SELECT t.id, t.title, t.slug, t.category_id, t.kind, t.author_id, u.username, u.display_name,
       t.created_at, t.last_posted_at, t.posts_count, t.highest_post_number, t.pinned, t.closed, t.content_note,
       t.reactions_count, c.name AS category_name, c.slug AS category_slug, c.colour AS category_colour, c.group_ids,
       t.status, t.anonymous, c.allow_anonymous, c.archived_at AS category_archived_at,
       r.last_read_post_number,
       CASE WHEN r.last_read_post_number IS NULL THEN NULL ELSE (
           SELECT count(*) FROM forum.posts p
           WHERE p.topic_id = t.id AND p.status = 'visible' AND p.post_number > r.last_read_post_number
       ) END AS unread,
       (r.last_read_post_number IS NULL AND {since} IS NOT NULL AND t.created_at > {since}) AS is_new{viewer_columns}
FROM forum.topics t
JOIN forum.categories c ON c.id = t.category_id
JOIN forum.users u ON u.id = t.author_id
LEFT JOIN forum.topic_reads r ON r.topic_id = t.id AND r.user_id = $3::bigint
{viewer_join}
"""


_TOPIC_SELECT = _topic_select("$4::timestamptz")
_ORDER = {
    "latest": "t.pinned DESC, t.last_posted_at DESC, t.id DESC",
    "top": "t.pinned DESC, t.reactions_count DESC, t.posts_count DESC, t.last_posted_at DESC, t.id DESC",
}
LIST_TOPICS_SQL = (
    _TOPIC_SELECT
    + """
WHERE t.deleted_at IS NULL AND t.status = 'visible' AND {readable}
  AND ($5::bigint IS NULL OR t.category_id = $5) AND ($6::text IS NULL OR t.kind = $6)
ORDER BY {order}
LIMIT $7 OFFSET $8
"""
)
# One topic ($4 its id) with, in the same statement, what the topic page needs to know about the viewer
# (NULL or empty for a visitor): their last visit (what "new" is measured from), whether they may
# post (as posts.check_can_post decides), their content-note choice and the members they mute or
# ignore. A topic page is two statements: this and its posts.
VIEWER_COLUMNS = """,
       me.id IS NOT NULL AS viewer_exists, me.email_verified_at IS NOT NULL AS viewer_verified,
       coalesce(me.silenced_until > now(), false) AS viewer_silenced,
       me.silenced_until AS viewer_silenced_until, me.silenced_reason AS viewer_silenced_reason,
       me.content_notes AS viewer_content_notes,
       ARRAY(SELECT m.muted_user_id FROM forum.member_mutes m WHERE m.user_id = $3::bigint
             ORDER BY m.muted_user_id) AS viewer_muted,
       ARRAY(SELECT m.level FROM forum.member_mutes m WHERE m.user_id = $3::bigint
             ORDER BY m.muted_user_id) AS viewer_mute_levels"""
TOPIC_ROW_SQL = (
    _topic_select(
        "coalesce(me.previous_visit_at, me.created_at)",
        VIEWER_COLUMNS,
        "LEFT JOIN forum.users me ON me.id = $3::bigint",
    )
    + "WHERE t.id = $4 AND t.deleted_at IS NULL "
    + "AND "
    + access.TOPIC_SHOWN_SQL.format(staff="$2", user="$3")
    + " AND "
    + access.READABLE_SQL.format(groups="$1", staff="$2")
)


async def since_last_visit(conn: asyncpg.Connection, who: Session | None) -> datetime | None:
    """What "new" is measured from: the viewer's previous visit, or when they joined."""
    if who is None:
        return None
    since: datetime | None = await conn.fetchval(
        "SELECT coalesce(previous_visit_at, created_at) FROM forum.users WHERE id = $1", who.user_id
    )
    return since


async def list_topics(
    conn: asyncpg.Connection, who: Session | None, query: TopicQuery
) -> tuple[list[asyncpg.Record], bool]:
    """One page of the topics the viewer may read, pinned first; and whether another page follows."""
    if query.category_id is not None:
        await readable_category(conn, who, query.category_id)
    groups, staff = access.sql_params(who)
    sql = LIST_TOPICS_SQL.format(readable=access.READABLE_SQL.format(groups="$1", staff="$2"), order=_ORDER[query.sort])
    rows = await conn.fetch(
        sql,
        groups,
        staff,
        who.user_id if who else None,
        await since_last_visit(conn, who),
        query.category_id,
        query.kind,
        TOPICS_PER_PAGE + 1,
        (query.page - 1) * TOPICS_PER_PAGE,
    )
    return list(rows[:TOPICS_PER_PAGE]), len(rows) > TOPICS_PER_PAGE


async def topic_row(conn: asyncpg.Connection, who: Session | None, topic_id: int) -> asyncpg.Record:
    """A topic with its author, category, the viewer's read state and VIEWER_COLUMNS; 404 when missing
    or not readable."""
    groups, staff = access.sql_params(who)
    row = await conn.fetchrow(TOPIC_ROW_SQL, groups, staff, access.shown_params(who)[0], topic_id)
    if row is None or not access.groups_readable(who, row["group_ids"]):
        raise access.not_found("that topic")
    return row


def topic_url(topic_id: int, slug: str) -> str:
    """A topic's address: /t/{slug}/{id}."""
    return f"/t/{slug}/{topic_id}"


# --- read state ----------------------------------------------------------------------------------

MARK_READ_SQL = """
INSERT INTO forum.topic_reads (user_id, topic_id, last_read_post_number) VALUES ($1, $2, $3)
ON CONFLICT (user_id, topic_id) DO UPDATE
SET last_read_post_number = EXCLUDED.last_read_post_number, updated_at = now()
WHERE forum.topic_reads.last_read_post_number < EXCLUDED.last_read_post_number
RETURNING true
"""


async def mark_read(conn: asyncpg.Connection, user_id: int, topic_id: int, post_number: int) -> bool:
    """Remember that a member has read a topic up to a post; read state only ever moves forward.
    When it moved, topic.read goes out in the same transaction (notify reads the member's count of
    the topic's new replies by it); returns whether it moved."""
    async with conn.transaction():
        moved = bool(await conn.fetchval(MARK_READ_SQL, user_id, topic_id, post_number))
        if moved:
            event = TopicRead(
                user_id=user_id, topic_id=topic_id, post_number=post_number, audience=[audience.user(user_id)]
            )
            await write_event(conn, event, actor_id=user_id)
    return moved


async def mark_read_past(conn: asyncpg.Connection, user_id: int, row: asyncpg.Record, post_number: int) -> None:
    """mark_read for a topic row of topic_row: no write when the member had already read that far,
    as on most views (a write per page view was the topic page's costliest statement under load)."""
    last_read = row["last_read_post_number"]
    if last_read is None or last_read < post_number:
        await mark_read(conn, user_id, row["id"], post_number)


# --- new topics ----------------------------------------------------------------------------------


def clean_title(title: str) -> str:
    """A title as stored: one line, single spaces; 422 when too short or long."""
    text = " ".join(title.split())
    if not TITLE_MIN <= len(text) <= TITLE_MAX:
        raise invalid("title", f"must be {TITLE_MIN} to {TITLE_MAX} characters")
    return text


def clean_note(note: str | None) -> str | None:
    """A content note (or a reason) as stored: one line of plain text, or None."""
    if note is None:
        return None
    return " ".join(note.split()) or None


def check_anonymous(allowed: bool, wanted: bool | None) -> bool:
    """Whether to post as "Anonymous member": only where the category allows it (422 otherwise)."""
    if wanted and not allowed:
        raise invalid("anonymous", "is not possible in this category: post under your own name here")
    return bool(wanted)


INSERT_TOPIC_SQL = """
INSERT INTO forum.topics (category_id, title, slug, kind, author_id, content_note, status, anonymous)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, created_at
"""


async def insert_topic(
    conn: asyncpg.Connection,
    category: asyncpg.Record,
    *,
    title: str,
    slug: str,
    kind: str,
    author_id: int,
    note: str | None,
    status: str,
    anonymous: bool,
) -> TopicContext:
    """A new topic row in a checked category (its first post is written apart: posts.start_topic)."""
    row = await conn.fetchrow(INSERT_TOPIC_SQL, category["id"], title, slug, kind, author_id, note, status, anonymous)
    return TopicContext(
        row["id"],
        title,
        slug,
        category["id"],
        list(category["group_ids"]),
        author_id,
        closed=False,
        deleted=False,
        status=status,
        anonymous=anonymous,
        allow_anonymous=category["allow_anonymous"],
        archived=category["archived_at"] is not None,
    )


# --- topics as events tell them ------------------------------------------------------------------

TOPIC_EVENT_SQL = """
SELECT t.id, t.category_id, t.title, t.slug, t.kind, t.author_id, u.username, c.group_ids, t.pinned, t.closed,
       t.content_note, t.anonymous, t.status, t.created_at, t.deleted_at IS NOT NULL AS deleted
FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id JOIN forum.users u ON u.id = t.author_id
WHERE t.id = $1
"""


def _event_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The fields every topic event carries, from a TOPIC_EVENT_SQL row."""
    return {
        "topic_id": row["id"],
        "category_id": row["category_id"],
        "title": row["title"],
        "slug": row["slug"],
        "kind": row["kind"],
        "author_id": row["author_id"],
        "audience": access.groups_audience(row["group_ids"]),
        "content_note": row["content_note"],
        "anonymous": row["anonymous"],
    }


async def write_topic_updated(conn: asyncpg.Connection, topic_id: int, *, actor_id: int | None) -> None:
    """Record TopicUpdated with the topic as it now is; nothing for a topic never published."""
    row = await conn.fetchrow(TOPIC_EVENT_SQL, topic_id)
    if row["status"] in access.UNPUBLISHED:
        return
    if row["anonymous"] and actor_id == row["author_id"]:
        actor_id = None  # the stream must not tie a pseudonymous topic to its author
    await write_event(
        conn,
        TopicUpdated(
            **_event_fields(row),
            pinned=row["pinned"],
            closed=row["closed"],
            status="deleted" if row["deleted"] else row["status"],
        ),
        actor_id=actor_id,
    )


async def write_topic_created(conn: asyncpg.Connection, topic_id: int) -> None:
    """Record TopicCreated for a topic being published (at once, or when its first post is approved)."""
    row = await conn.fetchrow(TOPIC_EVENT_SQL, topic_id)
    await write_event(
        conn,
        TopicCreated(
            **_event_fields(row),
            author_username=ANONYMOUS_USERNAME if row["anonymous"] else row["username"],
            created_at=row["created_at"].isoformat(),
        ),
        actor_id=None if row["anonymous"] else row["author_id"],
    )


# --- moderators: close, pin, move ---------------------------------------------------------------------

LOCK_TOPIC_SQL = """
SELECT id, category_id, closed, pinned FROM forum.topics WHERE id = $1 AND deleted_at IS NULL FOR UPDATE
"""
# Each change that can be asked for: (field, audit action when set, audit action when unset).
_TOPIC_CHANGES = (("closed", "topic.close", "topic.open"), ("pinned", "topic.pin", "topic.unpin"))


async def moderate_topic(conn: asyncpg.Connection, who: Session, topic_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Check and apply TOPIC_MODERATION_IN data (staff): each change is audited and TopicUpdated tells the rest."""
    access.require_staff(who)
    wanted: dict[str, Any] = {k: data[k] for k in ("closed", "pinned", "category_id") if data.get(k) is not None}
    if not wanted:
        raise invalid("closed", "or pinned or category_id: say what to change")
    current = await conn.fetchrow(LOCK_TOPIC_SQL, topic_id)
    if current is None:
        raise access.not_found("that topic")
    reason = clean_note(data.get("reason"))
    changed = False
    for name, set_action, unset_action in _TOPIC_CHANGES:
        if name in wanted and wanted[name] != current[name]:
            await conn.execute(
                f"UPDATE forum.topics SET {name} = $2, updated_at = now() WHERE id = $1", topic_id, wanted[name]
            )
            action = set_action if wanted[name] else unset_action
            await audit.changed(conn, who, action, topic_id, name, current[name], wanted[name], reason=reason)
            changed = True
    if "category_id" in wanted and wanted["category_id"] != current["category_id"]:
        await _move_topic(conn, who, topic_id, current["category_id"], wanted["category_id"], reason)
        changed = True
    if changed:
        await write_topic_updated(conn, topic_id, actor_id=who.user_id)
    return await topic_row(conn, who, topic_id)


async def _move_topic(
    conn: asyncpg.Connection, who: Session, topic_id: int, old: int, new: int, reason: str | None
) -> None:
    category = await fetch_category(conn, new)
    if category is None:
        raise invalid("category_id", "must be an existing category")
    if category["archived_at"] is not None:  # moving out of an archived category is fine
        raise archived_refusal("category_id")
    await conn.execute("UPDATE forum.topics SET category_id = $2, updated_at = now() WHERE id = $1", topic_id, new)
    await audit.changed(conn, who, "topic.move", topic_id, "category_id", old, new, reason=reason)
