"""Member controls: the choices each member makes for their own safety and comfort.

- Mute a member: no notifications from them (notify applies it from user.muted).
- Ignore a member: also their posts start folded away on topic pages.
- Content notes: posts with a content note start folded (the default) or always open.

These are private: nobody else, moderators included, is told who a member mutes or ignores.
The endpoints are in api.py; the page (/me/controls) is among moderation's pages.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum import access
from services.forum.outbox import write_event
from shared.events import UserMuted
from shared.sessions import Session
from shared.web import ApiError

LEVELS = ("muted", "ignored", "none")
LEVEL_LABELS = {
    "none": "Show their posts and notify me as usual",
    "muted": "Mute: no notifications from them",
    "ignored": "Ignore: no notifications, and fold their posts away",
}
CONTENT_NOTES = ("collapse", "show")
CONTENT_NOTE_LABELS = {
    "collapse": "Fold posts with a content note, so I choose when to open them",
    "show": "Always show posts with a content note open (the note is still shown first)",
}


# --- reading --------------------------------------------------------------------------------------


async def levels_for(conn: asyncpg.Connection, who: Session | None) -> dict[int, str]:
    """The members the viewer mutes or ignores, by id."""
    if who is None:
        return {}
    rows = await conn.fetch("SELECT muted_user_id, level FROM forum.member_mutes WHERE user_id = $1", who.user_id)
    return {row["muted_user_id"]: row["level"] for row in rows}


async def content_notes(conn: asyncpg.Connection, who: Session | None) -> str:
    """The viewer's content-note choice: "collapse" (also for visitors) or "show"."""
    if who is None:
        return "collapse"
    value: str | None = await conn.fetchval("SELECT content_notes FROM forum.users WHERE id = $1", who.user_id)
    return value or "collapse"


MEMBERS_SQL = """
SELECT m.muted_user_id, m.level, m.created_at, u.username, u.display_name
FROM forum.member_mutes m JOIN forum.users u ON u.id = m.muted_user_id
WHERE m.user_id = $1
ORDER BY lower(u.username)
"""


async def controls(conn: asyncpg.Connection, who: Session) -> dict[str, Any]:
    """The viewer's choices: content notes, and whom they mute or ignore."""
    rows = await conn.fetch(MEMBERS_SQL, who.user_id)
    return {
        "content_notes": await content_notes(conn, who),
        "members": [
            {
                "user": {"id": row["muted_user_id"], "username": row["username"], "display_name": row["display_name"]},
                "level": row["level"],
                "since": row["created_at"].isoformat(),
            }
            for row in rows
        ],
    }


# --- changing -------------------------------------------------------------------------------------


async def set_level(conn: asyncpg.Connection, who: Session, user_id: int, level: str) -> dict[str, Any]:
    """Mute, ignore, or stop muting a member; records user.muted when something changed."""
    if level not in LEVELS:
        raise ApiError(422, "invalid", "Some fields need attention.", {"level": f"must be one of: {', '.join(LEVELS)}"})
    if user_id == who.user_id:
        raise ApiError(422, "invalid", "You cannot mute or ignore yourself.", {"level": "cannot apply to yourself"})
    target = await conn.fetchrow("SELECT id, username, roles FROM forum.users WHERE id = $1", user_id)
    if target is None:
        raise ApiError(404, "not_found", "There is no such member.")
    if level != "none" and access.member_is_staff(target["roles"]):
        raise ApiError(
            409,
            "is_staff",
            "Moderators cannot be muted or ignored: what they write may be about your safety or your account.",
        )
    if level == "none":
        changed = await conn.fetchval(
            "DELETE FROM forum.member_mutes WHERE user_id = $1 AND muted_user_id = $2 RETURNING level",
            who.user_id,
            user_id,
        )
    else:
        changed = await conn.fetchval(
            "INSERT INTO forum.member_mutes (user_id, muted_user_id, level) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id, muted_user_id) DO UPDATE SET level = EXCLUDED.level "
            "WHERE forum.member_mutes.level <> EXCLUDED.level RETURNING level",
            who.user_id,
            user_id,
            level,
        )
    if changed is not None:
        await write_event(
            conn, UserMuted(user_id=who.user_id, muted_user_id=user_id, level=level), actor_id=who.user_id
        )
    return {"user_id": user_id, "username": target["username"], "level": level}


async def set_content_notes(conn: asyncpg.Connection, who: Session, value: str) -> None:
    """Choose whether posts with a content note start folded or open."""
    if value not in CONTENT_NOTES:
        raise ApiError(
            422,
            "invalid",
            "Some fields need attention.",
            {"content_notes": f"must be one of: {', '.join(CONTENT_NOTES)}"},
        )
    await conn.execute("UPDATE forum.users SET content_notes = $2 WHERE id = $1", who.user_id, value)
