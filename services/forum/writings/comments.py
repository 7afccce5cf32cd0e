"""What moderation does to a document comment: lock it, hide, show or delete it (keeping its
document's count and telling search), and its part of a review item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.forum.library import documents
from services.forum.outbox import write_event
from shared.events import DocumentCommentDeleted, DocumentCommentEdited

AUTO_HIDE_REASON = "Members flagged this comment, so it is hidden until a moderator has looked at it."
NEW_STATUS = {"hide": "hidden", "restore": "visible", "delete": "deleted"}

LOCK_COMMENT_SQL = """
SELECT c.id, c.document_id, c.author_id, c.plain, c.status, c.revision, u.username AS author_username
FROM forum.document_comments c JOIN forum.users u ON u.id = c.author_id
WHERE c.id = $1 FOR UPDATE OF c
"""
SET_STATUS_SQL = """
UPDATE forum.document_comments SET status = $2, moderation_reason = $3,
    deleted_at = CASE WHEN $2 = 'deleted' THEN now() END
WHERE id = $1
"""
COUNT_SQL = "UPDATE forum.documents SET comments_count = greatest(0, comments_count + $2) WHERE id = $1"
REVIEW_COMMENTS_SQL = """
SELECT c.id, c.document_id, c.raw, c.cooked, c.status, c.moderation_reason, c.created_at, d.title AS document_title
FROM forum.document_comments c JOIN forum.documents d ON d.id = c.document_id
WHERE c.id = ANY($1::bigint[])
"""


async def lock(conn: asyncpg.Connection, comment_id: int) -> asyncpg.Record:
    """The comment, locked for the rest of the transaction (before its review item)."""
    row: asyncpg.Record = await conn.fetchrow(LOCK_COMMENT_SQL, comment_id)
    return row


async def set_status(
    conn: asyncpg.Connection, comment: asyncpg.Record, status: str, reason: str | None, *, actor_id: int | None
) -> None:
    """Hide, show or delete a locked comment; keeps the document's count of visible comments and tells search."""
    await conn.execute(SET_STATUS_SQL, comment["id"], status, reason if status == "hidden" else None)
    change = (status == "visible") - (comment["status"] == "visible")
    if change:
        await conn.execute(COUNT_SQL, comment["document_id"], change)
    document = await documents.fetch_document(conn, comment["document_id"])
    if status == "deleted":
        folder_id = document["folder_id"] if document is not None else 0
        deleted = DocumentCommentDeleted(
            comment_id=comment["id"],
            document_id=comment["document_id"],
            folder_id=folder_id,
            author_id=comment["author_id"],
        )
        await write_event(conn, deleted, actor_id=actor_id)
        return
    if document is None:
        return  # a deleted document's comments have already left search
    event = DocumentCommentEdited(
        comment_id=comment["id"],
        document_id=document["id"],
        document_title=document["title"],
        folder_id=document["folder_id"],
        author_id=comment["author_id"],
        author_username=comment["author_username"],
        text=comment["plain"],
        audience=documents.document_audience(document),
        revision=comment["revision"],
        status=status,
    )
    await write_event(conn, event, actor_id=actor_id)


async def review_parts(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> dict[int, dict[str, Any]]:
    """Each comment item's own part (its "post" is the comment, its "topic" the document), by item id."""
    comments = {c["id"]: c for c in await conn.fetch(REVIEW_COMMENTS_SQL, [r["comment_id"] for r in rows])}
    return {row["id"]: _part(comments[row["comment_id"]]) for row in rows}


def _part(comment: asyncpg.Record) -> dict[str, Any]:
    url = documents.document_url(comment["document_id"])
    writing = {
        "id": comment["id"],
        "post_number": None,
        "status": comment["status"],
        "raw": comment["raw"],
        "cooked": comment["cooked"],
        "content_note": None,
        "moderation_reason": comment["moderation_reason"],
        "anonymous": False,
        "created_at": comment["created_at"].isoformat(),
        "url": f"{url}#comment-{comment['id']}",
    }
    return {
        "writing": writing,
        "topic": {"id": None, "title": comment["document_title"], "url": url},
        "document": {"id": comment["document_id"], "title": comment["document_title"], "url": url},
        "status": comment["status"],
    }
