"""Moderation: the review queue and moderators' actions on it (whatever writing an item is
about), appeals, hiding and restoring posts directly, revealing a pseudonymous author, and
silencing and suspending members. Flags and review items themselves are writings' (writings/).

Safeguarding sorts first in the queue. An action locks the writing, then the item, and checks
that the item is still pending, so when two moderators act at once exactly one action is applied
and the other is told who got there first (409). Every action is in the audit log, and the author
is told the outcome with the reason (ReviewResolved, PostHidden, PostRestored, UserSilenced,
UserSuspended).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from starlette.requests import Request

from services.forum import access
from services.forum.messages import conversations
from services.forum.moderation import audit, safeguarding
from services.forum.outbox import write_event
from services.forum.topics import moves, posts, topics
from services.forum.writings import comments, flags, reviews, targets
from services.forum.writings.reviews import REVIEW_KINDS
from shared import markdown
from shared.api import query_choice, query_int
from shared.events import ReviewResolved, UserSilenced, UserSuspended, UserUpdated
from shared.sessions import Session
from shared.web import ApiError, Runtime, invalid

REVIEW_STATUSES = ("pending", "approved", "rejected", "ignored", "deleted")
ACTIONS = ("approve", "reject", "hide", "restore", "delete", "ignore")
REVIEWS_PER_PAGE = 30
SANCTION_MAX_DAYS = 36_525  # 100 years: "until further notice"


# --- the queue -------------------------------------------------------------------------------------------

_REVIEW_SELECT = """
SELECT r.id, r.kind, r.post_id, r.topic_id, r.comment_id, r.message_id, r.author_id, r.status, r.score, r.priority,
       r.reasons,
       r.appeal_text, r.resolved_by, r.resolved_at, r.resolution, r.resolution_reason, r.created_at, r.updated_at,
       p.post_number, p.status AS post_status, p.raw, p.cooked, p.content_note, p.anonymous, p.moderation_reason,
       p.created_at AS post_created_at, p.reply_to_post_id,
       t.title AS topic_title, t.slug AS topic_slug, t.category_id,
       u.username, u.display_name, u.created_at AS author_joined,
       coalesce(u.suspended_until > now(), false) AS author_suspended,
       coalesce(u.silenced_until > now(), false) AS author_silenced,
       m.username AS resolver_username, m.display_name AS resolver_display_name,
       r.alert_round, r.alerted_at, r.picked_up_by, r.picked_up_at, r.outcome, r.outcome_note,
       h.username AS holder_username, h.display_name AS holder_display_name
FROM forum.reviewables r
LEFT JOIN forum.posts p ON p.id = r.post_id  -- none for a document comment's item
LEFT JOIN forum.topics t ON t.id = r.topic_id
JOIN forum.users u ON u.id = r.author_id
LEFT JOIN forum.users m ON m.id = r.resolved_by
LEFT JOIN forum.users h ON h.id = r.picked_up_by
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
CONTEXT_SQL = """
SELECT p.id, p.post_number, p.status, p.plain, p.anonymous, p.author_id, u.username, u.display_name
FROM forum.posts p JOIN forum.users u ON u.id = p.author_id
WHERE p.topic_id = $1 AND p.post_number < $2 AND p.status = 'visible'
ORDER BY p.post_number DESC
LIMIT 2
"""


QUEUE_COUNTS_SQL = """
SELECT kind, count(*) AS waiting FROM forum.reviewables WHERE status = 'pending' GROUP BY kind
"""


async def queue_counts(conn: asyncpg.Connection, who: Session) -> dict[str, int]:
    """How many items wait in the review queue, by kind (staff): every kind, 0 when none wait."""
    access.require_staff(who)
    counts = {kind: 0 for kind in REVIEW_KINDS}
    counts.update({row["kind"]: row["waiting"] for row in await conn.fetch(QUEUE_COUNTS_SQL)})
    return counts


@dataclass(frozen=True)
class ReviewQuery:
    """Which items the queue shows: ?status=pending|approved|rejected|ignored|deleted|all&kind=&page=."""

    status: str | None = "pending"
    kind: str | None = None
    page: int = 1


def parse_review_query(request: Request) -> ReviewQuery:
    status = query_choice(
        request,
        "status",
        (*REVIEW_STATUSES, "all"),
        default="pending",
        message=f"?status must be one of {', '.join(REVIEW_STATUSES)} or all.",
        field_error="is not a status",
    )
    kind = query_choice(request, "kind", REVIEW_KINDS)
    return ReviewQuery(None if status == "all" else status, kind, query_int(request, "page", 1))


async def list_reviews(conn: asyncpg.Connection, who: Session, query: ReviewQuery) -> tuple[list[dict[str, Any]], bool]:
    """One page of the queue as JSON (staff): pending first by priority, score and age; and whether more follow."""
    access.require_staff(who)
    rows = await conn.fetch(
        LIST_REVIEWS_SQL, query.status, query.kind, REVIEWS_PER_PAGE + 1, (query.page - 1) * REVIEWS_PER_PAGE
    )
    rows = rows[: REVIEWS_PER_PAGE + 1]
    items = await reviews_json(conn, rows[:REVIEWS_PER_PAGE])
    return items, len(rows) > REVIEWS_PER_PAGE


async def get_review(conn: asyncpg.Connection, who: Session, review_id: int) -> dict[str, Any]:
    """One reviewable as JSON (staff); 404 when there is none."""
    access.require_staff(who)
    row = await conn.fetchrow(REVIEW_SQL, review_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    return (await reviews_json(conn, [row]))[0]


async def reviews_json(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Items with their flags, and for a post the posts before it (the context a moderator needs)."""
    flags = await reviews.flags_by_item(conn, rows)
    comment_rows = [row for row in rows if targets.of_review(row) is targets.COMMENT]
    comment_parts = await comments.review_parts(conn, comment_rows) if comment_rows else {}
    message_rows = [row for row in rows if targets.of_review(row) is targets.MESSAGE]
    message_parts = await conversations.review_parts(conn, message_rows) if message_rows else {}
    items = []
    for row in rows:
        found = flags.get(row["id"], [])
        if row["id"] in message_parts:
            items.append(_message_item(row, message_parts[row["id"]], found))
            continue
        if row["id"] in comment_parts:
            items.append(_comment_item(row, comment_parts[row["id"]], found))
            continue
        context = await conn.fetch(CONTEXT_SQL, row["topic_id"], row["post_number"])
        items.append(review_json(row, found, list(reversed(context))))
    for row, item in zip(rows, items, strict=True):
        item["safeguarding"] = safeguarding.item_part(row)
    return items


def _message_item(row: asyncpg.Record, part: dict[str, Any], flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A private message's item: the message and the few before it (access.reported_context_visible)."""
    item = reviews.item_json(
        row,
        writing=part["writing"],
        topic=part["topic"],
        author=reviews.author_standing(row),
        flags=flags,
        context=part["context"],
        writing_status=part["status"],
    )
    item.update(message=part["message"])
    return item


def _comment_item(row: asyncpg.Record, part: dict[str, Any], flags: list[dict[str, Any]]) -> dict[str, Any]:
    """A comment's item, in the shape of a post's (its "post" is the comment) plus comment and document."""
    item = reviews.item_json(
        row,
        writing=part["writing"],
        topic=part["topic"],
        author=reviews.author_standing(row),
        flags=flags,
        context=[],
        writing_status=part["status"],
    )
    item.update(comment=part["writing"], document=part["document"])
    return item


def _author(row: asyncpg.Record) -> dict[str, Any]:
    if row["anonymous"]:
        return dict(topics.ANONYMOUS_AUTHOR)
    return {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}


def review_json(row: asyncpg.Record, flags: list[dict[str, Any]], context: list[asyncpg.Record]) -> dict[str, Any]:
    """The shape of a post's item (moderators only). A pseudonymous post's author stays hidden until revealed."""
    writing = {
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
    }
    topic = {"id": row["topic_id"], "title": row["topic_title"], "url": f"/t/{row['topic_slug']}/{row['topic_id']}"}
    author = _author(row) if row["anonymous"] else reviews.author_standing(row)
    return reviews.item_json(
        row,
        writing=writing,
        topic=topic,
        author=author,
        flags=flags,
        context=[_context_json(c) for c in context],
        writing_status=row["post_status"],
    )


def _context_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "post_number": row["post_number"],
        "author": _author(row),
        "excerpt": markdown.excerpt(row["plain"], 300) if row["plain"] else "",
    }


# --- acting on the queue ---------------------------------------------------------------------------------


async def act(
    conn: asyncpg.Connection,
    who: Session,
    review_id: int,
    action: str,
    reason: str | None,
    *,
    outcome: str | None = None,
    note: str | None = None,
) -> None:
    """Check and apply a moderator's action on an item, whatever writing it is about; 409 when someone else
    acted first. A safeguarding item also needs what was done (`outcome`, `note`: safeguarding.OUTCOMES)."""
    access.require_staff(who)
    item = await conn.fetchrow(
        "SELECT kind, post_id, comment_id, message_id FROM forum.reviewables WHERE id = $1", review_id
    )
    if item is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    reason = topics.clean_note(reason) if reason else None
    target = targets.of_review(item)
    # The writing first, then the item: the order every writer uses, so two never wait on each other.
    writing = await flags.LOCK[target.name](conn, item[target.id_column])
    review = await reviews.lock_pending(conn, review_id)
    reviews.check_action(target, review["kind"], writing["status"], action, reason)
    done = safeguarding.check_outcome(review["kind"], outcome, note)
    if done is not None:
        await safeguarding.record_outcome(conn, who, review_id, *done)
    if target is targets.POST:
        await _act_on_post(conn, who, review, writing, action, reason)
        return
    # A comment or a private message: its new status, then the item closed.
    kept = conversations if target is targets.MESSAGE else comments
    if action in kept.NEW_STATUS:
        await kept.set_status(conn, writing, kept.NEW_STATUS[action], reason, actor_id=who.user_id)
    await reviews.close(
        conn,
        who,
        target,
        review["id"],
        kind=review["kind"],
        writing_id=writing["id"],
        action=action,
        reason=reason,
        before={"review_status": "pending", f"{target.name}_status": writing["status"]},
        status_now=kept.NEW_STATUS.get(action, writing["status"]),
    )


async def _act_on_post(
    conn: asyncpg.Connection,
    who: Session,
    review: asyncpg.Record,
    post: asyncpg.Record,
    action: str,
    reason: str | None,
) -> None:
    topic = await _topic(conn, who, post)
    before = {"review_status": "pending", "post_status": post["status"]}
    await _apply(conn, who, review["kind"], post, topic, action, reason)
    await resolve(conn, who, review["id"], review["kind"], post, topic, action, reason, before=before)


async def _topic(conn: asyncpg.Connection, who: Session, post: asyncpg.Record) -> topics.TopicContext:
    try:
        return await topics.readable_topic(conn, who, post["topic_id"])
    except ApiError:
        raise ApiError(409, "topic_deleted", "This post's topic was deleted, so the item can only be closed.") from None


async def _apply(
    conn: asyncpg.Connection,
    who: Session,
    kind: str,
    post: asyncpg.Record,
    topic: topics.TopicContext,
    action: str,
    reason: str | None,
) -> None:
    """What an action does to the post (see reviews.allowed_actions)."""
    status = post["status"]
    if action in ("approve", "restore"):
        if status in access.UNPUBLISHED:
            await moves.publish_post(conn, post, topic, actor_id=who.user_id)
        elif status == "hidden":
            await moves.restore_post(conn, post, topic, actor_id=who.user_id)
    elif action in ("reject", "hide"):
        assert reason is not None
        if status == "pending":
            await moves.reject_post(conn, post, reason=reason, actor_id=who.user_id)
        elif status == "visible":
            await moves.hide_post(conn, post, topic, reason=reason, actor_id=who.user_id)
        else:  # already hidden or rejected: the decision stands, with this reason
            await conn.execute(moves.SET_STATUS_SQL, post["id"], status, reason)
    elif action == "delete":
        await moves.remove_post(conn, post, topic, actor_id=who.user_id)


async def resolve(
    conn: asyncpg.Connection,
    who: Session,
    review_id: int,
    kind: str,
    post: asyncpg.Record,
    topic: topics.TopicContext,
    action: str,
    reason: str | None,
    *,
    before: dict[str, Any],
) -> None:
    """Close a reviewable (already locked and pending): its flags, the audit entry, the author's ReviewResolved."""
    post_now = await conn.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"])
    await reviews.close(
        conn,
        who,
        targets.POST,
        review_id,
        kind=kind,
        writing_id=post["id"],
        action=action,
        reason=reason,
        before=before,
        status_now=post_now,
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
    access.require_staff(who)
    await posts.readable_post(conn, who, post_id)
    post = await moves.lock_post(conn, post_id)
    reason = topics.clean_note(reason) if reason else None
    if action == "hide" and not reason:
        raise invalid("reason", "is needed to hide a post: its author will see it, so please write it kindly")
    topic = await _topic(conn, who, post)
    if action == "hide":
        await moves.hide_post(conn, post, topic, reason=reason or "", actor_id=who.user_id)
    else:
        await moves.restore_post(conn, post, topic, actor_id=who.user_id)
    status_now = "hidden" if action == "hide" else "visible"
    await audit.changed(conn, who, f"post.{action}", post_id, "status", post["status"], status_now, reason=reason)
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
    if not access.may_reveal_author(who):
        raise ApiError(403, "forbidden", "Only moderators can do that.")
    post, _ = await posts.readable_post(conn, who, post_id)
    if not post["anonymous"]:
        raise ApiError(409, "not_anonymous", "This post was not written anonymously: its author is shown on it.")
    await audit.record_by(conn, who, "post.reveal_author", post_id)
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
        reviews.PRIORITY_NORMAL,
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
    if not access.own_or_staff(who, post["author_id"]):
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
    access.require_staff(who)
    row = await conn.fetchrow(TARGET_SQL, user_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such member.")
    if access.member_is_staff(row["roles"]):
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
    action = "user.silence" if kind == "silenced" else "user.suspend"
    after = {"until": until, "reason": reason}
    await audit.record_by(conn, who, action, user_id, reason=reason, before=_sanction_state(target, kind), after=after)
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
    action = "user.unsilence" if kind == "silenced" else "user.unsuspend"
    after = {"until": None, "reason": None}
    await audit.record_by(conn, who, action, user_id, before=_sanction_state(target, kind), after=after)
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
    access.require_staff(who)
    row = await conn.fetchrow(MEMBER_SQL, user_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such member.")
    counts = await conn.fetchrow(MEMBER_COUNTS_SQL, user_id)
    reviews = await reviews_json(conn, list(await conn.fetch(MEMBER_REVIEWS_SQL, user_id)))
    entries = await audit.entries_about_member(conn, who, user_id)
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
