"""Review items about any writing: opening (or adding to, or reopening) one, closing one with its
flags and audit entry, what a moderator may do with it, and the shape moderators see.

This module knows writings only through their Target, so posts and screening (below it) and
the queue (above it) share one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.forum.moderation import audit, safeguarding
from services.forum.writings.targets import (
    FLAG_REASON_LABELS,
    KIND_TARGETS,
    MESSAGE,
    POST,
    SAFEGUARDING_KINDS,
    TARGETS,
    Target,
)
from shared.sessions import Session
from shared.web import ApiError, invalid

# Priorities in the review queue: higher first.
PRIORITY_SAFEGUARDING = 3
PRIORITY_HIDDEN = 2  # a writing hidden by flags waits, unseen, for a moderator
PRIORITY_NORMAL = 1

KIND_LABELS = {
    "flagged_post": "Flagged post",
    "queued_post": "Waiting for approval",
    "safeguarding": "Safeguarding",
    "appeal": "Appeal",
    "flagged_comment": "Flagged document comment",
    "flagged_message": "Reported private message",
    "safeguarding_message": "Safeguarding (private message)",
}
REVIEW_KINDS = tuple(KIND_LABELS)
NEEDS_REASON = ("reject", "hide", "delete")  # the author is told why
OUTCOME = {
    "approve": "approved",
    "restore": "approved",
    "reject": "rejected",
    "hide": "rejected",
    "delete": "deleted",
    "ignore": "ignored",
}
FLAG_OUTCOME = {"approved": "disagreed", "rejected": "agreed", "deleted": "agreed", "ignored": "ignored"}

# One item per writing and kind: $1 kind, $2 writing, $3 its topic (none for a comment), $4 author.
OPEN_REVIEW_SQL = {
    t.name: f"""
INSERT INTO forum.reviewables AS r (kind, {t.id_column}, topic_id, author_id, priority, reasons, score)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (kind, {t.id_column}) DO UPDATE SET
    -- still open: add the new reasons; resolved: a new round, with only the new ones
    reasons = CASE WHEN r.status = 'pending'
        THEN r.reasons || ARRAY(SELECT x FROM unnest(EXCLUDED.reasons) AS x WHERE x <> ALL(r.reasons))
        ELSE EXCLUDED.reasons END,
    priority = CASE WHEN r.status = 'pending' THEN greatest(r.priority, EXCLUDED.priority) ELSE EXCLUDED.priority END,
    score = CASE WHEN r.status = 'pending' THEN r.score + EXCLUDED.score ELSE EXCLUDED.score END,
    -- reopened: alerted afresh (safeguarding.alert_opened), nobody looking at it yet, nothing done yet
    alert_round = CASE WHEN r.status = 'pending' THEN r.alert_round ELSE 0 END,
    picked_up_by = CASE WHEN r.status = 'pending' THEN r.picked_up_by END,
    picked_up_at = CASE WHEN r.status = 'pending' THEN r.picked_up_at END,
    outcome = NULL, outcome_note = NULL,
    status = 'pending',
    resolved_by = NULL, resolved_at = NULL, resolution = NULL, resolution_reason = NULL,
    updated_at = now()
RETURNING id, kind, status, score, priority
"""
    for t in TARGETS
}
FLAGS_SQL = {
    t.name: f"""
SELECT f.id, f.reviewable_id, f.reason, f.note, f.status, f.weight, f.created_at, f.user_id, u.username, u.display_name
FROM {t.flags_table} f JOIN forum.users u ON u.id = f.user_id
WHERE f.reviewable_id = ANY($1::bigint[])
ORDER BY f.id
"""
    for t in TARGETS
}
# A post's flags table has no resolved_at: its flags keep only their outcome.
CLOSE_FLAGS_SQL = {
    t.name: f"UPDATE {t.flags_table} SET status = $2{'' if t is POST else ', resolved_at = now()'} "
    "WHERE reviewable_id = $1 AND status = 'pending'"
    for t in TARGETS
}
LOCK_REVIEW_SQL = """
SELECT r.id, r.kind, r.post_id, r.status, r.resolution, u.username AS resolver
FROM forum.reviewables r LEFT JOIN forum.users u ON u.id = r.resolved_by
WHERE r.id = $1 FOR UPDATE OF r
"""
# A delete may already have closed the writing's items (status deleted): this one gets its action and reason.
RESOLVE_SQL = """
UPDATE forum.reviewables
SET status = $2, resolution = $3, resolution_reason = $4, resolved_by = $5, resolved_at = now(), updated_at = now()
WHERE id = $1
"""


async def open_review(
    conn: asyncpg.Connection,
    *,
    kind: str,
    writing: asyncpg.Record,
    reasons: Sequence[str],
    priority: int = PRIORITY_NORMAL,
    score: int = 0,
) -> asyncpg.Record:
    """Open (or add to, or reopen) the writing's item of this kind; the one way into the queue. A safeguarding
    item that becomes pending alerts staff (moderation/safeguarding.py)."""
    target = KIND_TARGETS[kind]
    row: asyncpg.Record = await conn.fetchrow(
        OPEN_REVIEW_SQL[target.name],
        kind,
        writing["id"],
        writing["topic_id"] if target is POST else None,
        writing["author_id"],
        priority,
        list(reasons),
        score,
    )
    if kind in SAFEGUARDING_KINDS:  # staff are alerted at once, in this transaction
        await safeguarding.alert_opened(conn, row["id"])
    return row


# --- acting on an item ---------------------------------------------------------------------------------------


def allowed_actions(target: Target, kind: str, status: str) -> tuple[str, ...]:
    """What a moderator can do with an item, given its kind and the writing's state now."""
    if target is MESSAGE:  # a private message is shown or hidden; its author cannot delete it
        return ("hide", "ignore") if status == "visible" else ("restore", "hide")
    if target is not POST:  # a comment is never waiting for approval: it is shown, hidden or gone
        if status == "visible":
            return ("hide", "delete", "ignore")
        if status == "hidden":
            return ("restore", "hide", "delete")
        return ("ignore",)  # its author deleted it: nothing is left to decide
    if status == "deleted":
        return ()
    if status == "visible":
        ignorable = ("ignore",) if kind in ("flagged_post", "safeguarding") else ()
        return ("approve", "hide", "reject", "delete", *ignorable)
    return ("approve", "restore", "reject", "hide", "delete")


def check_action(target: Target, kind: str, status: str, action: str, reason: str | None) -> None:
    """422 for an action that does not fit the item, or that needs a reason it was not given."""
    allowed = allowed_actions(target, kind, status)
    if action not in allowed:
        if action == "ignore" and status == "hidden":
            message = (
                f"This {target.name} is hidden: restore it, or keep it hidden (with a reason its author will see)."
            )
        elif action == "ignore" and target is POST:
            message = "This item needs a decision: approve it or turn it down."
        else:
            message = f"\u201c{action}\u201d is not possible for this {'item' if target is POST else target.name} now."
        raise ApiError(422, "invalid_action", message, {"action": f"must be one of: {', '.join(allowed)}"})
    if action in NEEDS_REASON and not reason:
        raise invalid("reason", "is needed for this action: the author will see it, so please write it kindly")


PAST = {
    "approve": "approved it",
    "restore": "restored the post",
    "reject": "rejected it",
    "hide": "hid the post",
    "delete": "deleted the post",
    "ignore": "ignored it",
}


def already_done(row: asyncpg.Record) -> ApiError:
    """The 409 for the second of two moderators acting on one item (row from LOCK_REVIEW_SQL)."""
    resolver = row["resolver"]
    did = PAST.get(row["resolution"] or "", f"closed it ({row['status']})")
    return ApiError(
        409,
        "already_resolved",
        f"Another moderator{f' ({resolver})' if resolver else ''} has already dealt with this item: they {did}. "
        "Nothing more was changed.",
    )


async def lock_pending(conn: asyncpg.Connection, review_id: int) -> asyncpg.Record:
    """The item, locked (after its writing: the order every writer uses); 409 when it is no longer pending."""
    review: asyncpg.Record = await conn.fetchrow(LOCK_REVIEW_SQL, review_id)
    if review["status"] != "pending":
        raise already_done(review)
    return review


async def close(
    conn: asyncpg.Connection,
    who: Session,
    target: Target,
    review_id: int,
    *,
    kind: str,
    writing_id: int,
    action: str,
    reason: str | None,
    before: dict[str, Any],
    status_now: str,
) -> str:
    """Close a locked, pending item: its outcome, its flags' outcome, the audit entry. Returns the outcome."""
    outcome = OUTCOME[action]
    await conn.execute(RESOLVE_SQL, review_id, outcome, action, reason, who.user_id)
    await conn.execute(CLOSE_FLAGS_SQL[target.name], review_id, FLAG_OUTCOME[outcome])
    after = {"review_status": outcome, f"{target.name}_status": status_now, target.id_column: writing_id, "kind": kind}
    await audit.record_by(conn, who, f"review.{action}", review_id, reason=reason, before=before, after=after)
    return outcome


# --- the shape moderators see --------------------------------------------------------------------------------


async def flags_by_item(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> dict[int, list[dict[str, Any]]]:
    """The flags of these items (any targets), by item."""
    flags: dict[int, list[dict[str, Any]]] = {}
    for target in TARGETS:
        ids = [row["id"] for row in rows if KIND_TARGETS[row["kind"]] is target]
        if not ids:
            continue
        for flag in await conn.fetch(FLAGS_SQL[target.name], ids):
            flags.setdefault(flag["reviewable_id"], []).append(flag_json(flag))
    return flags


def flag_json(flag: asyncpg.Record) -> dict[str, Any]:
    """One flag on an item, as moderators see it."""
    return {
        "id": flag["id"],
        "reason": flag["reason"],
        "reason_label": FLAG_REASON_LABELS[flag["reason"]],
        "note": flag["note"] or None,
        "status": flag["status"],
        "weight": flag["weight"],
        "by": {"id": flag["user_id"], "username": flag["username"], "display_name": flag["display_name"]},
        "created_at": flag["created_at"].isoformat(),
    }


def resolution_json(row: asyncpg.Record) -> dict[str, Any] | None:
    """Who closed an item, how and why; None while it is open."""
    if row["resolution"] is None:
        return None
    return {
        "action": row["resolution"],
        "reason": row["resolution_reason"],
        "by": {
            "id": row["resolved_by"],
            "username": row["resolver_username"],
            "display_name": row["resolver_display_name"],
        },
        "at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
    }


def author_standing(row: asyncpg.Record) -> dict[str, Any]:
    """The item's author as moderators see them (never for a pseudonymous post before a reveal)."""
    return {
        "id": row["author_id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "suspended": row["author_suspended"],
        "silenced": row["author_silenced"],
        "joined_at": row["author_joined"].isoformat(),
    }


def item_json(
    row: asyncpg.Record,
    *,
    writing: dict[str, Any],
    topic: dict[str, Any],
    author: dict[str, Any],
    flags: list[dict[str, Any]],
    context: list[dict[str, Any]],
    writing_status: str,
) -> dict[str, Any]:
    """The shape of an item (moderators only); its writing's own part is built by the caller."""
    target = KIND_TARGETS[row["kind"]]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "kind_label": KIND_LABELS[row["kind"]],
        "status": row["status"],
        "score": row["score"],
        "priority": row["priority"],
        "reasons": list(row["reasons"]),
        "appeal_text": row["appeal_text"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "post": writing,
        "topic": topic,
        "author": author,
        "flags": flags,
        "context": context,
        "resolution": resolution_json(row),
        "actions": list(allowed_actions(target, row["kind"], writing_status)) if row["status"] == "pending" else [],
    }
