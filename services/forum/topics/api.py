"""The JSON API of categories, topics and posts: request schemas, the `*_json` shapes (the pages
build on the same), and the endpoints, one router per OpenAPI tag. Reactions: posts.api.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.directory import directory
from services.forum.moderation import screening
from services.forum.topics import categories, moves, posts, revisions, topics
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, page_of, path_int, query_int, read_json, writing
from shared.sessions import Session
from shared.web import ApiError, require_writer, runtime, viewer

categories_api = ApiRouter(tag="categories")
topics_api = ApiRouter(tag="topics")
posts_api = ApiRouter(tag="posts")

PENDING_MESSAGE = (
    "Thank you for posting. A moderator will look at it soon, and it will appear once they have. "
    "You can see it, marked as waiting for review."
)

# --- JSON shapes (the *_json functions below make them) -------------------------------------------

AUTHOR = Shape("Author", {"id": "integer?", "username": "string", "display_name": "string"})
CATEGORY = Shape(
    "Category",
    {
        "id": "integer",
        "name": "string",
        "slug": "string",
        "description": "string?",
        "colour": "string?",
        "position": "integer",
        "topics_count": "integer",
        "allow_anonymous": "boolean",
        "url": "string",
        "group_ids?": ["integer"],
        "parent_id": "integer?",
        "default_kind": "string",
        "archived": "boolean",
        "archived_at": "datetime?",
    },
)
CATEGORY_LIST = Shape("CategoryList", {"items": [CATEGORY]})
TOPIC = Shape(
    "Topic",
    {
        "id": "integer",
        "title": "string",
        "slug": "string",
        "category_id": "integer",
        "kind": "string",
        "author": AUTHOR,
        "anonymous": "boolean",
        "status": "string",
        "created_at": "datetime",
        "last_posted_at": "datetime",
        "posts_count": "integer",
        "reactions_count": "integer",
        "pinned": "boolean",
        "closed": "boolean",
        "content_note": "string?",
        "url": "string",
        "unread?": "integer?",
        "new?": "boolean",
    },
)
POST = Shape(
    "Post",
    {
        "id": "integer",
        "topic_id": "integer",
        "post_number": "integer",
        "author": AUTHOR,
        "anonymous": "boolean",
        "badges": ["string"],
        "raw": "string",
        "cooked": "string",
        "reply_to": "integer?",
        "content_note": "string?",
        "status": "string",
        "reactions": "object",
        "revision": "integer",
        "can_edit": "boolean",
        "created_at": "datetime",
        "updated_at": "datetime",
        "moderation_reason?": "string?",
        "my_reactions?": ["string"],
    },
)
SUPPORT = Shape(
    "Support",
    {
        "heading": "string",
        "intro": "string",
        "services": [{"name": "string", "action": "string", "href": "string?", "detail": "string", "url": "string?"}],
        "after": "any",
        "post_note?": "string",
    },
)
WRITTEN = {"support?": SUPPORT, "status?": "string", "message?": "string"}  # with a new topic or post
NEW_TOPIC = TOPIC.extend("NewTopic", {"first_post": POST, **WRITTEN})
NEW_POST = POST.extend("NewPost", WRITTEN)
TOPIC_WITH_POSTS = TOPIC.extend("TopicWithPosts", {"posts": [POST], "next": "integer?"})
REDACTION = Shape("Redaction", {"by": "string", "at": "datetime"})  # by: "author" or "moderator"
REVISION = Shape(
    "Revision",
    {
        "revision": "integer",
        "raw": "string",
        "content_note": "string?",
        "editor": AUTHOR,
        "reason": "string?",
        "created_at": "datetime",
        "redacted": Maybe(REDACTION),
        "can_redact": "boolean",
    },
)
PAGE = Field("integer", minimum=1, maximum=10_000, description="1-based")

# --- categories ----------------------------------------------------------------------------------

PARENT_FIELD = Field(
    "integer",
    minimum=1,
    maximum=access.MAX_ID,
    nullable=True,
    description="a subcategory of this top-level category (one level deep); null: top level",
)
DEFAULT_KIND_FIELD = Field(
    "string", enum=categories.KINDS, nullable=True, description="the kind a new topic here starts as"
)
CATEGORY_IN = Schema(
    "CategoryIn",
    {
        "name": Field("string", required=True, min_length=1, max_length=50),
        "slug": Field(
            "string",
            max_length=categories.SLUG_MAX,
            pattern=categories.SLUG_PATTERN,
            nullable=True,
            description="lowercase words joined by '-'; made from the name when absent",
        ),
        "description": Field("string", max_length=500, nullable=True),
        "colour": Field("string", pattern=categories.COLOUR_PATTERN, nullable=True, description="hex RGB, e.g. 005eb8"),
        "position": Field("integer", minimum=0, maximum=10_000, nullable=True),
        "group_ids": Field(
            "array",
            items="integer",
            max_length=50,
            minimum=1,
            maximum=access.MAX_ID,
            nullable=True,
            description="private to these groups (and staff) when not empty",
        ),
        "allow_anonymous": Field("boolean", nullable=True, description='members may post as "Anonymous member"'),
        "parent_id": PARENT_FIELD,
        "default_kind": DEFAULT_KIND_FIELD,
    },
)

CATEGORY_PATCH = Schema(
    "CategoryPatch",
    {
        "name": Field("string", min_length=1, max_length=50),
        "description": Field("string", max_length=500),
        "colour": Field("string", pattern=categories.COLOUR_PATTERN),
        "position": Field("integer", minimum=0, maximum=10_000),
        "allow_anonymous": Field("boolean"),
        "group_ids": Field(
            "array",
            items="integer",
            max_length=50,
            minimum=1,
            maximum=access.MAX_ID,
            description="private to these groups (and staff); [] for public",
        ),
        "parent_id": PARENT_FIELD,
        "default_kind": Field("string", enum=categories.KINDS, description="the kind a new topic here starts as"),
    },
)
CATEGORY_ORDER = Schema(
    "CategoryOrder",
    {
        "parent_id": Field(
            "integer",
            minimum=1,
            maximum=access.MAX_ID,
            nullable=True,
            description="whose subcategories to order; null or absent: the top-level categories",
        ),
        "category_ids": Field(
            "array",
            required=True,
            items="integer",
            max_length=1000,
            minimum=1,
            maximum=access.MAX_ID,
            description="every category of that level, each once, in their new order",
        ),
    },
)


def category_json(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """The public shape of a category; its groups only to staff."""
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "slug": row["slug"],
        "description": row["description"],
        "colour": row["colour"],
        "position": row["position"],
        "topics_count": row["topics_count"],
        "allow_anonymous": row["allow_anonymous"],
        "url": f"/c/{row['slug']}",
        "parent_id": row["parent_id"],
        "default_kind": row["default_kind"],
        "archived": row["archived_at"] is not None,
        "archived_at": row["archived_at"].isoformat() if row["archived_at"] else None,
    }
    if access.is_staff(who):
        out["group_ids"] = list(row["group_ids"])
    return out


def category_id_of(request: Request) -> int:
    """The id in /api/categories/{id}: that path also matches /api/categories/order, which answers PUT
    only, so any other method there is 405 (as for any path), not a 404 for an id "order"."""
    if request.path_params.get("id") == "order":
        raise ApiError(405, "method_not_allowed", "Method Not Allowed", headers={"Allow": "PUT"})
    return path_int(request, "id")


@categories_api.get("/api/categories", answers={200: ("Categories the viewer may read", CATEGORY_LIST)})
async def list_categories_endpoint(request: Request) -> Response:
    """List the categories the viewer may read."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        rows = await categories.list_readable(conn, who)
    return JSONResponse({"items": [category_json(row, who) for row in rows]})


@categories_api.post("/api/categories", body=CATEGORY_IN, answers={201: CATEGORY}, auth=True)
async def create_category_endpoint(request: Request) -> Response:
    """Create a category (admins)."""
    async with writing(request, CATEGORY_IN, allowed=categories.require_manager) as w:
        row = await categories.create_category(w.conn, w.who, w.data)
    return JSONResponse(category_json(row, w.who), status_code=201)


@categories_api.put(
    "/api/categories/order",
    body=CATEGORY_ORDER,
    answers={200: ("The categories of that level in their new order", CATEGORY_LIST)},
    auth=True,
)
async def reorder_categories_endpoint(request: Request) -> Response:
    """Put the top-level categories, or one category's subcategories, in a new order (admins)."""
    async with writing(request, CATEGORY_ORDER, allowed=categories.require_manager) as w:
        rows = await categories.reorder_categories(w.conn, w.who, w.data.get("parent_id"), w.data["category_ids"])
    return JSONResponse({"items": [category_json(row, w.who) for row in rows]})


@categories_api.patch("/api/categories/{id}", body=CATEGORY_PATCH, answers={200: CATEGORY}, auth=True)
async def update_category_endpoint(request: Request) -> Response:
    """Change a category's name, description, colour, position, groups, parent, default kind or anonymous
    posting (admins)."""
    category_id = category_id_of(request)
    async with writing(request, CATEGORY_PATCH, allowed=categories.require_manager) as w:
        row = await categories.change_category(w.conn, w.who, category_id, w.data)
    return JSONResponse(category_json(row, w.who))


@categories_api.delete(
    "/api/categories/{id}",
    answers={204: "Deleted", 409: "It has held topics (archive it instead), or it has subcategories"},
    auth=True,
)
async def delete_category_endpoint(request: Request) -> Response:
    """Delete a category that never held a topic and has no subcategories (admins)."""
    category_id = category_id_of(request)
    async with writing(request, allowed=categories.require_manager) as w:
        await categories.delete_category(w.conn, w.who, category_id)
    return Response(status_code=204)


@categories_api.post("/api/categories/{id}/archive", answers={200: CATEGORY}, auth=True)
async def archive_category_endpoint(request: Request) -> Response:
    """Archive a category and its subcategories: readable, but no new topics or replies (admins)."""
    category_id = path_int(request, "id")
    async with writing(request, allowed=categories.require_manager) as w:
        row = await categories.archive_category(w.conn, w.who, category_id)
    return JSONResponse(category_json(row, w.who))


@categories_api.delete(
    "/api/categories/{id}/archive",
    answers={200: CATEGORY, 409: "Its parent category is archived: bring that back first"},
    auth=True,
)
async def unarchive_category_endpoint(request: Request) -> Response:
    """Bring back an archived category, with the subcategories archived with it (admins)."""
    category_id = path_int(request, "id")
    async with writing(request, allowed=categories.require_manager) as w:
        row = await categories.unarchive_category(w.conn, w.who, category_id)
    return JSONResponse(category_json(row, w.who))


# --- topics ---------------------------------------------------------------------------------------

BODY_FIELD = Field(
    "string",
    required=True,
    min_length=1,
    max_length=posts.BODY_MAX,
    strip=False,
    description="Markdown, 1 to 50,000 characters",
)
CONTENT_NOTE_FIELD = Field(
    "string",
    max_length=posts.CONTENT_NOTE_MAX,
    nullable=True,
    description='shown before the post, which starts collapsed; e.g. "self-harm"',
)


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
        "category_id": Field("integer", required=True, minimum=1, maximum=access.MAX_ID),
        "title": Field("string", required=True, min_length=topics.TITLE_MIN, max_length=topics.TITLE_MAX),
        "body": BODY_FIELD,
        "kind": Field(
            "string",
            enum=topics.KINDS,
            nullable=True,
            description="discussion, blog, case_study or narrative; absent: the category's default kind",
        ),
        "content_note": CONTENT_NOTE_FIELD,
        "anonymous": ANONYMOUS_FIELD,
    },
)
REPLY_IN = Schema(
    "ReplyIn",
    {
        "body": BODY_FIELD,
        "reply_to": Field(
            "integer", minimum=1, maximum=access.MAX_ID, nullable=True, description="id of the post replied to"
        ),
        "content_note": CONTENT_NOTE_FIELD,
        "anonymous": ANONYMOUS_FIELD,
    },
)
TOPIC_MODERATION_IN = Schema(
    "TopicModeration",
    {
        "closed": Field("boolean", nullable=True, description="closed topics take replies from staff only"),
        "pinned": Field("boolean", nullable=True, description="pinned topics come first in lists"),
        "category_id": Field(
            "integer", minimum=1, maximum=access.MAX_ID, nullable=True, description="move to this category"
        ),
        "reason": Field("string", max_length=topics.REASON_MAX, nullable=True, description="kept in the audit log"),
    },
)


def topic_json(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """The public shape of a topic; `unread` and `new` for a signed-in viewer."""
    out: dict[str, Any] = {
        "id": row["id"],
        "title": row["title"],
        "slug": row["slug"],
        "category_id": row["category_id"],
        "kind": row["kind"],
        "author": dict(topics.ANONYMOUS_AUTHOR)
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
        "url": topics.topic_url(row["id"], row["slug"]),
    }
    if who is not None:
        out["unread"] = row["unread"]
        out["new"] = bool(row["is_new"])
    return out


@topics_api.get(
    "/api/topics",
    answers={200: ("Topics, pinned first", page_of(TOPIC))},
    query={
        "category_id": Field("integer", minimum=1, maximum=access.MAX_ID, description="only this category"),
        "kind": Field("string", enum=topics.KINDS, description="discussion, blog, case_study or narrative"),
        "sort": Field("string", enum=("latest", "top"), description="latest (default) or top"),
        "page": Field("integer", minimum=1, maximum=10_000, description="1-based page of 30"),
    },
)
async def list_topics_endpoint(request: Request) -> Response:
    """List topics the viewer may read, pinned first, then latest or top."""
    who = await viewer(request)
    query = topics.parse_topic_query(request)
    async with runtime(request).pool.acquire() as conn:
        rows, has_next = await topics.list_topics(conn, who, query)
    return JSONResponse({"items": [topic_json(row, who) for row in rows], "next": query.page + 1 if has_next else None})


def written_json(written: posts.Written, shape: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The answer to a new topic or reply: 201 with it, or 202 `pending_review`; `support` when offered."""
    body = dict(shape)
    post = written.post
    if written.support:
        body["support"] = screening.support_panel(held=post["status"] == "pending")
    if post["status"] == "pending":
        return {**body, "status": "pending_review", "message": PENDING_MESSAGE}, 202
    return body, 201


@topics_api.post(
    "/api/topics",
    body=TOPIC_IN,
    answers={
        201: ("Topic with first_post (and `support` when the post matched a safeguarding phrase)", NEW_TOPIC),
        202: ("{status: pending_review, message, ...topic, first_post}: a moderator looks first", NEW_TOPIC),
        429: "Too many posts or topics for now (Retry-After)",
    },
    auth=True,
)
async def create_topic_endpoint(request: Request) -> Response:
    """Start a topic in a category the viewer may read (needs a confirmed email)."""
    who = await require_writer(request)
    data = await read_json(request, TOPIC_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        topic, written = await posts.start_topic(conn, who, data, screening.PostingRules.of(rt))
        badges = await author_badges(conn, [written.post])
        first_post = post_json(written.post, who, (), badges)
        body, status = written_json(written, {**topic_json(topic, who), "first_post": first_post})
    return JSONResponse(body, status_code=status)


@topics_api.get(
    "/api/topics/{id}",
    answers={200: ("Topic with posts (20 a page) and next", TOPIC_WITH_POSTS)},
    query={"page": PAGE},
)
async def get_topic_endpoint(request: Request) -> Response:
    """A topic with one page of its posts; marks them read for a signed-in viewer."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        row, rows, has_next = await posts.topic_page(conn, who, topic_id, page)
        badges = await author_badges(conn, rows)
    return JSONResponse(
        {
            **topic_json(row, who),
            "posts": [post_json(p, who, p["given"], badges) for p in rows],
            "next": page + 1 if has_next else None,
        }
    )


@topics_api.post(
    "/api/topics/{id}/posts",
    body=REPLY_IN,
    answers={
        201: ("Post (and `support` when it matched a safeguarding phrase)", NEW_POST),
        202: ("{status: pending_review, message, ...post}: a moderator looks first", NEW_POST),
        429: "Too many posts for now (Retry-After)",
    },
    auth=True,
)
async def reply_endpoint(request: Request) -> Response:
    """Reply in a topic (closed topics take replies from staff only)."""
    topic_id = path_int(request, "id")
    who = await require_writer(request)
    data = await read_json(request, REPLY_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        written = await posts.reply(conn, who, topic_id, data, screening.PostingRules.of(rt))
        badges = await author_badges(conn, [written.post])
        body, status = written_json(written, post_json(written.post, who, (), badges))
    return JSONResponse(body, status_code=status)


@topics_api.post(
    "/api/topics/{id}/moderate",
    body=TOPIC_MODERATION_IN,
    answers={200: TOPIC, 422: "Nothing to change, or not a category"},
    auth=True,
)
async def moderate_topic_endpoint(request: Request) -> Response:
    """Close or open, pin or unpin, or move a topic to another category (moderators); each change is audited."""
    topic_id = path_int(request, "id")
    async with writing(request, TOPIC_MODERATION_IN, allowed=access.require_staff) as w:
        row = await topics.moderate_topic(w.conn, w.who, topic_id, w.data)
    return JSONResponse(topic_json(row, w.who))


# --- posts ----------------------------------------------------------------------------------------

POST_PATCH = Schema(
    "PostPatch",
    {
        "body": BODY_FIELD,
        "edit_reason": Field("string", max_length=revisions.EDIT_REASON_MAX, nullable=True),
        "content_note": CONTENT_NOTE_FIELD,
    },
)


def author_json(row: asyncpg.Record) -> dict[str, Any]:
    """Who wrote a post, as everyone sees it: "Anonymous member" for a pseudonymous post.

    Staff too see the pseudonym; they reveal the author with an explicit, audited action.
    """
    if row["anonymous"]:
        return dict(topics.ANONYMOUS_AUTHOR)
    return {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}


async def author_badges(conn: asyncpg.Connection, rows: Iterable[asyncpg.Record]) -> dict[int, tuple[str, ...]]:
    """The badges the authors of these posts chose to show (anonymous posts' authors left out), in one
    statement for the lot."""
    return await directory.shown_badges(conn, [r["author_id"] for r in rows if not r["anonymous"]])


def post_json(
    row: asyncpg.Record,
    who: Session | None,
    given: Iterable[str] = (),
    badges: Mapping[int, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The public shape of a post, as the viewer may see it; `badges` from author_badges (the names
    its author chose to show; never on an anonymous post)."""
    hidden = access.text_withheld(who, row["status"], row["author_id"])
    out: dict[str, Any] = {
        "id": row["id"],
        "topic_id": row["topic_id"],
        "post_number": row["post_number"],
        "author": author_json(row),
        "anonymous": row["anonymous"],
        "badges": [] if row["anonymous"] else list((badges or {}).get(row["author_id"], ())),
        "raw": "" if hidden else row["raw"],
        "cooked": "" if hidden else row["cooked"],
        "reply_to": row["reply_to_post_id"],
        "content_note": None if hidden else row["content_note"],
        "status": row["status"],
        "reactions": dict(row["reactions"]) if row["status"] != "deleted" else {},
        "revision": row["revision"],
        "can_edit": access.may_edit(who, row["status"], row["author_id"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
    note = posts.moderation_note(row, who)
    if note is not None:
        out["moderation_reason"] = note
    if who is not None:
        out["my_reactions"] = sorted(given)
    return out


@posts_api.get("/api/posts/{id}", answers={200: POST})
async def get_post_endpoint(request: Request) -> Response:
    """One post."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        post, _ = await posts.readable_post(conn, who, post_id)
        given = await posts.my_reactions(conn, who, [post_id])
        badges = await author_badges(conn, [post])
    return JSONResponse(post_json(post, who, given.get(post_id, ()), badges))


@posts_api.patch(
    "/api/posts/{id}", body=POST_PATCH, answers={200: ("Post (the previous version is kept)", POST)}, auth=True
)
async def edit_post_endpoint(request: Request) -> Response:
    """Edit a post (its author or staff); the previous version is kept as a revision."""
    post_id = path_int(request, "id")
    async with writing(request, POST_PATCH) as w:
        post = await revisions.edit_post(w.conn, w.who, post_id, w.data, screening.PostingRules.of(runtime(request)))
        given = await posts.my_reactions(w.conn, w.who, [post_id])
        badges = await author_badges(w.conn, [post])
    return JSONResponse(post_json(post, w.who, given.get(post_id, ()), badges))


@posts_api.get(
    "/api/posts/{id}/revisions",
    answers={200: ("Every version of the post, the current one last", page_of(REVISION))},
)
async def revisions_endpoint(request: Request) -> Response:
    """A post's versions, oldest first: {revision, raw, content_note, editor, reason, created_at,
    redacted, can_redact}; a redacted version's text is empty for everyone but admins."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        _, _, items = await revisions.post_revisions(conn, who, post_id)
    return JSONResponse({"items": items, "next": None})


@posts_api.post(
    "/api/posts/{id}/revisions/{revision}/redact",
    answers={
        200: ("The version, now redacted (the same when it already was)", REVISION),
        403: "Someone else\u2019s post",
        404: "No such post or version, or one the viewer may not read",
        409: "The current version (edit the post instead)",
    },
    auth=True,
)
async def redact_revision_endpoint(request: Request) -> Response:
    """Redact an earlier version of a post (its author or staff): its text is shown to admins alone
    from then on, and the redaction is audited. Idempotent: redacting a redacted version answers 200."""
    post_id = path_int(request, "id")
    revision = path_int(request, "revision")
    async with writing(request) as w:
        item, _ = await revisions.redact_revision(w.conn, w.who, post_id, revision)
    return JSONResponse(item)


@posts_api.delete("/api/posts/{id}", answers={204: "Deleted"}, auth=True)
async def delete_post_endpoint(request: Request) -> Response:
    """Delete a post (its author or staff). The first post of a topic answers 409: delete the topic instead."""
    post_id = path_int(request, "id")
    async with writing(request) as w:
        await moves.delete_post(w.conn, w.who, post_id)
    return Response(status_code=204)
