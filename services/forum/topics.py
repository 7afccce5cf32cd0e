"""Topics: listing (latest/top, by category and kind), starting them, replying, and
each member's read state (unread counts, "new since your last visit").

Posts themselves are written by posts.py; a topic's first post is one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import visibility
from services.forum.categories import readable_category, slugify
from services.forum.posts import (
    BODY_FIELD,
    CONTENT_NOTE_FIELD,
    MAX_ID,
    TopicContext,
    check_can_post,
    check_reply_to,
    clean_body,
    clean_note,
    create_post,
    invalid,
    my_reactions,
    post_json,
    readable_topic,
    topic_posts,
)
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
from shared.events import TopicCreated, write_event
from shared.sessions import Session
from shared.web import ApiError, check_csrf, require_viewer, runtime, viewer

api = ApiRouter(tag="topics")

KINDS = ("discussion", "blog", "case_study", "narrative")
KIND_LABELS = {
    "discussion": "Discussion",
    "blog": "Blog",
    "case_study": "Case study",
    "narrative": "Personal narrative",
}
SORTS = ("latest", "top")
TOPICS_PER_PAGE = 30
TITLE_MIN, TITLE_MAX = 5, 200

TOPIC_IN = Schema(
    "TopicIn",
    {
        "category_id": Field("integer", required=True, minimum=1, maximum=MAX_ID),
        "title": Field("string", required=True, min_length=TITLE_MIN, max_length=TITLE_MAX),
        "body": BODY_FIELD,
        "kind": Field(
            "string", enum=KINDS, nullable=True, description="discussion (default), blog, case_study or narrative"
        ),
        "content_note": CONTENT_NOTE_FIELD,
    },
)
REPLY_IN = Schema(
    "ReplyIn",
    {
        "body": BODY_FIELD,
        "reply_to": Field("integer", minimum=1, maximum=MAX_ID, nullable=True, description="id of the post replied to"),
        "content_note": CONTENT_NOTE_FIELD,
    },
)


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
    sort = params.get("sort") or "latest"
    if sort not in SORTS:
        raise ApiError(400, "bad_request", "?sort must be latest or top.", {"sort": "must be latest or top"})
    kind = params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ApiError(
            400,
            "bad_request",
            f"?kind must be one of {', '.join(KINDS)}.",
            {"kind": f"must be one of: {', '.join(KINDS)}"},
        )
    if category_id is None and params.get("category_id"):
        category_id = query_int(request, "category_id", 0, minimum=1, maximum=MAX_ID)
    return TopicQuery(category_id=category_id, kind=kind, sort=sort, page=query_int(request, "page", 1))


_TOPIC_SELECT = """
SELECT t.id, t.title, t.slug, t.category_id, t.kind, t.author_id, u.username, u.display_name,
       t.created_at, t.last_posted_at, t.posts_count, t.highest_post_number, t.pinned, t.closed, t.content_note,
       t.reactions_count, c.name AS category_name, c.slug AS category_slug, c.colour AS category_colour, c.group_ids,
       r.last_read_post_number,
       CASE WHEN r.last_read_post_number IS NULL THEN NULL ELSE (
           SELECT count(*) FROM forum.posts p
           WHERE p.topic_id = t.id AND p.status = 'visible' AND p.post_number > r.last_read_post_number
       ) END AS unread,
       (r.last_read_post_number IS NULL AND $4::timestamptz IS NOT NULL AND t.created_at > $4) AS is_new
FROM forum.topics t
JOIN forum.categories c ON c.id = t.category_id
JOIN forum.users u ON u.id = t.author_id
LEFT JOIN forum.topic_reads r ON r.topic_id = t.id AND r.user_id = $3::bigint
"""
_ORDER = {
    "latest": "t.pinned DESC, t.last_posted_at DESC, t.id DESC",
    "top": "t.pinned DESC, t.reactions_count DESC, t.posts_count DESC, t.last_posted_at DESC, t.id DESC",
}
LIST_TOPICS_SQL = (
    _TOPIC_SELECT
    + """
WHERE t.deleted_at IS NULL AND {readable}
  AND ($5::bigint IS NULL OR t.category_id = $5) AND ($6::text IS NULL OR t.kind = $6)
ORDER BY {order}
LIMIT $7 OFFSET $8
"""
)
TOPIC_SQL = (
    _TOPIC_SELECT
    + "WHERE t.id = $5 AND t.deleted_at IS NULL AND "
    + visibility.READABLE_SQL.format(groups="$1", staff="$2")
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
    groups, staff = visibility.sql_params(who)
    sql = LIST_TOPICS_SQL.format(
        readable=visibility.READABLE_SQL.format(groups="$1", staff="$2"), order=_ORDER[query.sort]
    )
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
    """A topic with its author, category and the viewer's read state; 404 when missing or not readable."""
    groups, staff = visibility.sql_params(who)
    row = await conn.fetchrow(
        TOPIC_SQL, groups, staff, who.user_id if who else None, await since_last_visit(conn, who), topic_id
    )
    if row is None or not visibility.can_read(who, row["group_ids"]):
        raise ApiError(404, "not_found", "We could not find that topic. It may have been removed.")
    return row


def topic_url(topic_id: int, slug: str) -> str:
    return f"/t/{slug}/{topic_id}"


def topic_json(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """The public shape of a topic; `unread` and `new` for a signed-in viewer."""
    out: dict[str, Any] = {
        "id": row["id"],
        "title": row["title"],
        "slug": row["slug"],
        "category_id": row["category_id"],
        "kind": row["kind"],
        "author": {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]},
        "created_at": row["created_at"].isoformat(),
        "last_posted_at": row["last_posted_at"].isoformat(),
        "posts_count": row["posts_count"],
        "reactions_count": row["reactions_count"],
        "pinned": row["pinned"],
        "closed": row["closed"],
        "content_note": row["content_note"],
        "url": topic_url(row["id"], row["slug"]),
    }
    if who is not None:
        out["unread"] = row["unread"]
        out["new"] = bool(row["is_new"])
    return out


# --- read state ----------------------------------------------------------------------------------

MARK_READ_SQL = """
INSERT INTO forum.topic_reads (user_id, topic_id, last_read_post_number) VALUES ($1, $2, $3)
ON CONFLICT (user_id, topic_id) DO UPDATE
SET last_read_post_number = EXCLUDED.last_read_post_number, updated_at = now()
WHERE forum.topic_reads.last_read_post_number < EXCLUDED.last_read_post_number
"""


async def mark_read(conn: asyncpg.Connection, user_id: int, topic_id: int, post_number: int) -> None:
    """Remember that a member has read a topic up to a post; read state only ever moves forward."""
    await conn.execute(MARK_READ_SQL, user_id, topic_id, post_number)


# --- starting topics and replying ------------------------------------------------------------------


def clean_title(title: str) -> str:
    """A title as stored: one line, single spaces; 422 when too short or long."""
    text = " ".join(title.split())
    if not TITLE_MIN <= len(text) <= TITLE_MAX:
        raise invalid("title", f"must be {TITLE_MIN} to {TITLE_MAX} characters")
    return text


INSERT_TOPIC_SQL = """
INSERT INTO forum.topics (category_id, title, slug, kind, author_id, content_note)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, created_at
"""


async def start_topic(
    conn: asyncpg.Connection, who: Session, data: dict[str, Any]
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Check and start a topic (TOPIC_IN data) with its first post; returns (topic row, post row)."""
    category = await readable_category(conn, who, data["category_id"])
    author = await check_can_post(conn, who)
    title = clean_title(data["title"])
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    kind = data.get("kind") or "discussion"
    slug = slugify(title)
    row = await conn.fetchrow(INSERT_TOPIC_SQL, category["id"], title, slug, kind, author["id"], note)
    topic = TopicContext(
        row["id"], title, slug, category["id"], list(category["group_ids"]), author["id"], closed=False, deleted=False
    )
    await write_event(
        conn,
        TopicCreated(
            topic_id=topic.id,
            category_id=topic.category_id,
            title=title,
            slug=slug,
            kind=kind,
            author_id=author["id"],
            author_username=author["username"],
            audience=topic.audience,
            content_note=note,
            created_at=row["created_at"].isoformat(),
        ),
        actor_id=author["id"],
    )
    post = await create_post(conn, topic=topic, author=author, raw=raw, content_note=note)
    await mark_read(conn, author["id"], topic.id, post["post_number"])
    return await topic_row(conn, who, topic.id), post


async def reply(conn: asyncpg.Connection, who: Session, topic_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Check and write a reply (REPLY_IN data) in a topic; returns the post row."""
    topic = await readable_topic(conn, who, topic_id)
    if topic.closed and not who.is_staff:
        raise ApiError(403, "topic_closed", "This topic is closed, so it no longer takes replies.")
    author = await check_can_post(conn, who)
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    reply_to = await check_reply_to(conn, topic, data.get("reply_to"))
    post = await create_post(conn, topic=topic, author=author, raw=raw, content_note=note, reply_to=reply_to)
    await mark_read(conn, author["id"], topic.id, post["post_number"])
    return post


async def topic_page(
    conn: asyncpg.Connection, who: Session | None, topic_id: int, page: int
) -> tuple[asyncpg.Record, list[asyncpg.Record], bool, dict[int, set[str]]]:
    """A topic, one page of its posts, whether more follow, and the viewer's reactions; marks them read."""
    row = await topic_row(conn, who, topic_id)
    posts, has_next = await topic_posts(conn, who, topic_id, page)
    given = await my_reactions(conn, who, [p["id"] for p in posts])
    if who is not None and posts:
        await mark_read(conn, who.user_id, topic_id, posts[-1]["post_number"])
    return row, posts, has_next, given


# --- endpoints -----------------------------------------------------------------------------------


@api.get(
    "/api/topics",
    answers={200: "Topics, pinned first"},
    query={
        "category_id": "only this category",
        "kind": "discussion, blog, case_study or narrative",
        "sort": "latest (default) or top",
        "page": "1-based page of 30",
    },
)
async def list_topics_endpoint(request: Request) -> Response:
    """List topics the viewer may read, pinned first, then latest or top."""
    who = await viewer(request)
    query = parse_topic_query(request)
    async with runtime(request).pool.acquire() as conn:
        rows, has_next = await list_topics(conn, who, query)
    return JSONResponse({"items": [topic_json(row, who) for row in rows], "next": query.page + 1 if has_next else None})


@api.post("/api/topics", body=TOPIC_IN, answers={201: "Topic with first_post"}, auth=True)
async def create_topic_endpoint(request: Request) -> Response:
    """Start a topic in a category the viewer may read (needs a confirmed email)."""
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, TOPIC_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        topic, post = await start_topic(conn, who, data)
    return JSONResponse({**topic_json(topic, who), "first_post": post_json(post, who)}, status_code=201)


@api.get("/api/topics/{id}", answers={200: "Topic with posts (20 a page) and next"}, query={"page": "1-based"})
async def get_topic_endpoint(request: Request) -> Response:
    """A topic with one page of its posts; marks them read for a signed-in viewer."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        row, posts, has_next, given = await topic_page(conn, who, topic_id, page)
    return JSONResponse(
        {
            **topic_json(row, who),
            "posts": [post_json(p, who, given.get(p["id"], ())) for p in posts],
            "next": page + 1 if has_next else None,
        }
    )


@api.post("/api/topics/{id}/posts", body=REPLY_IN, answers={201: "Post"}, auth=True)
async def reply_endpoint(request: Request) -> Response:
    """Reply in a topic (closed topics take replies from staff only)."""
    topic_id = path_int(request, "id")
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, REPLY_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        post = await reply(conn, who, topic_id, data)
    return JSONResponse(post_json(post, who), status_code=201)
