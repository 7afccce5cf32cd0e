"""Moderation: members' flags, the review queue and moderators' actions on it, appeals,
hiding and restoring posts directly, revealing a pseudonymous author, and silencing and
suspending members; the `/api/review`, flag, appeal and sanction endpoints.

One reviewable per post and kind (flagged_post, queued_post, safeguarding, appeal) gathers
everything that brought it to the queue; safeguarding sorts first. An action locks the post,
then the reviewable, and checks that the reviewable is still pending, so when two moderators
act at once exactly one action is applied and the other is told who got there first (409).
Every action is in the audit log, and the author is told the outcome with the reason
(ReviewResolved, PostHidden, PostRestored, UserSilenced, UserSuspended).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum.moderation import audit, safety
from services.forum.topics import posts
from shared import markdown
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
from shared.events import PostFlagged, ReviewResolved, UserSilenced, UserSuspended, UserUpdated, write_event
from shared.sessions import Session
from shared.web import ApiError, Runtime, check_csrf, invalid, require_viewer, runtime

api = ApiRouter(tag="moderation")

FLAG_REASONS = ("off_topic", "inappropriate", "spam", "safeguarding", "other")
FLAG_REASON_LABELS = {
    "off_topic": "Off topic",
    "inappropriate": "Inappropriate",
    "spam": "Spam",
    "safeguarding": "Safeguarding concern",
    "other": "Something else",
}
FLAG_REASON_HINTS = {
    "off_topic": "It does not belong in this topic or category.",
    "inappropriate": "It is unkind, offensive, or goes against the community guidelines.",
    "spam": "It is an advert, or has nothing to do with the community.",
    "safeguarding": "You are worried that someone may be at risk of harm, including the person who wrote it.",
    "other": "Something else a moderator should know. Please say what.",
}
MEMBER_FLAG_WEIGHT = 1
STAFF_FLAG_WEIGHT = 3  # a moderator's flag weighs more: it hides a post at the default threshold
NOTE_MAX = 1000
REASON_MAX = 500
APPEAL_MAX = 2000
REVIEW_KINDS = ("flagged_post", "queued_post", "safeguarding", "appeal", "flagged_comment")
KIND_LABELS = {
    "flagged_post": "Flagged post",
    "queued_post": "Waiting for approval",
    "safeguarding": "Safeguarding",
    "appeal": "Appeal",
    "flagged_comment": "Flagged document comment",
}
REVIEW_STATUSES = ("pending", "approved", "rejected", "ignored", "deleted")
ACTIONS = ("approve", "reject", "hide", "restore", "delete", "ignore")
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
REVIEWS_PER_PAGE = 30
AUTO_HIDE_REASON = "Members flagged this post, so it is hidden until a moderator has looked at it."
SANCTION_MAX_DAYS = 36_525  # 100 years: "until further notice"

FLAG_IN = Schema(
    "FlagIn",
    {
        "reason": Field("string", required=True, enum=FLAG_REASONS),
        "note": Field("string", max_length=NOTE_MAX, nullable=True, description="required when the reason is other"),
    },
)
REVIEW_ACTION_IN = Schema(
    "ReviewAction",
    {
        "action": Field("string", required=True, enum=ACTIONS),
        "reason": Field(
            "string", max_length=REASON_MAX, nullable=True, description="required for reject, hide, delete"
        ),
    },
)
POST_ACTION_IN = Schema("PostModeration", {"reason": Field("string", max_length=REASON_MAX, nullable=True)})
APPEAL_IN = Schema("AppealIn", {"text": Field("string", required=True, min_length=1, max_length=APPEAL_MAX)})
SANCTION_IN = Schema(
    "SanctionIn",
    {
        "until": Field("string", required=True, max_length=40, description="ISO 8601 time (or date), in the future"),
        "reason": Field("string", required=True, min_length=1, max_length=REASON_MAX, description="the member sees it"),
    },
)


# --- flags ---------------------------------------------------------------------------------------------


def flag_weight(who: Session) -> int:
    return STAFF_FLAG_WEIGHT if who.is_staff else MEMBER_FLAG_WEIGHT


async def check_flag(
    conn: asyncpg.Connection, who: Session, post_id: int, reason: str, note: str | None
) -> tuple[asyncpg.Record, posts.TopicContext]:
    """The post and topic, if the viewer may flag the post for this reason (validate before any change)."""
    post, topic = await posts.readable_post(conn, who, post_id)
    if post["status"] != "visible":
        raise ApiError(409, "not_flaggable", "This post is not shown at the moment, so it cannot be flagged.")
    if post["author_id"] == who.user_id:
        raise ApiError(403, "own_post", "You cannot flag your own post. You can edit or delete it instead.")
    if reason == "other" and not note:
        raise invalid(
            "note", "is needed when the reason is \u201csomething else\u201d: say what a moderator should know"
        )
    if await conn.fetchval("SELECT 1 FROM forum.flags WHERE post_id = $1 AND user_id = $2", post_id, who.user_id):
        raise ApiError(409, "already_flagged", "You have already flagged this post. A moderator will look at it.")
    return post, topic


async def flag_post(
    conn: asyncpg.Connection,
    who: Session,
    post_id: int,
    data: dict[str, Any],
    rules: safety.PostingRules,
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Check and record a flag; it opens or raises the post's reviewable, and may hide the post.

    Returns (flag row, reviewable row). A safeguarding flag goes to the safeguarding item and
    never hides the post: people in distress are not silenced.
    """
    reason, note = data["reason"], (data.get("note") or "").strip() or None
    await check_flag(conn, who, post_id, reason, note)
    await safety.enforce_flag_limit(conn, who, rules)
    post = await posts.lock_post(conn, post_id)
    topic = await posts.readable_topic(conn, who, post["topic_id"])
    weight = flag_weight(who)
    kind = "safeguarding" if reason == "safeguarding" else "flagged_post"
    review = await safety.open_review(
        conn,
        kind=kind,
        post=post,
        reasons=[f"Flag: {FLAG_REASON_LABELS[reason]}"],
        priority=safety.PRIORITY_SAFEGUARDING if kind == "safeguarding" else safety.PRIORITY_NORMAL,
        score=weight,
    )
    try:
        async with conn.transaction():  # a savepoint: a double click's second flag is a clear 409
            flag = await conn.fetchrow(
                "INSERT INTO forum.flags (post_id, user_id, reason, note, weight, reviewable_id) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, post_id, reason, note, created_at",
                post_id,
                who.user_id,
                reason,
                note,
                weight,
                review["id"],
            )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "already_flagged", "You have already flagged this post. A moderator will look at it."
        ) from None
    if kind == "flagged_post" and review["score"] >= rules.settings.flag_hide_score and post["status"] == "visible":
        await posts.hide_post(conn, post, topic, reason=AUTO_HIDE_REASON, actor_id=None)
        review = await safety.open_review(
            conn,
            kind=kind,
            post=post,
            reasons=[f"Hidden automatically: the flag score reached {rules.settings.flag_hide_score}"],
            priority=safety.PRIORITY_HIDDEN,
        )
    await write_event(
        conn,
        PostFlagged(
            post_id=post_id,
            topic_id=topic.id,
            category_id=topic.category_id,
            author_id=post["author_id"],
            reason=reason,
            review_id=review["id"],
            review_kind=kind,
            score=review["score"],
            priority=review["priority"],
            flag_id=flag["id"],
        ),
        actor_id=who.user_id,
    )
    return flag, review


def flag_json(flag: asyncpg.Record, review: asyncpg.Record) -> dict[str, Any]:
    """What the member who flagged sees: their flag, and that it is with the moderators."""
    return {
        "id": flag["id"],
        "post_id": flag["post_id"],
        "reason": flag["reason"],
        "note": flag["note"],
        "created_at": flag["created_at"].isoformat(),
        "review_id": review["id"],
        "message": "Thank you. A moderator will look at this post.",
    }


# --- the queue -------------------------------------------------------------------------------------------

_REVIEW_SELECT = """
SELECT r.id, r.kind, r.post_id, r.topic_id, r.comment_id, r.author_id, r.status, r.score, r.priority, r.reasons,
       r.appeal_text, r.resolved_by, r.resolved_at, r.resolution, r.resolution_reason, r.created_at, r.updated_at,
       p.post_number, p.status AS post_status, p.raw, p.cooked, p.content_note, p.anonymous, p.moderation_reason,
       p.created_at AS post_created_at, p.reply_to_post_id,
       t.title AS topic_title, t.slug AS topic_slug, t.category_id,
       u.username, u.display_name, u.created_at AS author_joined,
       coalesce(u.suspended_until > now(), false) AS author_suspended,
       coalesce(u.silenced_until > now(), false) AS author_silenced,
       m.username AS resolver_username, m.display_name AS resolver_display_name
FROM forum.reviewables r
LEFT JOIN forum.posts p ON p.id = r.post_id  -- none for a document comment's item
LEFT JOIN forum.topics t ON t.id = r.topic_id
JOIN forum.users u ON u.id = r.author_id
LEFT JOIN forum.users m ON m.id = r.resolved_by
"""
LIST_REVIEWS_SQL = (
    _REVIEW_SELECT
    + """
WHERE ($1::text IS NULL OR r.status = $1) AND ($2::text IS NULL OR r.kind = $2)
ORDER BY
    CASE WHEN r.status = 'pending' THEN 0 ELSE 1 END,
    CASE WHEN r.status = 'pending' THEN r.priority END DESC,
    CASE WHEN r.status = 'pending' THEN r.score END DESC,
    CASE WHEN r.status = 'pending' THEN r.created_at END,
    r.resolved_at DESC, r.id
LIMIT $3 OFFSET $4
"""
)
REVIEW_SQL = _REVIEW_SELECT + "WHERE r.id = $1"
FLAGS_SQL = """
SELECT f.id, f.reviewable_id, f.reason, f.note, f.status, f.weight, f.created_at, f.user_id, u.username, u.display_name
FROM forum.flags f JOIN forum.users u ON u.id = f.user_id
WHERE f.reviewable_id = ANY($1::bigint[])
ORDER BY f.id
"""
CONTEXT_SQL = """
SELECT p.id, p.post_number, p.status, p.plain, p.anonymous, p.author_id, u.username, u.display_name
FROM forum.posts p JOIN forum.users u ON u.id = p.author_id
WHERE p.topic_id = $1 AND p.post_number < $2 AND p.status = 'visible'
ORDER BY p.post_number DESC
LIMIT 2
"""


@dataclass(frozen=True)
class ReviewQuery:
    """Which items the queue shows: ?status=pending|approved|rejected|ignored|deleted|all&kind=&page=."""

    status: str | None = "pending"
    kind: str | None = None
    page: int = 1


def parse_review_query(request: Request) -> ReviewQuery:
    params = request.query_params
    status = params.get("status") or "pending"
    if status not in (*REVIEW_STATUSES, "all"):
        raise ApiError(
            400,
            "bad_request",
            f"?status must be one of {', '.join(REVIEW_STATUSES)} or all.",
            {"status": "is not a status"},
        )
    kind = params.get("kind") or None
    if kind is not None and kind not in REVIEW_KINDS:
        raise ApiError(400, "bad_request", f"?kind must be one of {', '.join(REVIEW_KINDS)}.", {"kind": "is not known"})
    return ReviewQuery(None if status == "all" else status, kind, query_int(request, "page", 1))


async def list_reviews(conn: asyncpg.Connection, who: Session, query: ReviewQuery) -> tuple[list[dict[str, Any]], bool]:
    """One page of the queue as JSON (staff): pending first by priority, score and age; and whether more follow."""
    audit.require_staff(who)
    rows = await conn.fetch(
        LIST_REVIEWS_SQL, query.status, query.kind, REVIEWS_PER_PAGE + 1, (query.page - 1) * REVIEWS_PER_PAGE
    )
    rows = rows[: REVIEWS_PER_PAGE + 1]
    items = await reviews_json(conn, rows[:REVIEWS_PER_PAGE])
    return items, len(rows) > REVIEWS_PER_PAGE


async def get_review(conn: asyncpg.Connection, who: Session, review_id: int) -> dict[str, Any]:
    """One reviewable as JSON (staff); 404 when there is none."""
    audit.require_staff(who)
    row = await conn.fetchrow(REVIEW_SQL, review_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    return (await reviews_json(conn, [row]))[0]


async def reviews_json(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Reviewables with their flags and the posts before them (the context a moderator needs)."""
    from services.forum.moderation import comments as comment_moderation  # imported here: it builds on this module

    comment_rows = [row for row in rows if row["comment_id"] is not None]
    comment_items = await comment_moderation.reviews_json(conn, comment_rows) if comment_rows else {}
    flags: dict[int, list[dict[str, Any]]] = {}
    for flag in await conn.fetch(FLAGS_SQL, [row["id"] for row in rows]):
        flags.setdefault(flag["reviewable_id"], []).append(
            {
                "id": flag["id"],
                "reason": flag["reason"],
                "reason_label": FLAG_REASON_LABELS[flag["reason"]],
                "note": flag["note"],
                "status": flag["status"],
                "weight": flag["weight"],
                "by": {"id": flag["user_id"], "username": flag["username"], "display_name": flag["display_name"]},
                "created_at": flag["created_at"].isoformat(),
            }
        )
    items = []
    for row in rows:
        if row["id"] in comment_items:
            items.append(comment_items[row["id"]])
            continue
        context = await conn.fetch(CONTEXT_SQL, row["topic_id"], row["post_number"])
        items.append(review_json(row, flags.get(row["id"], []), list(reversed(context))))
    return items


def _author(row: asyncpg.Record) -> dict[str, Any]:
    if row["anonymous"]:
        return dict(posts.ANONYMOUS_AUTHOR)
    return {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}


def review_json(row: asyncpg.Record, flags: list[dict[str, Any]], context: list[asyncpg.Record]) -> dict[str, Any]:
    """The shape of a reviewable (moderators only). A pseudonymous post's author stays hidden until revealed."""
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
    author = _author(row)
    if not row["anonymous"]:
        author.update(
            suspended=row["author_suspended"],
            silenced=row["author_silenced"],
            joined_at=row["author_joined"].isoformat(),
        )
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
        "post": {
            "id": row["post_id"],
            "post_number": row["post_number"],
            "status": row["post_status"],
            "raw": row["raw"],
            "cooked": row["cooked"],
            "content_note": row["content_note"],
            "moderation_reason": row["moderation_reason"],
            "anonymous": row["anonymous"],
            "created_at": row["post_created_at"].isoformat(),
            "url": f"/p/{row['post_id']}",
        },
        "topic": {
            "id": row["topic_id"],
            "title": row["topic_title"],
            "url": f"/t/{row['topic_slug']}/{row['topic_id']}",
        },
        "author": author,
        "flags": flags,
        "context": [
            {
                "post_number": c["post_number"],
                "author": dict(posts.ANONYMOUS_AUTHOR)
                if c["anonymous"]
                else {"id": c["author_id"], "username": c["username"], "display_name": c["display_name"]},
                "excerpt": markdown.excerpt(c["plain"], 300) if c["plain"] else "",
            }
            for c in context
        ],
        "resolution": resolution,
        "actions": list(allowed_actions(row["kind"], row["post_status"])) if row["status"] == "pending" else [],
    }


# --- acting on the queue ---------------------------------------------------------------------------------


def allowed_actions(kind: str, post_status: str) -> tuple[str, ...]:
    """What a moderator can do with an item, given its kind and the post's state now."""
    if post_status == "deleted":
        return ()
    if post_status == "visible":
        ignorable = ("ignore",) if kind in ("flagged_post", "safeguarding") else ()
        return ("approve", "hide", "reject", "delete", *ignorable)
    return ("approve", "restore", "reject", "hide", "delete")


def check_action(kind: str, post_status: str, action: str, reason: str | None) -> None:
    """422 for an action that does not fit the item, or that needs a reason it was not given."""
    allowed = allowed_actions(kind, post_status)
    if action not in allowed:
        if action == "ignore" and post_status == "hidden":
            message = "This post is hidden: restore it, or keep it hidden (with a reason its author will see)."
        elif action == "ignore":
            message = "This item needs a decision: approve it or turn it down."
        else:
            message = f"\u201c{action}\u201d is not possible for this item now."
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


def _already_done(row: asyncpg.Record, resolver: str | None) -> ApiError:
    did = PAST.get(row["resolution"] or "", f"closed it ({row['status']})")
    return ApiError(
        409,
        "already_resolved",
        f"Another moderator{f' ({resolver})' if resolver else ''} has already dealt with this item: they {did}. "
        "Nothing more was changed.",
    )


LOCK_REVIEW_SQL = """
SELECT r.id, r.kind, r.post_id, r.status, r.resolution, u.username AS resolver
FROM forum.reviewables r LEFT JOIN forum.users u ON u.id = r.resolved_by
WHERE r.id = $1 FOR UPDATE OF r
"""
RESOLVE_SQL = """
UPDATE forum.reviewables
SET status = $2, resolution = $3, resolution_reason = $4, resolved_by = $5, resolved_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING id
"""


async def act(conn: asyncpg.Connection, who: Session, review_id: int, action: str, reason: str | None) -> None:
    """Check and apply a moderator's action on a reviewable; 409 when someone else acted first."""
    audit.require_staff(who)
    target = await conn.fetchrow("SELECT post_id, comment_id FROM forum.reviewables WHERE id = $1", review_id)
    if target is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    if target["comment_id"] is not None:
        from services.forum.moderation import comments as comment_moderation  # imported here: it builds on this module

        await comment_moderation.act(conn, who, review_id, action, reason)
        return
    found = target["post_id"]
    # Post first, then the reviewable: the order every writer uses, so two never wait on each other.
    post = await posts.lock_post(conn, found)
    review = await conn.fetchrow(LOCK_REVIEW_SQL, review_id)
    if review["status"] != "pending":
        raise _already_done(review, review["resolver"])
    reason = posts.clean_note(reason) if reason else None
    check_action(review["kind"], post["status"], action, reason)
    topic = await _topic(conn, who, post)
    before = {"review_status": "pending", "post_status": post["status"]}
    await _apply(conn, who, review["kind"], post, topic, action, reason)
    await resolve(conn, who, review_id, review["kind"], post, topic, action, reason, before=before)


async def _topic(conn: asyncpg.Connection, who: Session, post: asyncpg.Record) -> posts.TopicContext:
    try:
        return await posts.readable_topic(conn, who, post["topic_id"])
    except ApiError:
        raise ApiError(409, "topic_deleted", "This post's topic was deleted, so the item can only be closed.") from None


async def _apply(
    conn: asyncpg.Connection,
    who: Session,
    kind: str,
    post: asyncpg.Record,
    topic: posts.TopicContext,
    action: str,
    reason: str | None,
) -> None:
    """What an action does to the post (see allowed_actions)."""
    status = post["status"]
    if action in ("approve", "restore"):
        if status in posts.UNPUBLISHED:
            await posts.publish_post(conn, post, topic, actor_id=who.user_id)
        elif status == "hidden":
            await posts.restore_post(conn, post, topic, actor_id=who.user_id)
    elif action in ("reject", "hide"):
        assert reason is not None
        if status == "pending":
            await posts.reject_post(conn, post, reason=reason, actor_id=who.user_id)
        elif status == "visible":
            await posts.hide_post(conn, post, topic, reason=reason, actor_id=who.user_id)
        else:  # already hidden or rejected: the decision stands, with this reason
            await conn.execute(posts.SET_STATUS_SQL, post["id"], status, reason)
    elif action == "delete":
        await posts.remove_post(conn, post, topic, actor_id=who.user_id)


async def resolve(
    conn: asyncpg.Connection,
    who: Session,
    review_id: int,
    kind: str,
    post: asyncpg.Record,
    topic: posts.TopicContext,
    action: str,
    reason: str | None,
    *,
    before: dict[str, Any],
) -> None:
    """Close a reviewable (already locked and pending): its flags, the audit entry, the author's ReviewResolved."""
    outcome = OUTCOME[action]
    # A delete has already closed the post's items (status deleted); this one gets its action and reason.
    await conn.execute(
        "UPDATE forum.reviewables SET status = $2, resolution = $3, resolution_reason = $4, resolved_by = $5, "
        "resolved_at = now(), updated_at = now() WHERE id = $1",
        review_id,
        outcome,
        action,
        reason,
        who.user_id,
    )
    await conn.execute(
        "UPDATE forum.flags SET status = $2 WHERE reviewable_id = $1 AND status = 'pending'",
        review_id,
        FLAG_OUTCOME[outcome],
    )
    post_now = await conn.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"])
    await audit.record(
        conn,
        actor_id=who.user_id,
        action=f"review.{action}",
        target_type="reviewable",
        target_id=review_id,
        reason=reason,
        before=before,
        after={"review_status": outcome, "post_status": post_now, "post_id": post["id"], "kind": kind},
    )
    await write_event(
        conn,
        ReviewResolved(
            review_id=review_id,
            kind=kind,
            action=action,
            moderator_id=who.user_id,
            post_id=post["id"],
            topic_id=topic.id,
            topic_title=topic.title,
            author_id=post["author_id"],
            reason=reason,
        ),
        actor_id=who.user_id,
    )


# --- acting on a post directly (from the topic page) -----------------------------------------------------------


async def moderate_post(conn: asyncpg.Connection, who: Session, post_id: int, action: str, reason: str | None) -> None:
    """Hide or restore a post outside the queue (staff); an open flag item of the post is resolved with it."""
    audit.require_staff(who)
    await posts.readable_post(conn, who, post_id)
    post = await posts.lock_post(conn, post_id)
    reason = posts.clean_note(reason) if reason else None
    if action == "hide" and not reason:
        raise invalid("reason", "is needed to hide a post: its author will see it, so please write it kindly")
    topic = await _topic(conn, who, post)
    if action == "hide":
        await posts.hide_post(conn, post, topic, reason=reason or "", actor_id=who.user_id)
    else:
        await posts.restore_post(conn, post, topic, actor_id=who.user_id)
    await audit.record(
        conn,
        actor_id=who.user_id,
        action=f"post.{action}",
        target_type="post",
        target_id=post_id,
        reason=reason,
        before={"status": post["status"]},
        after={"status": "hidden" if action == "hide" else "visible"},
    )
    open_item = await conn.fetchval(
        "SELECT id FROM forum.reviewables WHERE post_id = $1 AND kind = 'flagged_post' AND status = 'pending' "
        "FOR UPDATE",
        post_id,
    )
    if open_item is not None:
        before = {"review_status": "pending", "post_status": post["status"]}
        await resolve(conn, who, open_item, "flagged_post", post, topic, action, reason, before=before)


async def reveal_author(conn: asyncpg.Connection, who: Session, post_id: int) -> dict[str, Any]:
    """Who wrote a pseudonymous post (staff); each reveal is in the audit log."""
    audit.require_staff(who)
    post, _ = await posts.readable_post(conn, who, post_id)
    if not post["anonymous"]:
        raise ApiError(409, "not_anonymous", "This post was not written anonymously: its author is shown on it.")
    await audit.record(conn, actor_id=who.user_id, action="post.reveal_author", target_type="post", target_id=post_id)
    return {
        "post_id": post_id,
        "author": {"id": post["author_id"], "username": post["username"], "display_name": post["display_name"]},
        "message": "This reveal is recorded in the audit log.",
    }


# --- appeals ---------------------------------------------------------------------------------------------------

APPEAL_SQL = """
SELECT r.id, r.status, r.appeal_text, r.resolution, r.resolution_reason, r.created_at, r.resolved_at
FROM forum.reviewables r WHERE r.post_id = $1 AND r.kind = 'appeal'
"""


async def appealable_post(conn: asyncpg.Connection, who: Session, post_id: int) -> asyncpg.Record:
    """The post, if the viewer wrote it and it is hidden or rejected (404 for anyone else's)."""
    post, _ = await posts.readable_post(conn, who, post_id)
    if post["author_id"] != who.user_id:
        raise ApiError(404, "not_found", "We could not find that post.")
    if post["status"] not in ("hidden", "rejected"):
        raise ApiError(409, "not_appealable", "Only a hidden or rejected post can be appealed, and this one is not.")
    return post


async def appeal(conn: asyncpg.Connection, who: Session, post_id: int, text: str) -> asyncpg.Record:
    """The author asks moderators to look again at a hidden or rejected post: once per post."""
    post = await appealable_post(conn, who, post_id)
    text = text.strip()
    if not text:
        raise invalid("text", "is required: tell the moderators why they should look again")
    row = await conn.fetchrow(
        "INSERT INTO forum.reviewables (kind, post_id, topic_id, author_id, priority, reasons, appeal_text) "
        "VALUES ('appeal', $1, $2, $3, $4, $5, $6) ON CONFLICT (kind, post_id) DO NOTHING RETURNING id",
        post_id,
        post["topic_id"],
        post["author_id"],
        safety.PRIORITY_NORMAL,
        ["The author appeals the decision"],
        text,
    )
    if row is None:
        raise ApiError(
            409, "already_appealed", "You have already appealed about this post. Each post can be appealed once."
        )
    found: asyncpg.Record = await conn.fetchrow(APPEAL_SQL, post_id)
    return found


async def my_appeal(conn: asyncpg.Connection, who: Session, post_id: int) -> asyncpg.Record:
    """A post's appeal, for its author and staff only; 404 for everyone else, and when there is none."""
    post, _ = await posts.readable_post(conn, who, post_id)
    if post["author_id"] != who.user_id and not who.is_staff:
        raise ApiError(404, "not_found", "We could not find that post.")
    row = await conn.fetchrow(APPEAL_SQL, post_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no appeal about this post.")
    return row


def appeal_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "text": row["appeal_text"],
        "decision": row["resolution"],
        "reason": row["resolution_reason"],
        "created_at": row["created_at"].isoformat(),
        "decided_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
    }


# --- silencing and suspending -----------------------------------------------------------------------------------


def parse_until(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (or date: its start, UTC) in the future and within 100 years; 422 otherwise."""
    now = now or datetime.now(UTC)
    try:
        until = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid("until", "must be a date and time like 2025-03-04T12:00:00Z") from None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until <= now:
        raise invalid("until", "must be in the future")
    if until > now + timedelta(days=SANCTION_MAX_DAYS):
        raise invalid("until", "must be within 100 years")
    return until


TARGET_SQL = """
SELECT id, username, display_name, email, roles, email_verified_at IS NOT NULL AS verified,
       suspended_until, suspended_reason, silenced_until, silenced_reason, created_at
FROM forum.users WHERE id = $1 FOR UPDATE
"""


async def _target(conn: asyncpg.Connection, who: Session, user_id: int) -> asyncpg.Record:
    audit.require_staff(who)
    row = await conn.fetchrow(TARGET_SQL, user_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such member.")
    if "moderator" in row["roles"] or "admin" in row["roles"]:
        raise ApiError(
            409, "is_staff", "Moderators and admins cannot be silenced or suspended. Take away their role first."
        )
    return row


def _sanction_state(row: asyncpg.Record, kind: str) -> dict[str, Any]:
    return {"until": row[f"{kind}_until"], "reason": row[f"{kind}_reason"]}


async def sanction(
    rt: Runtime, conn: asyncpg.Connection, who: Session, user_id: int, kind: str, data: dict[str, Any]
) -> asyncpg.Record:
    """Silence (can read, cannot post) or suspend (cannot log in) a member until a time, with a reason they see.

    Suspending ends every session and revokes every API token of the member at once.
    """
    assert kind in ("silenced", "suspended")
    target = await _target(conn, who, user_id)
    until = parse_until(data["until"])
    reason = " ".join(data["reason"].split())
    if not reason:
        raise invalid("reason", "is required: the member sees it")
    row = await conn.fetchrow(
        f"UPDATE forum.users SET {kind}_until = $2, {kind}_reason = $3, updated_at = now() WHERE id = $1 "
        "RETURNING id, username, suspended_until, suspended_reason, silenced_until, silenced_reason",
        user_id,
        until,
        reason,
    )
    event = UserSilenced if kind == "silenced" else UserSuspended
    await write_event(conn, event(user_id=user_id, until=until.isoformat(), reason=reason), actor_id=who.user_id)
    await audit.record(
        conn,
        actor_id=who.user_id,
        action="user.silence" if kind == "silenced" else "user.suspend",
        target_type="user",
        target_id=user_id,
        reason=reason,
        before=_sanction_state(target, kind),
        after={"until": until, "reason": reason},
    )
    if kind == "suspended":
        await end_sessions(rt, conn, user_id)
    return row


async def end_sessions(rt: Runtime, conn: asyncpg.Connection, user_id: int) -> None:
    """Every session and API token of a member stops working now (before commit: a Redis failure rolls back)."""
    digests = await conn.fetch(
        "UPDATE forum.api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING token_hash",
        user_id,
    )
    for row in digests:
        await rt.sessions.revoke_token(row["token_hash"], user_id)
    await rt.sessions.delete_all(user_id)


async def lift(conn: asyncpg.Connection, who: Session, user_id: int, kind: str) -> asyncpg.Record:
    """End a silence or suspension early (staff); 409 when there is none."""
    assert kind in ("silenced", "suspended")
    target = await _target(conn, who, user_id)
    until = target[f"{kind}_until"]
    if until is None or until <= datetime.now(UTC):
        raise ApiError(409, f"not_{kind}", f"This member is not {kind}.")
    row = await conn.fetchrow(
        f"UPDATE forum.users SET {kind}_until = NULL, {kind}_reason = NULL, updated_at = now() WHERE id = $1 "
        "RETURNING id, username, suspended_until, suspended_reason, silenced_until, silenced_reason",
        user_id,
    )
    if kind == "suspended":
        # user.updated with no suspension is how other services learn it ended.
        await write_event(
            conn,
            UserUpdated(
                user_id=user_id,
                username=target["username"],
                display_name=target["display_name"],
                roles=list(target["roles"]),
                email_verified=target["verified"],
                suspended_until=None,
                email=target["email"],
            ),
            actor_id=who.user_id,
        )
    await audit.record(
        conn,
        actor_id=who.user_id,
        action="user.unsilence" if kind == "silenced" else "user.unsuspend",
        target_type="user",
        target_id=user_id,
        before=_sanction_state(target, kind),
        after={"until": None, "reason": None},
    )
    return row


def standing_json(row: asyncpg.Record) -> dict[str, Any]:
    """A member's silence and suspension now."""
    now = datetime.now(UTC)

    def active(until: datetime | None) -> str | None:
        return until.isoformat() if until is not None and until > now else None

    return {
        "user_id": row["id"],
        "username": row["username"],
        "suspended_until": active(row["suspended_until"]),
        "suspended_reason": row["suspended_reason"] if active(row["suspended_until"]) else None,
        "silenced_until": active(row["silenced_until"]),
        "silenced_reason": row["silenced_reason"] if active(row["silenced_until"]) else None,
    }


# --- a member, as moderators see them ----------------------------------------------------------------------------

MEMBER_SQL = """
SELECT id, username, display_name, roles, created_at, suspended_until, suspended_reason, silenced_until,
       silenced_reason
FROM forum.users WHERE id = $1
"""
# Pseudonymous posts are left out: listing them here would reveal their author without an audited reveal.
MEMBER_COUNTS_SQL = """
SELECT count(*) FILTER (WHERE status IN ('visible', 'hidden')) AS published,
       count(*) FILTER (WHERE status = 'hidden') AS hidden,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       (SELECT count(*) FROM forum.flags f JOIN forum.posts fp ON fp.id = f.post_id
        WHERE fp.author_id = $1 AND NOT fp.anonymous) AS flags_received
FROM forum.posts WHERE author_id = $1 AND NOT anonymous
"""
MEMBER_REVIEWS_SQL = (
    _REVIEW_SELECT
    + "WHERE r.author_id = $1 AND NOT coalesce(p.anonymous, false) ORDER BY r.created_at DESC, r.id DESC LIMIT 20"
)


async def member_record(conn: asyncpg.Connection, who: Session, user_id: int) -> dict[str, Any]:
    """A member's standing, counts, latest review items and audit entries (staff)."""
    audit.require_staff(who)
    row = await conn.fetchrow(MEMBER_SQL, user_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such member.")
    counts = await conn.fetchrow(MEMBER_COUNTS_SQL, user_id)
    reviews = await reviews_json(conn, list(await conn.fetch(MEMBER_REVIEWS_SQL, user_id)))
    entries = await audit.entries_about_member(conn, user_id)
    return {
        "user": {
            "id": row["id"],
            "username": row["username"],
            "display_name": row["display_name"],
            "roles": list(row["roles"]),
            "created_at": row["created_at"].isoformat(),
        },
        "standing": standing_json(row),
        "counts": dict(counts),
        "reviews": reviews,
        "audit": [audit.entry_json(e) for e in entries],
    }


# --- endpoints ------------------------------------------------------------------------------------------------


async def _writer(request: Request) -> Session:
    who = await require_viewer(request)
    check_csrf(request, who)
    return who


async def _staff_writer(request: Request) -> Session:
    who = await _writer(request)
    audit.require_staff(who)
    return who


@api.post(
    "/api/posts/{id}/flags",
    body=FLAG_IN,
    answers={201: "Flag: {id, post_id, reason, note, created_at, review_id, message}", 429: "Too many flags today"},
    auth=True,
)
async def flag_endpoint(request: Request) -> Response:
    """Flag a post for moderators: off_topic, inappropriate, spam, safeguarding, or other (with a note)."""
    post_id = path_int(request, "id")
    who = await _writer(request)
    data = await read_json(request, FLAG_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        flag, review = await flag_post(conn, who, post_id, data, safety.PostingRules.of(rt))
    return JSONResponse(flag_json(flag, review), status_code=201)


@api.get(
    "/api/review",
    answers={200: "{items: [reviewable], next}: pending first, safeguarding first"},
    auth=True,
    query={
        "status": "pending (default), approved, rejected, ignored, deleted or all",
        "kind": ", ".join(REVIEW_KINDS),
        "page": f"1-based page of {REVIEWS_PER_PAGE}",
    },
)
async def review_queue_endpoint(request: Request) -> Response:
    """The review queue (moderators): pending items by priority (safeguarding first), score, then age."""
    who = await require_viewer(request)
    audit.require_staff(who)
    query = parse_review_query(request)
    async with runtime(request).pool.acquire() as conn:
        items, has_next = await list_reviews(conn, who, query)
    return JSONResponse({"items": items, "next": query.page + 1 if has_next else None})


@api.get("/api/review/{id}", answers={200: "Reviewable"}, auth=True)
async def review_item_endpoint(request: Request) -> Response:
    """One item of the review queue (moderators)."""
    review_id = path_int(request, "id")
    who = await require_viewer(request)
    audit.require_staff(who)
    async with runtime(request).pool.acquire() as conn:
        item = await get_review(conn, who, review_id)
    return JSONResponse(item)


@api.post(
    "/api/review/{id}",
    body=REVIEW_ACTION_IN,
    answers={200: "Reviewable", 409: "Another moderator acted first", 422: "Action not possible, or reason missing"},
    auth=True,
)
async def review_action_endpoint(request: Request) -> Response:
    """Act on an item (moderators): approve, reject, hide, restore, delete or ignore; reason for reject/hide/delete."""
    review_id = path_int(request, "id")
    who = await _staff_writer(request)
    data = await read_json(request, REVIEW_ACTION_IN)
    async with runtime(request).pool.acquire() as conn:
        async with conn.transaction():
            await act(conn, who, review_id, data["action"], data.get("reason"))
        item = await get_review(conn, who, review_id)
    return JSONResponse(item)


@api.post("/api/posts/{id}/hide", body=POST_ACTION_IN, answers={200: "Post"}, auth=True)
async def hide_endpoint(request: Request) -> Response:
    """Hide a post (moderators), with a reason its author sees."""
    return await _moderate_post(request, "hide")


@api.post("/api/posts/{id}/restore", body=POST_ACTION_IN, answers={200: "Post"}, auth=True)
async def restore_endpoint(request: Request) -> Response:
    """Show a hidden post again (moderators)."""
    return await _moderate_post(request, "restore")


async def _moderate_post(request: Request, action: str) -> Response:
    post_id = path_int(request, "id")
    who = await _staff_writer(request)
    data = await read_json(request, POST_ACTION_IN)
    async with runtime(request).pool.acquire() as conn:
        async with conn.transaction():
            await moderate_post(conn, who, post_id, action, data.get("reason"))
        post, _ = await posts.readable_post(conn, who, post_id)
    return JSONResponse(posts.post_json(post, who))


@api.post("/api/posts/{id}/reveal-author", answers={200: "{post_id, author}"}, auth=True)
async def reveal_endpoint(request: Request) -> Response:
    """Who wrote a pseudonymous post (moderators); every reveal is recorded in the audit log."""
    post_id = path_int(request, "id")
    who = await _staff_writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        revealed = await reveal_author(conn, who, post_id)
    return JSONResponse(revealed)


@api.post("/api/posts/{id}/appeal", body=APPEAL_IN, answers={201: "Appeal"}, auth=True)
async def appeal_endpoint(request: Request) -> Response:
    """Appeal about your hidden or rejected post, once, in your own words."""
    post_id = path_int(request, "id")
    who = await _writer(request)
    data = await read_json(request, APPEAL_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await appeal(conn, who, post_id, data["text"])
    return JSONResponse(appeal_json(row), status_code=201)


@api.get("/api/posts/{id}/appeal", answers={200: "Appeal"}, auth=True)
async def get_appeal_endpoint(request: Request) -> Response:
    """The appeal about a post: for its author and moderators only."""
    post_id = path_int(request, "id")
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        row = await my_appeal(conn, who, post_id)
    return JSONResponse(appeal_json(row))


async def _sanction(request: Request, kind: str) -> Response:
    user_id = path_int(request, "id")
    who = await _staff_writer(request)
    rt = runtime(request)
    if request.method == "DELETE":
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await lift(conn, who, user_id, kind)
        return JSONResponse(standing_json(row))
    data = await read_json(request, SANCTION_IN)
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await sanction(rt, conn, who, user_id, kind, data)
    if kind == "suspended":
        await rt.sessions.delete_all(user_id)  # again after commit: a login that raced the change ends too
    return JSONResponse(standing_json(row))


@api.post("/api/users/{id}/suspend", body=SANCTION_IN, answers={200: "Standing"}, auth=True)
async def suspend_endpoint(request: Request) -> Response:
    """Suspend a member until a time, with a reason they see; their sessions and API tokens end now (moderators)."""
    return await _sanction(request, "suspended")


@api.delete("/api/users/{id}/suspend", answers={200: "Standing"}, auth=True)
async def unsuspend_endpoint(request: Request) -> Response:
    """End a suspension early (moderators)."""
    return await _sanction(request, "suspended")


@api.post("/api/users/{id}/silence", body=SANCTION_IN, answers={200: "Standing"}, auth=True)
async def silence_endpoint(request: Request) -> Response:
    """Silence a member until a time: they can read but not post (moderators)."""
    return await _sanction(request, "silenced")


@api.delete("/api/users/{id}/silence", answers={200: "Standing"}, auth=True)
async def unsilence_endpoint(request: Request) -> Response:
    """End a silence early (moderators)."""
    return await _sanction(request, "silenced")


@api.get("/api/users/{id}/moderation", answers={200: "{user, standing, counts, reviews, audit}"}, auth=True)
async def member_record_endpoint(request: Request) -> Response:
    """A member as moderators see them: standing, counts, review items and audit entries (moderators)."""
    user_id = path_int(request, "id")
    who = await require_viewer(request)
    audit.require_staff(who)
    async with runtime(request).pool.acquire() as conn:
        record = await member_record(conn, who, user_id)
    return JSONResponse(record)
