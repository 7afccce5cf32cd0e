"""The safeguarding loop: alerting staff when a safeguarding item opens and again while nobody has
picked it up, "I'm looking at this" (pick up, put down, take over), what was done when it closes, and
the count of items waiting that staff see in the header.

The forum decides who is alerted (access.SAFEGUARDING_RECIPIENTS_SQL: moderators and safeguarding
leads, and from the second round admins too) and writes SafeguardingAlerted in the same transaction
as the change; notify only tells them (and mails the leads). The re-alert loop runs in every replica:
one UPDATE ... RETURNING claims the items that are due, so each round is alerted once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from services.forum.writings.targets import SAFEGUARDING_KINDS
from shared.events import SafeguardingAlerted, SafeguardingPickedUp, SafeguardingResolved
from shared.sessions import Session
from shared.web import ApiError, Runtime, invalid

OUTCOMES = {
    "reached_out": "Reached out to them",
    "signposted": "Signposted to support",
    "escalated": "Escalated outside the community",
    "no_action": "No action needed",
}
OUTCOME_HINTS = {
    "reached_out": "A moderator contacted the member privately.",
    "signposted": "The member was pointed to support (Samaritans, Shout, NHS 111, 999, their GP).",
    "escalated": "Someone outside the community was told, such as emergency services or a safeguarding team.",
    "no_action": "On reading it, nobody needed to do anything more.",
}
NOTE_MAX = 2000
# The re-alert loop looks this often, as a share of the re-alert delay (so it fires within ~10% late),
# and never less often than every MAX_CHECK_S.
CHECK_SHARE = 0.05
MIN_CHECK_S, MAX_CHECK_S = 0.05, 30.0


# --- alerts ------------------------------------------------------------------------------------------

# The writing an item is about, for the alert: a post in its topic, or a private message in its conversation.
ABOUT_SQL = """
SELECT r.id, r.kind, r.alert_round, r.post_id, r.topic_id, t.title AS topic_title, r.message_id, m.conversation_id
FROM forum.reviewables r
LEFT JOIN forum.topics t ON t.id = r.topic_id
LEFT JOIN forum.messages m ON m.id = r.message_id
WHERE r.id = ANY($1::bigint[])
ORDER BY r.id
"""
# A safeguarding item that has just become pending (opened, or reopened: open_review set its round to 0).
CLAIM_FIRST_ALERT_SQL = """
UPDATE forum.reviewables SET alert_round = 1, alerted_at = now()
WHERE id = $1 AND status = 'pending' AND alert_round = 0 AND kind = ANY($2::text[])
RETURNING id
"""
# Items still pending, not picked up, last alerted at least $2 seconds ago: the next round, claimed at once
# (a replica that finds one locked skips it; one that waited sees the new alerted_at and leaves it). An item
# never alerted (waiting since before alerts existed: an opening transaction alerts its own) gets round 1.
CLAIM_DUE_SQL = """
UPDATE forum.reviewables r SET alert_round = r.alert_round + 1, alerted_at = now()
FROM (
    SELECT id FROM forum.reviewables
    WHERE status = 'pending' AND kind = ANY($1::text[]) AND picked_up_by IS NULL
      AND (alert_round = 0 OR alerted_at <= now() - make_interval(secs => $2))
    ORDER BY alerted_at
    LIMIT 100
    FOR UPDATE SKIP LOCKED
) due
WHERE r.id = due.id
RETURNING r.id
"""


async def alert_opened(conn: asyncpg.Connection, review_id: int) -> bool:
    """Alert staff about an item that has just become pending (round 1), unless it was alerted already.

    Called by reviews.open_review in the transaction that opened the item."""
    claimed = await conn.fetchval(CLAIM_FIRST_ALERT_SQL, review_id, list(SAFEGUARDING_KINDS))
    if claimed is None:
        return False
    await _alert(conn, [review_id])
    return True


async def realert_due(conn: asyncpg.Connection, delay_minutes: float) -> list[int]:
    """Alert again (admins too) about every item nobody picked up within `delay_minutes` of its last alert."""
    rows = await conn.fetch(CLAIM_DUE_SQL, list(SAFEGUARDING_KINDS), delay_minutes * 60)
    ids = [row["id"] for row in rows]
    if ids:
        await _alert(conn, ids)
    return ids


async def _alert(conn: asyncpg.Connection, review_ids: Sequence[int]) -> None:
    """SafeguardingAlerted for each item at its round now: moderators and leads, from round 2 admins too."""
    recipients: dict[bool, list[asyncpg.Record]] = {}
    for row in await conn.fetch(ABOUT_SQL, list(review_ids)):
        later = row["alert_round"] > 1
        if later not in recipients:
            recipients[later] = await conn.fetch(access.SAFEGUARDING_RECIPIENTS_SQL, later)
        people = recipients[later]
        event = SafeguardingAlerted(
            review_id=row["id"],
            round=row["alert_round"],
            recipient_ids=[p["id"] for p in people],
            email_ids=[p["id"] for p in people if p["lead"]],
            post_id=row["post_id"],
            topic_id=row["topic_id"],
            topic_title=row["topic_title"],
            message_id=row["message_id"],
            conversation_id=row["conversation_id"],
        )
        await write_event(conn, event, actor_id=None)


def check_interval_s(delay_minutes: float) -> float:
    """How long the re-alert loop waits between looks, for a re-alert delay."""
    return min(max(delay_minutes * 60 * CHECK_SHARE, MIN_CHECK_S), MAX_CHECK_S)


async def realert_loop(rt: Runtime, stop: asyncio.Event) -> None:
    """Alert again about safeguarding items nobody picked up in time (safe in every replica).

    The delay is read from the runtime on every look, so it follows what admins set."""
    while not stop.is_set():
        delay_minutes = rt.settings.safeguarding_realert_minutes
        async with rt.pool.acquire() as conn, conn.transaction():
            await realert_due(conn, delay_minutes)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=check_interval_s(delay_minutes))


# --- "I'm looking at this" ---------------------------------------------------------------------------------

LOCK_SQL = """
SELECT r.id, r.kind, r.status, r.picked_up_by, r.picked_up_at, u.username AS holder_username,
       u.display_name AS holder_display_name
FROM forum.reviewables r LEFT JOIN forum.users u ON u.id = r.picked_up_by
WHERE r.id = $1 FOR UPDATE OF r
"""
SET_HOLDER_SQL = """
UPDATE forum.reviewables SET picked_up_by = $2, picked_up_at = CASE WHEN $2::bigint IS NULL THEN NULL ELSE now() END
WHERE id = $1
RETURNING picked_up_at
"""


async def _lock_open_item(conn: asyncpg.Connection, who: Session, review_id: int) -> asyncpg.Record:
    """The item, locked: a safeguarding item still waiting (404 when there is none; 409 otherwise)."""
    if not access.may_pick_up(who):
        raise ApiError(403, "forbidden", "Only moderators can do that.")
    item = await conn.fetchrow(LOCK_SQL, review_id)
    if item is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    if item["kind"] not in SAFEGUARDING_KINDS:
        raise ApiError(409, "not_safeguarding", "Only safeguarding items are picked up.")
    if item["status"] != "pending":
        raise ApiError(409, "already_resolved", "This item has already been dealt with. Nothing was changed.")
    return item


def _holder(item: asyncpg.Record) -> str:
    return f"{item['holder_display_name']} (@{item['holder_username']})"


async def pick_up(conn: asyncpg.Connection, who: Session, review_id: int, *, take_over: bool = False) -> bool:
    """Say "I'm looking at this" (staff); re-alerts stop. Another's item only with `take_over` (409 without).

    Returns whether anything changed (picking up one's own item again changes nothing)."""
    item = await _lock_open_item(conn, who, review_id)
    holder = item["picked_up_by"]
    if holder == who.user_id:
        return False
    if holder is not None and not take_over:
        raise ApiError(
            409,
            "picked_up",
            f"{_holder(item)} is already looking at this. Take it over only if you have agreed it with them "
            "or they are not around.",
        )
    await conn.execute(SET_HOLDER_SQL, review_id, who.user_id)
    action = "review.take_over" if holder is not None else "review.pick_up"
    await audit.record_by(
        conn, who, action, review_id, before={"picked_up_by": holder}, after={"picked_up_by": who.user_id}
    )
    event = SafeguardingPickedUp(review_id=review_id, moderator_id=who.user_id, moderator_username=who.username)
    await write_event(conn, event, actor_id=who.user_id)
    return True


async def put_down(conn: asyncpg.Connection, who: Session, review_id: int) -> None:
    """Stop looking at an item one picked up (its alerts start again from now); 409 for anyone else's."""
    item = await _lock_open_item(conn, who, review_id)
    if item["picked_up_by"] is None:
        raise ApiError(409, "not_picked_up", "Nobody is looking at this item. Nothing was changed.")
    if item["picked_up_by"] != who.user_id:
        raise ApiError(409, "picked_up", f"{_holder(item)} is looking at this, not you. Nothing was changed.")
    await conn.execute(SET_HOLDER_SQL, review_id, None)
    # Put down, it waits for someone again: the next alert comes a full delay from now.
    await conn.execute("UPDATE forum.reviewables SET alerted_at = now() WHERE id = $1", review_id)
    await audit.record_by(conn, who, "review.put_down", review_id, before={"picked_up_by": who.user_id}, after={})
    event = SafeguardingPickedUp(review_id=review_id, moderator_id=None, moderator_username=None)
    await write_event(conn, event, actor_id=who.user_id)


# --- what was done -----------------------------------------------------------------------------------------


def check_outcome(kind: str, outcome: str | None, note: str | None) -> tuple[str, str] | None:
    """What was done about a safeguarding item, required when closing one (422 otherwise); None for other kinds."""
    if kind not in SAFEGUARDING_KINDS:
        return None
    if outcome not in OUTCOMES:
        raise invalid(
            "outcome",
            "is needed for a safeguarding item: say what was done (reached out, signposted, "
            "escalated outside the community, or no action)",
        )
    text = (note or "").strip()
    if not text:
        raise invalid("note", "is needed for a safeguarding item: a few words on what was done, for the other staff")
    if len(text) > NOTE_MAX:
        raise invalid("note", f"must be at most {NOTE_MAX} characters")
    return outcome, text


async def record_outcome(conn: asyncpg.Connection, who: Session, review_id: int, outcome: str, note: str) -> None:
    """Keep what was done on a safeguarding item being closed (in the closing transaction): audited, an event."""
    await conn.execute(
        "UPDATE forum.reviewables SET outcome = $2, outcome_note = $3 WHERE id = $1", review_id, outcome, note
    )
    await audit.record_by(conn, who, "review.safeguarding_outcome", review_id, reason=note, after={"outcome": outcome})
    event = SafeguardingResolved(review_id=review_id, outcome=outcome, moderator_id=who.user_id)
    await write_event(conn, event, actor_id=who.user_id)


# --- the shape, and the count --------------------------------------------------------------------------------


def item_part(row: asyncpg.Record) -> dict[str, Any] | None:
    """A safeguarding item's alerts, who is looking at it and what was done (None for other kinds).

    `row` from moderation's review select (picked_up_*, alert_round, alerted_at, outcome, holder names)."""
    if row["kind"] not in SAFEGUARDING_KINDS:
        return None
    picked: dict[str, Any] | None = None
    if row["picked_up_by"] is not None:
        picked = {
            "by": {
                "id": row["picked_up_by"],
                "username": row["holder_username"],
                "display_name": row["holder_display_name"],
            },
            "at": _iso(row["picked_up_at"]),
        }
    return {
        "alert_round": row["alert_round"],
        "alerted_at": _iso(row["alerted_at"]),
        "picked_up": picked,
        "outcome": row["outcome"],
        "outcome_label": OUTCOMES.get(row["outcome"] or ""),
        "outcome_note": row["outcome_note"],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


COUNTS_SQL = """
SELECT count(*) AS waiting, count(*) FILTER (WHERE kind = ANY($1::text[])) AS safeguarding
FROM forum.reviewables WHERE status = 'pending'
"""


async def counts(conn: asyncpg.Connection, who: Session) -> dict[str, int]:
    """How many items wait in the review queue, and how many of them are about safeguarding (staff)."""
    if not access.may_see_review_counts(who):
        raise ApiError(403, "forbidden", "Only moderators can do that.")
    row = await conn.fetchrow(COUNTS_SQL, list(SAFEGUARDING_KINDS))
    return {"waiting": row["waiting"], "safeguarding": row["safeguarding"]}


def count_label(found: dict[str, int]) -> str:
    """The header count's words for a screen reader: "3 waiting, 1 about safeguarding"."""
    words = f"{found['waiting']} waiting"
    if found["safeguarding"]:
        words += f", {found['safeguarding']} about safeguarding"
    return words
