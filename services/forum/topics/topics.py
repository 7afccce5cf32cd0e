"""Topics: listing (latest/top, by category and kind), starting them, replying, and
each member's read state (unread counts, "new since your last visit"); moderators close,
pin and move them.

Posts themselves are written by posts.py; a topic's first post is one of them. Starting a
topic and replying go through the safety checks (safety.py): blocked words, rate limits, a
new member's first posts waiting for approval (202), and safeguarding phrases (the author
is offered support, moderators are alerted). A topic whose first post waits is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.moderation import audit, safety
from services.forum.topics.categories import fetch_category, readable_category, slugify
from services.forum.topics.posts import (
    ANONYMOUS_AUTHOR,
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
    post_json,
    readable_topic,
    render_body,
    topic_posts,
    write_topic_created,
    write_topic_updated,
)
from shared import markdown
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
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
REASON_MAX = 500
ANONYMOUS_FIELD = Field(
    "boolean", nullable=True, description='post as "Anonymous member" (categories that allow it only)'
)
PENDING_MESSAGE = (
    "Thank you for posting. A moderator will look at it soon, and it will appear once they have. "
    "You can see it, marked as waiting for review."
)

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
        "anonymous": ANONYMOUS_FIELD,
    },
)
REPLY_IN = Schema(
    "ReplyIn",
    {
        "body": BODY_FIELD,
        "reply_to": Field("integer", minimum=1, maximum=MAX_ID, nullable=True, description="id of the post replied to"),
        "content_note": CONTENT_NOTE_FIELD,
        "anonymous": ANONYMOUS_FIELD,
    },
)
TOPIC_MODERATION_IN = Schema(
    "TopicModeration",
    {
        "closed": Field("boolean", nullable=True, description="closed topics take replies from staff only"),
        "pinned": Field("boolean", nullable=True, description="pinned topics come first in lists"),
        "category_id": Field("integer", minimum=1, maximum=MAX_ID, nullable=True, description="move to this category"),
        "reason": Field("string", max_length=REASON_MAX, nullable=True, description="kept in the audit log"),
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


def _topic_select(since: str, viewer_columns: str = "", viewer_join: str = "") -> str:
    """A topic with its author, category and the viewer's read state ($3 the viewer's id); `since` is
    what "new" is measured from."""
    return f"""
SELECT t.id, t.title, t.slug, t.category_id, t.kind, t.author_id, u.username, u.display_name,
       t.created_at, t.last_posted_at, t.posts_count, t.highest_post_number, t.pinned, t.closed, t.content_note,
       t.reactions_count, c.name AS category_name, c.slug AS category_slug, c.colour AS category_colour, c.group_ids,
       t.status, t.anonymous, c.allow_anonymous,
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
TOPIC_SQL = (
    _TOPIC_SELECT
    + "WHERE t.id = $5 AND t.deleted_at IS NULL "
    + "AND (t.status = 'visible' OR $2::boolean OR t.author_id = $3::bigint) AND "
    + access.READABLE_SQL.format(groups="$1", staff="$2")
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
    + "AND (t.status = 'visible' OR $2::boolean OR t.author_id = $3::bigint) AND "
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
    row = await conn.fetchrow(TOPIC_ROW_SQL, groups, staff, who.user_id if who else None, topic_id)
    if row is None or not access.groups_readable(who, row["group_ids"]):
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
        "author": dict(ANONYMOUS_AUTHOR)
        if row["anonymous"]
        else {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]},
        "anonymous": row["anonymous"],
        "status": row["status"],
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


async def mark_read_past(conn: asyncpg.Connection, user_id: int, row: asyncpg.Record, post_number: int) -> None:
    """mark_read for a topic row of topic_row: no write when the member had already read that far,
    as on most views (a write per page view was the topic page's costliest statement under load)."""
    last_read = row["last_read_post_number"]
    if last_read is None or last_read < post_number:
        await mark_read(conn, user_id, row["id"], post_number)


# --- starting topics and replying ------------------------------------------------------------------


def clean_title(title: str) -> str:
    """A title as stored: one line, single spaces; 422 when too short or long."""
    text = " ".join(title.split())
    if not TITLE_MIN <= len(text) <= TITLE_MAX:
        raise invalid("title", f"must be {TITLE_MIN} to {TITLE_MAX} characters")
    return text


INSERT_TOPIC_SQL = """
INSERT INTO forum.topics (category_id, title, slug, kind, author_id, content_note, status, anonymous)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, created_at
"""


def check_anonymous(allowed: bool, wanted: bool | None) -> bool:
    """Whether to post as "Anonymous member": only where the category allows it (422 otherwise)."""
    if wanted and not allowed:
        raise invalid("anonymous", "is not possible in this category: post under your own name here")
    return bool(wanted)


class Written(NamedTuple):
    """A new post as written: its row, and whether it matched a safeguarding phrase (its author is
    then shown the support panel)."""

    post: asyncpg.Record
    support: bool


async def start_topic(
    conn: asyncpg.Connection, who: Session, data: dict[str, Any], rules: safety.PostingRules | None = None
) -> tuple[asyncpg.Record, Written]:
    """Check and start a topic (TOPIC_IN data) with its first post; returns the topic row and the post.

    With `rules` (every request does) the safety checks run: a blocked word is 422, too many
    posts 429, and a post held for review leaves both topic and post pending, with no events
    until a moderator approves it. Without rules (demo data) nothing is screened.
    """
    category = await readable_category(conn, who, data["category_id"])
    author = await check_can_post(conn, who)
    title = clean_title(data["title"])
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    anonymous = check_anonymous(category["allow_anonymous"], data.get("anonymous"))
    kind = data.get("kind") or "discussion"
    rendered = await render_body(conn, raw)
    review = await safety.review_new_post(conn, who, author, text=f"{title}\n{rendered.text}", rules=rules, topic=True)
    status = "pending" if review.pending else "visible"
    slug = slugify(title)
    row = await conn.fetchrow(
        INSERT_TOPIC_SQL, category["id"], title, slug, kind, author["id"], note, status, anonymous
    )
    topic = TopicContext(
        row["id"],
        title,
        slug,
        category["id"],
        list(category["group_ids"]),
        author["id"],
        closed=False,
        deleted=False,
        status=status,
        anonymous=anonymous,
        allow_anonymous=category["allow_anonymous"],
    )
    if status == "visible":
        await write_topic_created(conn, topic.id)
    written = await _write_post(conn, topic, author, raw, note, review, rendered, anonymous=anonymous)
    return await topic_row(conn, who, topic.id), written


async def _write_post(
    conn: asyncpg.Connection,
    topic: TopicContext,
    author: asyncpg.Record,
    raw: str,
    note: str | None,
    review: safety.PostReview,
    rendered: markdown.Rendered,
    *,
    anonymous: bool,
    reply_to: asyncpg.Record | None = None,
) -> Written:
    post = await create_post(
        conn,
        topic=topic,
        author=author,
        raw=raw,
        content_note=note,
        reply_to=reply_to,
        status="pending" if review.pending else "visible",
        anonymous=anonymous,
        censor=review.censored,
        rendered=rendered,
        read_by=author["id"],  # the author has read their own post: in the same statement
    )
    await safety.open_reviews_for_new_post(conn, post, review, category_id=topic.category_id)
    return Written(post, bool(review.crisis))


async def reply(
    conn: asyncpg.Connection,
    who: Session,
    topic_id: int,
    data: dict[str, Any],
    rules: safety.PostingRules | None = None,
) -> Written:
    """Check and write a reply (REPLY_IN data) in a topic; returns the post (pending when held for review)."""
    topic = await readable_topic(conn, who, topic_id)
    if topic.closed and not who.is_staff:
        raise ApiError(403, "topic_closed", "This topic is closed, so it no longer takes replies.")
    if topic.status != "visible" and not who.is_staff:
        raise ApiError(
            409, "topic_not_open", "This topic is not open for replies yet: a moderator needs to look at it first."
        )
    author = await check_can_post(conn, who)
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    wanted = data.get("anonymous")
    if wanted is None and topic.anonymous and topic.allow_anonymous and topic.author_id == who.user_id:
        wanted = True  # an anonymous topic's author stays anonymous in it unless they say otherwise
    anonymous = check_anonymous(topic.allow_anonymous, wanted)
    reply_to = await check_reply_to(conn, topic, data.get("reply_to"))
    rendered = await render_body(conn, raw)
    review = await safety.review_new_post(conn, who, author, text=rendered.text, rules=rules, topic=False)
    return await _write_post(conn, topic, author, raw, note, review, rendered, anonymous=anonymous, reply_to=reply_to)


async def topic_page(
    conn: asyncpg.Connection,
    who: Session | None,
    topic_id: int,
    page: int,
    row: asyncpg.Record | None = None,
) -> tuple[asyncpg.Record, list[asyncpg.Record], bool]:
    """A topic (`row` when already fetched by topic_row), one page of its posts (with the viewer's
    part in each, their reactions among it: posts.VIEWER_POST_COLUMNS) and whether more follow;
    marks them read."""
    row = row if row is not None else await topic_row(conn, who, topic_id)
    posts, has_next = await topic_posts(conn, who, topic_id, page)
    if who is not None and posts:
        await mark_read_past(conn, who.user_id, row, posts[-1]["post_number"])
    return row, posts, has_next


# --- moderators: close, pin, move ---------------------------------------------------------------------

LOCK_TOPIC_SQL = """
SELECT id, category_id, closed, pinned FROM forum.topics WHERE id = $1 AND deleted_at IS NULL FOR UPDATE
"""
# Each change that can be asked for: (field, audit action when set, audit action when unset).
_TOPIC_CHANGES = (("closed", "topic.close", "topic.open"), ("pinned", "topic.pin", "topic.unpin"))


async def moderate_topic(conn: asyncpg.Connection, who: Session, topic_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Check and apply TOPIC_MODERATION_IN data (staff): each change is audited and TopicUpdated tells the rest."""
    audit.require_staff(who)
    wanted: dict[str, Any] = {k: data[k] for k in ("closed", "pinned", "category_id") if data.get(k) is not None}
    if not wanted:
        raise invalid("closed", "or pinned or category_id: say what to change")
    current = await conn.fetchrow(LOCK_TOPIC_SQL, topic_id)
    if current is None:
        raise ApiError(404, "not_found", "We could not find that topic. It may have been removed.")
    reason = clean_note(data.get("reason"))
    changed = False
    for name, set_action, unset_action in _TOPIC_CHANGES:
        if name in wanted and wanted[name] != current[name]:
            await conn.execute(
                f"UPDATE forum.topics SET {name} = $2, updated_at = now() WHERE id = $1", topic_id, wanted[name]
            )
            await audit.record(
                conn,
                actor_id=who.user_id,
                action=set_action if wanted[name] else unset_action,
                target_type="topic",
                target_id=topic_id,
                reason=reason,
                before={name: current[name]},
                after={name: wanted[name]},
            )
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
    if await fetch_category(conn, new) is None:
        raise invalid("category_id", "must be an existing category")
    await conn.execute("UPDATE forum.topics SET category_id = $2, updated_at = now() WHERE id = $1", topic_id, new)
    await audit.record(
        conn,
        actor_id=who.user_id,
        action="topic.move",
        target_type="topic",
        target_id=topic_id,
        reason=reason,
        before={"category_id": old},
        after={"category_id": new},
    )


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


def written_json(written: Written, shape: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The answer to a new topic or reply: 201 with it, or 202 `pending_review`; `support` when offered."""
    body = dict(shape)
    post = written.post
    if written.support:
        body["support"] = safety.support_panel(held=post["status"] == "pending")
    if post["status"] == "pending":
        return {**body, "status": "pending_review", "message": PENDING_MESSAGE}, 202
    return body, 201


@api.post(
    "/api/topics",
    body=TOPIC_IN,
    answers={
        201: "Topic with first_post (and `support` when the post matched a safeguarding phrase)",
        202: "{status: pending_review, message, ...topic, first_post}: a moderator looks first",
        429: "Too many posts or topics for now (Retry-After)",
    },
    auth=True,
)
async def create_topic_endpoint(request: Request) -> Response:
    """Start a topic in a category the viewer may read (needs a confirmed email)."""
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, TOPIC_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        topic, written = await start_topic(conn, who, data, safety.PostingRules.of(rt))
        body, status = written_json(written, {**topic_json(topic, who), "first_post": post_json(written.post, who)})
    return JSONResponse(body, status_code=status)


@api.get("/api/topics/{id}", answers={200: "Topic with posts (20 a page) and next"}, query={"page": "1-based"})
async def get_topic_endpoint(request: Request) -> Response:
    """A topic with one page of its posts; marks them read for a signed-in viewer."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        row, posts, has_next = await topic_page(conn, who, topic_id, page)
    return JSONResponse(
        {
            **topic_json(row, who),
            "posts": [post_json(p, who, p["given"]) for p in posts],
            "next": page + 1 if has_next else None,
        }
    )


@api.post(
    "/api/topics/{id}/posts",
    body=REPLY_IN,
    answers={
        201: "Post (and `support` when it matched a safeguarding phrase)",
        202: "{status: pending_review, message, ...post}: a moderator looks first",
        429: "Too many posts for now (Retry-After)",
    },
    auth=True,
)
async def reply_endpoint(request: Request) -> Response:
    """Reply in a topic (closed topics take replies from staff only)."""
    topic_id = path_int(request, "id")
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, REPLY_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        written = await reply(conn, who, topic_id, data, safety.PostingRules.of(rt))
        body, status = written_json(written, post_json(written.post, who))
    return JSONResponse(body, status_code=status)


@api.post(
    "/api/topics/{id}/moderate",
    body=TOPIC_MODERATION_IN,
    answers={200: "Topic", 422: "Nothing to change, or not a category"},
    auth=True,
)
async def moderate_topic_endpoint(request: Request) -> Response:
    """Close or open, pin or unpin, or move a topic to another category (moderators); each change is audited."""
    topic_id = path_int(request, "id")
    who = await require_viewer(request)
    check_csrf(request, who)
    audit.require_staff(who)
    data = await read_json(request, TOPIC_MODERATION_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await moderate_topic(conn, who, topic_id, data)
    return JSONResponse(topic_json(row, who))
