"""Consent in private messages: who may start a conversation with a member (their choice), and the
members they blocked. The rules are access.py's (may_message); this module holds the SQL and actions.

Nothing the blocked member can see says they are blocked: a refusal to start a conversation with
someone who blocked them reads the same as "this member is not taking new messages".
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum import access
from shared.sessions import Session
from shared.web import ApiError, invalid

NOT_TAKING_MESSAGES = "{name} is not taking new messages at the moment."

POLICY_SQL = "SELECT who_may_message FROM forum.users WHERE id = $1"
SET_POLICY_SQL = "UPDATE forum.users SET who_may_message = $2 WHERE id = $1 RETURNING who_may_message"
BLOCKED_SQL = "SELECT EXISTS (SELECT 1 FROM forum.member_blocks WHERE blocker_id = $1 AND blocked_id = $2)"
BLOCK_SQL = """
INSERT INTO forum.member_blocks (blocker_id, blocked_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING created_at
"""
UNBLOCK_SQL = "DELETE FROM forum.member_blocks WHERE blocker_id = $1 AND blocked_id = $2 RETURNING blocked_id"
BLOCKS_SQL = """
SELECT u.id, u.username, u.display_name, b.created_at
FROM forum.member_blocks b JOIN forum.users u ON u.id = b.blocked_id
WHERE b.blocker_id = $1
ORDER BY lower(u.username)
"""
# Of these members ($2), those who blocked $1.
BLOCKERS_SQL = "SELECT blocker_id FROM forum.member_blocks WHERE blocked_id = $1 AND blocker_id = ANY($2::bigint[])"
MEMBER_BY_NAME_SQL = """
SELECT id, username, display_name, who_may_message FROM forum.users
WHERE lower(username) = lower($1)
"""

POLICY_LABELS = {
    "anyone": "Any member",
    "talked": "Only members I have talked with in public, or already share a conversation with",
    "nobody": "Nobody",
}
POLICY_HINTS = {
    "anyone": "Any signed-in member can start a private conversation with you.",
    "talked": "Members whose posts you replied to, or who replied to yours, and members you already share a "
    "conversation with.",
    "nobody": "Nobody can start a new conversation with you. You can still write to others.",
}


def check_policy(value: Any) -> str:
    """422 for a choice there is not."""
    if value not in access.WHO_MAY_MESSAGE:
        raise invalid("who_may_message", f"must be one of: {', '.join(access.WHO_MAY_MESSAGE)}")
    return str(value)


async def policy(conn: asyncpg.Connection, who: Session) -> str:
    """The viewer's own choice of who may start a conversation with them."""
    found: str = await conn.fetchval(POLICY_SQL, who.user_id)
    return found


async def set_policy(conn: asyncpg.Connection, who: Session, value: Any) -> str:
    """Change who may start a conversation with the viewer."""
    chosen: str = await conn.fetchval(SET_POLICY_SQL, who.user_id, check_policy(value))
    return chosen


async def member_by_name(conn: asyncpg.Connection, username: str, field: str = "username") -> asyncpg.Record:
    """A member by username (case-insensitive); 422 naming the field when there is none."""
    row = await conn.fetchrow(MEMBER_BY_NAME_SQL, username.strip().lstrip("@")) if username.strip() else None
    if row is None:
        raise invalid(field, f"We could not find a member called \u201c{username}\u201d.")
    return row


async def check_may_message(conn: asyncpg.Connection, who: Session, member: asyncpg.Record, field: str) -> None:
    """403 when the viewer may not start a conversation with (or invite) this member: their choice, or a
    block, which reads the same."""
    blocked = await conn.fetchval(BLOCKED_SQL, member["id"], who.user_id)
    talked = member["who_may_message"] == "talked" and await conn.fetchval(access.TALKED_SQL, who.user_id, member["id"])
    if not access.may_message(policy=member["who_may_message"], blocked=blocked, talked=talked, outreach=False):
        message = NOT_TAKING_MESSAGES.format(name=member["display_name"] or member["username"])
        raise ApiError(403, "not_taking_messages", message, {field: message})


async def has_blocked(conn: asyncpg.Connection, blocker_id: int, blocked_id: int) -> bool:
    """Whether one member blocked another (only the blocker is ever shown this)."""
    found: bool = await conn.fetchval(BLOCKED_SQL, blocker_id, blocked_id)
    return found


async def blockers_among(conn: asyncpg.Connection, author_id: int, member_ids: list[int]) -> set[int]:
    """Which of these members blocked the author."""
    return {row["blocker_id"] for row in await conn.fetch(BLOCKERS_SQL, author_id, member_ids)}


async def block(conn: asyncpg.Connection, who: Session, username: str) -> tuple[bool, asyncpg.Record]:
    """Block a member: (True, them) when newly blocked, (False, them) when they already were."""
    member = await _other(conn, who, username)
    created = await conn.fetchval(BLOCK_SQL, who.user_id, member["id"])
    return created is not None, member


async def unblock(conn: asyncpg.Connection, who: Session, username: str) -> None:
    """Unblock a member; 404 when they were not blocked."""
    member = await _other(conn, who, username)
    if await conn.fetchval(UNBLOCK_SQL, who.user_id, member["id"]) is None:
        raise ApiError(404, "not_found", "You have not blocked that member.")


async def _other(conn: asyncpg.Connection, who: Session, username: str) -> asyncpg.Record:
    row = await conn.fetchrow(MEMBER_BY_NAME_SQL, username)
    if row is None:
        raise access.not_found("that member")
    if row["id"] == who.user_id:
        raise invalid("username", "You cannot block yourself.")
    return row


async def blocks(conn: asyncpg.Connection, who: Session) -> list[dict[str, Any]]:
    """The members the viewer blocked, by name."""
    return [block_json(row) for row in await conn.fetch(BLOCKS_SQL, who.user_id)]


def block_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "user": {"id": row["id"], "username": row["username"], "display_name": row["display_name"]},
        "created_at": row["created_at"].isoformat(),
    }
