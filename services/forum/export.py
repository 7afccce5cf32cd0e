"""The export API: everything other services need to rebuild what they derive from the
forum (today: the search index, `tica search reindex`), page by page.

Internal: only tica's own services may call it (shared/service_auth.py); it is listed in
the OpenAPI document under the tag "internal". Pages are cursors over ids
(`?after=<last id>&limit=`), so a reader that runs while people post never skips or
repeats a row. Each row carries its audience, decided by the one visibility rule
(access.py), so every consumer applies the same rule the forum does. Posts waiting
for review or turned down are not exported (they were never published), nor are topics
whose first post is; deleted posts come without text. A pseudonymous topic or post comes
with the forum's "Anonymous member" as its author, never the member who wrote it. Comments
on library documents: library/comments.py (EXPORT_COMMENTS_SQL).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.library import api as library_api
from services.forum.library import comments as library_comments
from services.forum.messages import conversations
from services.forum.topics.topics import ANONYMOUS_AUTHOR
from shared.api import ApiRouter, Field, Shape, page_of, query_int
from shared.service_auth import require_service
from shared.web import runtime

api = ApiRouter(tag="internal")

PAGE_DEFAULT = 500
PAGE_MAX = 2000
ID_MAX = 2**63 - 1
PAGING = {
    "after": Field(
        "integer", minimum=0, maximum=ID_MAX, description="rows with an id above this one (the previous page's `next`)"
    ),
    "limit": Field("integer", minimum=1, maximum=PAGE_MAX, description=f"rows per page, at most {PAGE_MAX}"),
}

# The answers: what search's reindex reads (services/search/reindex.py).
AUTHOR = Shape("ExportAuthor", {"id": "integer?", "username": "string", "display_name": "string"})
EXPORT_CATEGORY = Shape("ExportCategory", {"id": "integer", "slug": "string", "name": "string", "audience": ["string"]})
EXPORT_TOPIC = Shape(
    "ExportTopic",
    {
        "id": "integer",
        "category_id": "integer",
        "title": "string",
        "slug": "string",
        "kind": "string",
        "author": AUTHOR,
        "anonymous": "boolean",
        "status": "string",
        "audience": ["string"],
        "content_note": "string?",
        "created_at": "datetime",
    },
)
EXPORT_POST = Shape(
    "ExportPost",
    {
        "id": "integer",
        "topic_id": "integer",
        "post_number": "integer",
        "category_id": "integer",
        "topic_title": "string",
        "topic_slug": "string",
        "author": AUTHOR,
        "anonymous": "boolean",
        "text": "string",
        "content_note": "string?",
        "status": "string",
        "audience": ["string"],
        "created_at": "datetime",
    },
)
EXPORT_COMMENT = Shape(
    "ExportDocumentComment",
    {
        "id": "integer",
        "document_id": "integer",
        "document_title": "string",
        "folder_id": "integer",
        "url": "string",
        "author": AUTHOR,
        "text": "string",
        "status": "string",
        "audience": ["string"],
        "created_at": "datetime",
    },
)

EXPORT_MESSAGE = Shape(
    "ExportMessage",
    {
        "id": "integer",
        "conversation_id": "integer",
        "title": "string",
        "author": {"id": "integer?", "username": "string?", "display_name": "string"},
        "author_id": "integer",
        "from_moderators": "boolean",
        "text": "string",
        "status": "string",
        "sensitive": "boolean",
        "with_moderators": "boolean",
        "audience": ["string"],
        "created_at": "datetime",
        "url": "string",
    },
)

CATEGORIES_SQL = """
SELECT c.id, c.slug, c.name, c.group_ids FROM forum.categories c
WHERE c.id > $1 ORDER BY c.id LIMIT $2
"""

TOPICS_SQL = """
SELECT t.id, t.category_id, t.title, t.slug, t.kind, t.content_note, t.created_at, t.status, t.anonymous, c.group_ids,
       u.id AS author_id, u.username AS author_username, u.display_name AS author_display_name
FROM forum.topics t
JOIN forum.categories c ON c.id = t.category_id
JOIN forum.users u ON u.id = t.author_id
WHERE t.id > $1 AND t.deleted_at IS NULL AND t.status NOT IN ('pending', 'rejected')
ORDER BY t.id LIMIT $2
"""

POSTS_SQL = """
SELECT p.id, p.topic_id, p.post_number, p.status, p.content_note, p.created_at, p.anonymous,
       CASE WHEN p.status = 'deleted' THEN '' ELSE p.plain END AS text,
       t.category_id, t.title AS topic_title, t.slug AS topic_slug, c.group_ids,
       u.id AS author_id, u.username AS author_username, u.display_name AS author_display_name
FROM forum.posts p
JOIN forum.topics t ON t.id = p.topic_id
JOIN forum.categories c ON c.id = t.category_id
JOIN forum.users u ON u.id = p.author_id
WHERE p.id > $1 AND p.status NOT IN ('pending', 'rejected') AND t.deleted_at IS NULL
  AND t.status NOT IN ('pending', 'rejected')
ORDER BY p.id LIMIT $2
"""


def _paging(request: Request) -> tuple[int, int]:
    return query_int(request, "after", 0, minimum=0, maximum=ID_MAX), query_int(
        request, "limit", PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX
    )


def _author(row: asyncpg.Record) -> dict[str, Any]:
    if row["anonymous"]:
        return dict(ANONYMOUS_AUTHOR)
    return {"id": row["author_id"], "username": row["author_username"], "display_name": row["author_display_name"]}


def category_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "audience": access.groups_audience(row["group_ids"]),
    }


def topic_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "category_id": row["category_id"],
        "title": row["title"],
        "slug": row["slug"],
        "kind": row["kind"],
        "author": _author(row),
        "anonymous": row["anonymous"],
        "status": row["status"],
        "audience": access.groups_audience(row["group_ids"]),
        "content_note": row["content_note"],
        "created_at": row["created_at"].isoformat(),
    }


def post_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "topic_id": row["topic_id"],
        "post_number": row["post_number"],
        "category_id": row["category_id"],
        "topic_title": row["topic_title"],
        "topic_slug": row["topic_slug"],
        "author": _author(row),
        "anonymous": row["anonymous"],
        "text": row["text"],
        "content_note": row["content_note"],
        "status": row["status"],
        "audience": access.groups_audience(row["group_ids"]),
        "created_at": row["created_at"].isoformat(),
    }


async def _page(request: Request, sql: str, shape: Any) -> Response:
    require_service(request, runtime(request).settings)
    after, limit = _paging(request)
    rows = await runtime(request).pool.fetch(sql, after, limit)
    next_after = rows[-1]["id"] if len(rows) == limit else None
    return JSONResponse({"items": [shape(row) for row in rows], "next": next_after})


@api.get("/api/export/categories", answers={200: ("A page of categories", page_of(EXPORT_CATEGORY))}, query=PAGING)
async def export_categories(request: Request) -> Response:
    """Internal (services only): every category with its audience, by id."""
    return await _page(request, CATEGORIES_SQL, category_out)


@api.get("/api/export/topics", answers={200: ("A page of topics", page_of(EXPORT_TOPIC))}, query=PAGING)
async def export_topics(request: Request) -> Response:
    """Internal (services only): every topic that is not deleted, with its author and audience, by id."""
    return await _page(request, TOPICS_SQL, topic_out)


@api.get("/api/export/posts", answers={200: ("A page of posts", page_of(EXPORT_POST))}, query=PAGING)
async def export_posts(request: Request) -> Response:
    """Internal (services only): every published post with its plain text, status and audience, by id."""
    return await _page(request, POSTS_SQL, post_out)


@api.get(
    "/api/export/document-comments",
    answers={200: ("A page of comments on library documents", page_of(EXPORT_COMMENT))},
    query=PAGING,
)
async def export_document_comments(request: Request) -> Response:
    """Internal (services only): every comment on a library document that is not deleted, with its
    document's title and folder, its author, text and audience, by id."""
    return await _page(request, library_comments.EXPORT_COMMENTS_SQL, library_api.export_comment_out)


@api.get("/api/export/messages", answers={200: ("A page of private messages", page_of(EXPORT_MESSAGE))}, query=PAGING)
async def export_messages(request: Request) -> Response:
    """Internal (services only): every private message, by id, with its conversation's audience (a hidden one
    without its text); `author_id` is who wrote it, also for an answer from the moderators."""
    return await _page(request, conversations.EXPORT_MESSAGES_SQL, conversations.export_message_out)
