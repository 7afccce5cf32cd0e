"""Members' flags on any writing: checked once, counted against one daily allowance, gathered
into the writing's review item, and hiding the writing when members' flags weigh enough.

A safeguarding flag raises the item to the top of the queue and never hides anything: people
in distress are not silenced.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum.accounts import accounts
from services.forum.messages import conversations
from services.forum.moderation import screening
from services.forum.outbox import write_event
from services.forum.topics import moves, topics
from services.forum.writings import comments, reviews, writings
from services.forum.writings.targets import COMMENT, FLAG_REASON_LABELS, MESSAGE, POST, TARGETS, Target, Writing
from shared.events import PostFlagged
from shared.sessions import Session
from shared.web import ApiError, invalid

MEMBER_FLAG_WEIGHT = 1
STAFF_FLAG_WEIGHT = 3  # a moderator's flag weighs more: it hides a post at the default threshold
AUTO_HIDE_REASON = "Members flagged this post, so it is hidden until a moderator has looked at it."
AUTO_HIDE_REASONS = {
    POST.name: AUTO_HIDE_REASON,
    COMMENT.name: comments.AUTO_HIDE_REASON,
    MESSAGE.name: conversations.AUTO_HIDE_REASON,
}

ALREADY_SQL = {t.name: f"SELECT 1 FROM {t.flags_table} WHERE {t.id_column} = $1 AND user_id = $2" for t in TARGETS}
# A comment's flag keeps an empty note as '' (its column is NOT NULL), a post's as NULL.
_NOTE = {POST.name: "$4", COMMENT.name: "coalesce($4, '')", MESSAGE.name: "$4"}
INSERT_SQL = {
    t.name: f"INSERT INTO {t.flags_table} ({t.id_column}, user_id, reason, note, weight, reviewable_id) "
    f"VALUES ($1, $2, $3, {_NOTE[t.name]}, $5, $6) "
    f"RETURNING id, {t.id_column} AS writing_id, reason, note, created_at"
    for t in TARGETS
}
# What counts towards hiding: the item's open flags, safeguarding ones aside.
HIDING_SCORE_SQL = {
    t.name: f"SELECT coalesce(sum(weight), 0) FROM {t.flags_table} "
    "WHERE reviewable_id = $1 AND status = 'pending' AND reason <> 'safeguarding'"
    for t in TARGETS
}


def flag_weight(who: Session) -> int:
    """How much one member's flag weighs towards hiding."""
    return STAFF_FLAG_WEIGHT if who.is_staff else MEMBER_FLAG_WEIGHT


def clean_note(target: Target, note: str | None) -> str | None:
    """A flag's note as stored (None when empty); 422 when too long or holding control characters."""
    text = (note or "").replace("\r\n", "\n").strip()
    if len(text) > target.note_max:
        raise invalid("note", f"must be {target.note_max} characters or fewer")
    if accounts.has_controls(text, allow_newlines=True):
        raise invalid("note", "cannot contain control characters or text-direction marks")
    return text or None


async def check_flag(conn: asyncpg.Connection, who: Session, writing: Writing, reason: str, note: str | None) -> None:
    """Whether the viewer may flag this writing for this reason (validate before any change)."""
    noun = writing.target.name
    if writing.status != "visible":
        raise ApiError(409, "not_flaggable", f"This {noun} is not shown at the moment, so it cannot be flagged.")
    if writing.author_id == who.user_id:
        raise ApiError(403, f"own_{noun}", f"You cannot flag your own {noun}. You can edit or delete it instead.")
    if reason == "other" and not note:
        raise invalid(
            "note", "is needed when the reason is \u201csomething else\u201d: say what a moderator should know"
        )
    if await conn.fetchval(ALREADY_SQL[noun], writing.id, who.user_id):
        raise _already(noun)


ALREADY = {
    POST.name: "You have already flagged this post. A moderator will look at it.",
    COMMENT.name: "You have already flagged this comment. The moderators will look at it.",
    MESSAGE.name: "You have already reported this message. The moderators will look at it.",
}


def _already(noun: str) -> ApiError:
    return ApiError(409, "already_flagged", ALREADY[noun])


async def flag(
    conn: asyncpg.Connection,
    who: Session,
    target: Target,
    writing_id: int,
    data: dict[str, Any],
    rules: screening.PostingRules,
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Check and record a flag; it opens or raises the writing's review item, and may hide the writing.

    Returns (flag row, item row).
    """
    writing = await writings.readable(conn, who, target, writing_id)
    reason, note = data["reason"], clean_note(target, data.get("note"))
    await check_flag(conn, who, writing, reason, note)
    await screening.enforce_flag_limit(conn, who, rules)
    locked = await LOCK[target.name](conn, writing_id)
    safeguarding = reason == "safeguarding"
    kind = target.safeguarding_kind if safeguarding and target.safeguarding_kind else target.flag_kind
    review = await reviews.open_review(
        conn,
        kind=kind,
        writing=locked,
        reasons=[f"Flag: {FLAG_REASON_LABELS[reason]}"],
        priority=reviews.PRIORITY_SAFEGUARDING if safeguarding else reviews.PRIORITY_NORMAL,
        score=flag_weight(who),
    )
    row = await _insert(conn, who, target, writing_id, reason, note, review["id"])
    hide_score = rules.settings.flag_hide_score
    if not safeguarding and locked["status"] == "visible" and await _weighs(conn, target, review, hide_score):
        await HIDE[target.name](conn, who, locked, AUTO_HIDE_REASONS[target.name])
        review = await reviews.open_review(
            conn,
            kind=kind,
            writing=locked,
            reasons=[f"Hidden automatically: the flag score reached {hide_score}"],
            priority=reviews.PRIORITY_HIDDEN,
        )
    if target.events:
        await _flagged_event(conn, who, writing, reason, review, row["id"])
    return row, review


async def _weighs(conn: asyncpg.Connection, target: Target, review: asyncpg.Record, hide_score: int) -> bool:
    """Whether the item's open flags (safeguarding ones aside) now weigh enough to hide the writing."""
    score: int = await conn.fetchval(HIDING_SCORE_SQL[target.name], review["id"])
    return score >= hide_score


async def _insert(
    conn: asyncpg.Connection, who: Session, target: Target, writing_id: int, reason: str, note: str | None, item: int
) -> asyncpg.Record:
    try:
        async with conn.transaction():  # a savepoint: a double click's second flag is a clear 409
            row: asyncpg.Record = await conn.fetchrow(
                INSERT_SQL[target.name], writing_id, who.user_id, reason, note, flag_weight(who), item
            )
    except asyncpg.UniqueViolationError:
        raise _already(target.name) from None
    return row


async def _flagged_event(
    conn: asyncpg.Connection, who: Session, writing: Writing, reason: str, review: asyncpg.Record, flag_id: int
) -> None:
    await write_event(
        conn,
        PostFlagged(
            post_id=writing.id,
            topic_id=writing.container_id,
            category_id=writing.category_id or 0,
            author_id=writing.author_id,
            reason=reason,
            review_id=review["id"],
            review_kind=review["kind"],
            score=review["score"],
            priority=review["priority"],
            flag_id=flag_id,
        ),
        actor_id=who.user_id,
    )


async def _hide_post(conn: asyncpg.Connection, who: Session, post: asyncpg.Record, reason: str) -> None:
    topic = await topics.readable_topic(conn, who, post["topic_id"])
    await moves.hide_post(conn, post, topic, reason=reason, actor_id=None)


async def _hide_comment(conn: asyncpg.Connection, who: Session, comment: asyncpg.Record, reason: str) -> None:
    await comments.set_status(conn, comment, "hidden", reason, actor_id=None)


LOCK = {POST.name: moves.lock_post, COMMENT.name: comments.lock, MESSAGE.name: conversations.lock}
HIDE = {POST.name: _hide_post, COMMENT.name: _hide_comment, MESSAGE.name: conversations.hide_reported}


def flag_json(flag: asyncpg.Record, review: asyncpg.Record) -> dict[str, Any]:
    """What the member who flagged a post sees: their flag, and that it is with the moderators."""
    return {
        "id": flag["id"],
        "post_id": flag["writing_id"],
        "reason": flag["reason"],
        "note": flag["note"],
        "created_at": flag["created_at"].isoformat(),
        "review_id": review["id"],
        "message": "Thank you. A moderator will look at this post.",
    }
