"""Moderation of document comments: the same flags and review queue as posts.

A flag on a comment opens or raises the comment's one reviewable (kind flagged_comment);
a safeguarding flag puts it first in the queue and never hides the comment. When the
other flags reach settings.flag_hide_score the comment is hidden until a moderator looks,
and its author sees why on the document page. Moderators hide, restore, delete or ignore it
through POST /api/review/{id}: the comment is locked, then the reviewable, and the item must
still be pending, so of two moderators acting at once one gets a 409. Every action is in the
audit log, and search learns of it through document.comment_edited (with the status) or
document.comment_deleted.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum.library import documents
from services.forum.moderation import audit, moderation, safety
from services.forum.topics import posts
from shared.events import DocumentCommentDeleted, DocumentCommentEdited, write_event
from shared.sessions import Session
from shared.web import ApiError

KIND = "flagged_comment"
AUTO_HIDE_REASON = "Members flagged this comment, so it is hidden until a moderator has looked at it."

OPEN_REVIEW_SQL = """
INSERT INTO forum.reviewables AS r (kind, comment_id, author_id, priority, reasons, score)
VALUES ('flagged_comment', $1, $2, $3, $4, $5)
ON CONFLICT (kind, comment_id) DO UPDATE SET
    -- still open: add the new reasons; resolved: a new round, with only the new ones
    reasons = CASE WHEN r.status = 'pending'
        THEN r.reasons || ARRAY(SELECT x FROM unnest(EXCLUDED.reasons) AS x WHERE x <> ALL(r.reasons))
        ELSE EXCLUDED.reasons END,
    priority = CASE WHEN r.status = 'pending' THEN greatest(r.priority, EXCLUDED.priority) ELSE EXCLUDED.priority END,
    score = CASE WHEN r.status = 'pending' THEN r.score + EXCLUDED.score ELSE EXCLUDED.score END,
    status = 'pending',
    resolved_by = NULL, resolved_at = NULL, resolution = NULL, resolution_reason = NULL,
    updated_at = now()
RETURNING id, kind, status, score, priority
"""
LOCK_COMMENT_SQL = """
SELECT c.id, c.document_id, c.author_id, c.plain, c.status, c.revision, u.username AS author_username
FROM forum.document_comments c JOIN forum.users u ON u.id = c.author_id
WHERE c.id = $1 FOR UPDATE OF c
"""
# Safeguarding flags raise the item but never count towards hiding: people in distress are not silenced.
HIDING_SCORE_SQL = """
SELECT coalesce(sum(weight), 0) FROM forum.document_comment_flags
WHERE reviewable_id = $1 AND status = 'pending' AND reason <> 'safeguarding'
"""


async def open_review(
    conn: asyncpg.Connection, comment: asyncpg.Record, *, reasons: list[str], priority: int, score: int = 0
) -> asyncpg.Record:
    """Open (or add to, or reopen) the comment's reviewable."""
    row: asyncpg.Record = await conn.fetchrow(
        OPEN_REVIEW_SQL, comment["id"], comment["author_id"], priority, reasons, score
    )
    return row


async def flag(
    conn: asyncpg.Connection,
    who: Session,
    comment_id: int,
    reason: str,
    note: str,
    *,
    hide_score: int | None,
) -> asyncpg.Record:
    """Record a flag on a readable comment (checked by the caller); returns the reviewable it raised.

    409 when the comment is not shown or the viewer already flagged it; 403 on one's own comment.
    """
    comment = await conn.fetchrow(LOCK_COMMENT_SQL, comment_id)
    if comment["status"] != "visible":
        raise ApiError(409, "not_flaggable", "This comment is not shown at the moment, so it cannot be flagged.")
    if comment["author_id"] == who.user_id:
        raise ApiError(403, "own_comment", "You cannot flag your own comment. You can edit or delete it instead.")
    weight = moderation.flag_weight(who)
    safeguarding = reason == "safeguarding"
    review = await open_review(
        conn,
        comment,
        reasons=[f"Flag: {moderation.FLAG_REASON_LABELS[reason]}"],
        priority=safety.PRIORITY_SAFEGUARDING if safeguarding else safety.PRIORITY_NORMAL,
        score=weight,
    )
    flagged = await conn.fetchval(
        "INSERT INTO forum.document_comment_flags (comment_id, user_id, reason, note, weight, reviewable_id) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
        comment_id,
        who.user_id,
        reason,
        note,
        weight,
        review["id"],
    )
    if flagged is None:  # the caller's transaction rolls the raised item back
        raise ApiError(409, "already_flagged", "You have already flagged this comment. The moderators will look at it.")
    if hide_score is not None and await conn.fetchval(HIDING_SCORE_SQL, review["id"]) >= hide_score:
        await set_status(conn, comment, "hidden", AUTO_HIDE_REASON, actor_id=None)
        review = await open_review(
            conn,
            comment,
            reasons=[f"Hidden automatically: the flag score reached {hide_score}"],
            priority=safety.PRIORITY_HIDDEN,
        )
    return review


async def set_status(
    conn: asyncpg.Connection, comment: asyncpg.Record, status: str, reason: str | None, *, actor_id: int | None
) -> None:
    """Hide, show or delete a locked comment; keeps the document's count of visible comments and tells search."""
    await conn.execute(
        "UPDATE forum.document_comments SET status = $2, moderation_reason = $3, "
        "deleted_at = CASE WHEN $2 = 'deleted' THEN now() END WHERE id = $1",
        comment["id"],
        status,
        reason if status == "hidden" else None,
    )
    change = (status == "visible") - (comment["status"] == "visible")
    if change:
        await conn.execute(
            "UPDATE forum.documents SET comments_count = greatest(0, comments_count + $2) WHERE id = $1",
            comment["document_id"],
            change,
        )
    document = await documents.fetch_document(conn, comment["document_id"])
    if status == "deleted" or document is None:
        folder_id = document["folder_id"] if document is not None else 0
        if status == "deleted":
            event: DocumentCommentDeleted | DocumentCommentEdited = DocumentCommentDeleted(
                comment_id=comment["id"],
                document_id=comment["document_id"],
                folder_id=folder_id,
                author_id=comment["author_id"],
            )
            await write_event(conn, event, actor_id=actor_id)
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


# --- acting on the queue ---------------------------------------------------------------------------------------


def allowed_actions(comment_status: str) -> tuple[str, ...]:
    """What a moderator can do with a comment's item, given the comment's state now."""
    if comment_status == "visible":
        return ("hide", "delete", "ignore")
    if comment_status == "hidden":
        return ("restore", "hide", "delete")
    return ("ignore",)  # its author deleted it: nothing is left to decide


def check_action(comment_status: str, action: str, reason: str | None) -> None:
    """422 for an action that does not fit the item, or that needs a reason it was not given."""
    allowed = allowed_actions(comment_status)
    if action not in allowed:
        if action == "ignore" and comment_status == "hidden":
            message = "This comment is hidden: restore it, or keep it hidden (with a reason its author will see)."
        else:
            message = f"\u201c{action}\u201d is not possible for this comment now."
        raise ApiError(422, "invalid_action", message, {"action": f"must be one of: {', '.join(allowed)}"})
    if action in moderation.NEEDS_REASON and not reason:
        raise moderation.invalid(
            "reason", "is needed for this action: the author will see it, so please write it kindly"
        )


NEW_STATUS = {"hide": "hidden", "restore": "visible", "delete": "deleted"}


async def act(conn: asyncpg.Connection, who: Session, review_id: int, action: str, reason: str | None) -> None:
    """Check and apply a moderator's action on a comment's item; 409 when someone else acted first."""
    audit.require_staff(who)
    comment_id = await conn.fetchval("SELECT comment_id FROM forum.reviewables WHERE id = $1", review_id)
    # Comment first, then the reviewable: the order flagging uses, so the two never wait on each other.
    comment = await conn.fetchrow(LOCK_COMMENT_SQL, comment_id)
    review = await conn.fetchrow(moderation.LOCK_REVIEW_SQL, review_id)
    if review["status"] != "pending":
        raise moderation._already_done(review, review["resolver"])
    reason = posts.clean_note(reason) if reason else None
    check_action(comment["status"], action, reason)
    if action in NEW_STATUS:
        await set_status(conn, comment, NEW_STATUS[action], reason, actor_id=who.user_id)
    outcome = moderation.OUTCOME[action]
    await conn.execute(moderation.RESOLVE_SQL, review_id, outcome, action, reason, who.user_id)
    await conn.execute(
        "UPDATE forum.document_comment_flags SET status = $2, resolved_at = now() "
        "WHERE reviewable_id = $1 AND status = 'pending'",
        review_id,
        moderation.FLAG_OUTCOME[outcome],
    )
    await audit.record(
        conn,
        actor_id=who.user_id,
        action=f"review.{action}",
        target_type="reviewable",
        target_id=review_id,
        reason=reason,
        before={"review_status": "pending", "comment_status": comment["status"]},
        after={
            "review_status": outcome,
            "comment_status": NEW_STATUS.get(action, comment["status"]),
            "comment_id": comment["id"],
            "kind": KIND,
        },
    )


# --- the queue ---------------------------------------------------------------------------------------------------

REVIEW_COMMENT_SQL = """
SELECT c.id, c.document_id, c.raw, c.cooked, c.status, c.moderation_reason, c.created_at, d.title AS document_title
FROM forum.document_comments c JOIN forum.documents d ON d.id = c.document_id
WHERE c.id = ANY($1::bigint[])
"""
FLAGS_SQL = """
SELECT f.id, f.reviewable_id, f.reason, f.note, f.status, f.weight, f.created_at, f.user_id, u.username, u.display_name
FROM forum.document_comment_flags f JOIN forum.users u ON u.id = f.user_id
WHERE f.reviewable_id = ANY($1::bigint[])
ORDER BY f.id
"""


async def reviews_json(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> dict[int, dict[str, Any]]:
    """Comment items (rows of moderation's queue query) as JSON, by reviewable id."""
    comments = {c["id"]: c for c in await conn.fetch(REVIEW_COMMENT_SQL, [r["comment_id"] for r in rows])}
    flags: dict[int, list[dict[str, Any]]] = {}
    for f in await conn.fetch(FLAGS_SQL, [r["id"] for r in rows]):
        flags.setdefault(f["reviewable_id"], []).append(
            {
                "id": f["id"],
                "reason": f["reason"],
                "reason_label": moderation.FLAG_REASON_LABELS[f["reason"]],
                "note": f["note"] or None,
                "status": f["status"],
                "weight": f["weight"],
                "by": {"id": f["user_id"], "username": f["username"], "display_name": f["display_name"]},
                "created_at": f["created_at"].isoformat(),
            }
        )
    return {r["id"]: review_json(r, comments[r["comment_id"]], flags.get(r["id"], [])) for r in rows}


def review_json(row: asyncpg.Record, comment: asyncpg.Record, flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A comment's item, in the shape of a post's (its "post" is the comment) plus comment and document."""
    url = documents.document_url(comment["document_id"])
    resolution = None
    if row["resolution"] is not None:
        resolution = {
            "action": row["resolution"],
            "reason": row["resolution_reason"],
            "by": {
                "id": row["resolved_by"],
                "username": row["resolver_username"],
                "display_name": row["resolver_display_name"],
            },
            "at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
        }
    target = {
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
        "id": row["id"],
        "kind": row["kind"],
        "kind_label": moderation.KIND_LABELS[row["kind"]],
        "status": row["status"],
        "score": row["score"],
        "priority": row["priority"],
        "reasons": list(row["reasons"]),
        "appeal_text": row["appeal_text"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "post": target,
        "comment": target,
        "document": {"id": comment["document_id"], "title": comment["document_title"], "url": url},
        "topic": {"id": None, "title": comment["document_title"], "url": url},
        "author": {
            "id": row["author_id"],
            "username": row["username"],
            "display_name": row["display_name"],
            "suspended": row["author_suspended"],
            "silenced": row["author_silenced"],
            "joined_at": row["author_joined"].isoformat(),
        },
        "flags": flags,
        "context": [],
        "resolution": resolution,
        "actions": list(allowed_actions(comment["status"])) if row["status"] == "pending" else [],
    }
