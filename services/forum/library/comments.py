"""Comments on library documents: writing them (the posts' markdown, @mentions notify),
editing (the previous text kept), deleting and listing. Who may read a comment is who may
read its document; who may change one is access.may_edit.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum import access
from services.forum.library.documents import COMMENT_SELECT, document_audience, readable_comment, readable_document
from services.forum.library.folders import invalid
from services.forum.moderation import screening
from services.forum.outbox import write_event
from services.forum.topics import posts
from shared import markdown
from shared.events import DocumentCommentCreated, DocumentCommentDeleted, DocumentCommentEdited
from shared.sessions import Session
from shared.web import ApiError

COMMENTS_PER_PAGE = 50
COMMENT_MAX = posts.BODY_MAX

DOCUMENT_COMMENTS_SQL = f"""{COMMENT_SELECT}
WHERE c.document_id = $1 AND c.status <> 'deleted' ORDER BY c.id LIMIT $2 OFFSET $3
"""
INSERT_COMMENT_SQL = """
INSERT INTO forum.document_comments (document_id, author_id, raw, cooked, plain) VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""
COUNT_COMMENT_SQL = "UPDATE forum.documents SET comments_count = comments_count + 1 WHERE id = $1"
UNCOUNT_COMMENT_SQL = "UPDATE forum.documents SET comments_count = greatest(0, comments_count - 1) WHERE id = $1"
KEEP_REVISION_SQL = """
INSERT INTO forum.document_comment_revisions (comment_id, revision, raw, editor_id) VALUES ($1, $2, $3, $4)
"""
EDIT_COMMENT_SQL = """
UPDATE forum.document_comments SET raw = $2, cooked = $3, plain = $4, revision = revision + 1, updated_at = now()
WHERE id = $1 RETURNING revision
"""
# The status before the delete: only a visible comment was counted on its document.
DELETE_COMMENT_SQL = """
UPDATE forum.document_comments c SET status = 'deleted', deleted_at = now()
FROM (SELECT status FROM forum.document_comments WHERE id = $1 FOR UPDATE) old
WHERE c.id = $1 RETURNING old.status
"""
MENTIONED_SQL = "SELECT id FROM forum.users WHERE lower(username) = ANY($1::text[]) AND id <> $2"

# Every comment that is not deleted, for the search index rebuild (export.py).
EXPORT_COMMENTS_SQL = """
SELECT c.id, c.document_id, c.status, c.created_at, CASE WHEN c.status = 'visible' THEN c.plain ELSE '' END AS text,
       d.title AS document_title, d.folder_id, f.group_ids, coalesce(p.group_ids, '{}') AS parent_group_ids,
       u.id AS author_id, u.username AS author_username, u.display_name AS author_display_name
FROM forum.document_comments c
JOIN forum.documents d ON d.id = c.document_id
JOIN forum.folders f ON f.id = d.folder_id
LEFT JOIN forum.folders p ON p.id = f.parent_id
JOIN forum.users u ON u.id = c.author_id
WHERE c.id > $1 AND c.status <> 'deleted' AND d.deleted_at IS NULL
ORDER BY c.id LIMIT $2
"""


async def document_comments(
    conn: asyncpg.Connection, document_id: int, *, page: int = 1
) -> tuple[list[asyncpg.Record], bool]:
    """A page of a document's comments, oldest first; and whether there is another page."""
    rows = await conn.fetch(DOCUMENT_COMMENTS_SQL, document_id, COMMENTS_PER_PAGE + 1, (page - 1) * COMMENTS_PER_PAGE)
    return list(rows[:COMMENTS_PER_PAGE]), len(rows) > COMMENTS_PER_PAGE


def require_editable(who: Session, row: asyncpg.Record, doing: str) -> None:
    """403 unless the viewer may change the comment (access.may_edit): "You can only {doing} your own comments"."""
    if not access.may_edit(who, row["status"], row["author_id"]):
        raise ApiError(403, "forbidden", f"You can only {doing} your own comments.")


async def _mentioned(conn: asyncpg.Connection, rendered: markdown.Rendered, besides: int) -> list[int]:
    if not rendered.mentions:
        return []
    return [row["id"] for row in await conn.fetch(MENTIONED_SQL, list(rendered.mentions), besides)]


def _placed(comment_id: int, document: asyncpg.Record, author_id: int) -> dict[str, Any]:
    """What every comment event says first: which comment, on which document and folder, by whom."""
    return {
        "comment_id": comment_id,
        "document_id": document["id"],
        "folder_id": document["folder_id"],
        "author_id": author_id,
    }


def _clean_body(body: str) -> str:
    body = body.replace("\x00", "").replace("\r\n", "\n").strip()
    if not body:
        raise invalid({"body": "Write a comment first"})
    if len(body) > COMMENT_MAX:
        raise invalid({"body": f"Comments must be {COMMENT_MAX:,} characters or fewer"})
    return body


async def create_comment(
    conn: asyncpg.Connection,
    who: Session,
    document_id: int,
    body: str,
    rules: screening.PostingRules | None = None,
) -> asyncpg.Record:
    """Comment on a document (the same markdown as posts, rendered within the budget `rules` give);
    records document.comment_created."""
    document = await readable_document(conn, who, document_id)
    author = await posts.check_can_post(conn, who)
    raw = _clean_body(body)
    rendered = await posts.render_body(conn, raw, rules)
    comment_id = await conn.fetchval(INSERT_COMMENT_SQL, document_id, who.user_id, raw, rendered.cooked, rendered.text)
    await conn.execute(COUNT_COMMENT_SQL, document_id)
    row, _ = await readable_comment(conn, who, comment_id)
    await write_event(
        conn,
        DocumentCommentCreated(
            **_placed(comment_id, document, who.user_id),
            document_title=document["title"],
            document_uploader_id=document["uploader_id"],
            author_username=author["username"],
            text=rendered.text,
            audience=document_audience(document),
            mentioned_user_ids=await _mentioned(conn, rendered, who.user_id),
            created_at=row["created_at"].isoformat(),
        ),
        actor_id=who.user_id,
    )
    return row


async def edit_comment(
    conn: asyncpg.Connection,
    who: Session,
    comment_id: int,
    body: str,
    rules: screening.PostingRules | None = None,
) -> asyncpg.Record:
    """Edit a comment (its author or staff); the previous text is kept; records document.comment_edited.

    With `rules` (every request should pass them) the edit counts against the same allowance as post
    edits (429 over it) and renders within the configured budget.
    """
    row, document = await readable_comment(conn, who, comment_id)
    require_editable(who, row, "edit")
    raw = _clean_body(body)
    if raw == row["raw"]:
        return row
    await posts.enforce_edit_limit(conn, who, rules)
    rendered = await posts.render_body(conn, raw, rules)
    await conn.execute(KEEP_REVISION_SQL, comment_id, row["revision"], row["raw"], who.user_id)
    revision = await conn.fetchval(EDIT_COMMENT_SQL, comment_id, raw, rendered.cooked, rendered.text)
    await write_event(
        conn,
        DocumentCommentEdited(
            **_placed(comment_id, document, row["author_id"]),
            document_title=document["title"],
            author_username=row["author_username"],
            text=rendered.text,
            audience=document_audience(document),
            revision=revision,
            status=row["status"],  # an edit does not show a hidden comment again
        ),
        actor_id=who.user_id,
    )
    updated, _ = await readable_comment(conn, who, comment_id)
    return updated


async def delete_comment(conn: asyncpg.Connection, who: Session, comment_id: int) -> None:
    """Delete a comment (its author or staff); records document.comment_deleted."""
    row, document = await readable_comment(conn, who, comment_id)
    require_editable(who, row, "delete")
    if await conn.fetchval(DELETE_COMMENT_SQL, comment_id) == "visible":
        await conn.execute(UNCOUNT_COMMENT_SQL, document["id"])
    await write_event(
        conn, DocumentCommentDeleted(**_placed(comment_id, document, row["author_id"])), actor_id=who.user_id
    )
