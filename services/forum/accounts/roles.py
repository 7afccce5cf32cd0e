"""Roles: admins make a member a moderator or an admin, and take the role back, with a reason the
member is told. Stored roles are ['member'], ['member', 'moderator'] or ['member', 'admin'].

One transaction checks and changes: the admins' rows are locked first (in id order), so two admins
demoting each other, or themselves, at once cannot leave the community without an admin; then the
roles, the audit entry (user.role_change), user.role_changed (notify tells the member) and
user.updated (live takes staff channels from open sockets). After commit the member's sessions and
API tokens carry the new roles on their very next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.forum import access
from services.forum.accounts import accounts
from services.forum.moderation import audit
from services.forum.outbox import write_event
from shared.events import UserRoleChanged
from shared.sessions import Session
from shared.web import ApiError, Runtime, invalid

ROLES = ("member", "moderator", "admin")
ROLE_NAMES = {"member": "Member", "moderator": "Moderator", "admin": "Admin"}
STORED_ROLES = {"member": ["member"], "moderator": ["member", "moderator"], "admin": ["member", "admin"]}
RANK = {"member": 0, "moderator": 1, "admin": 2}
REASON_MIN, REASON_MAX = 3, 500


def role_of(roles: list[str] | tuple[str, ...]) -> str:
    """A member's one role, from their stored roles: admin, moderator or member."""
    if "admin" in roles:
        return "admin"
    if "moderator" in roles:
        return "moderator"
    return "member"


# role_of in SQL, over a roles column, e.g. ROLE_SQL.format(roles="u.roles").
ROLE_SQL = (
    "(CASE WHEN 'admin' = ANY({roles}) THEN 'admin' WHEN 'moderator' = ANY({roles}) THEN 'moderator' ELSE 'member' END)"
)

# Every admin's row, locked in id order: whoever changes a role waits here for anyone else doing so.
# A row demoted meanwhile is left out once its change commits (PostgreSQL checks the row again).
LOCK_ADMINS_SQL = "SELECT id FROM forum.users WHERE 'admin' = ANY(roles) ORDER BY id FOR UPDATE"
TARGET_SQL = """
SELECT id, username, display_name, roles, suspended_until, silenced_until
FROM forum.users WHERE id = $1 FOR UPDATE
"""
# A member who is no longer staff is no longer a safeguarding lead either (access.may_hold_safeguarding_duty).
SET_ROLES_SQL = (
    "UPDATE forum.users SET roles = $2, safeguarding_lead = safeguarding_lead AND $3, updated_at = now() WHERE id = $1"
)
DUTY_TARGET_SQL = (
    "SELECT id, username, display_name, roles, safeguarding_lead FROM forum.users WHERE id = $1 FOR UPDATE"
)
SET_DUTY_SQL = "UPDATE forum.users SET safeguarding_lead = $2, updated_at = now() WHERE id = $1"


@dataclass(frozen=True)
class RoleChange:
    """A role change that was made: whose, from what to what."""

    user_id: int
    username: str
    before: str
    after: str
    roles: list[str]


def clean_reason(reason: str | None) -> str:
    """The reason on one line, blanks collapsed; 422 when missing, too short or too long."""
    text = " ".join((reason or "").split())
    if not text:
        raise invalid("reason", "is required: the member is told why")
    if len(text) < REASON_MIN:
        raise invalid("reason", f"is too short: say why in a few words (at least {REASON_MIN} characters)")
    if len(text) > REASON_MAX:
        raise invalid("reason", f"must be at most {REASON_MAX} characters")
    return text


def check_role(role: str | None) -> str:
    """One of member, moderator, admin (422 otherwise)."""
    if role not in ROLES:
        raise invalid("role", "must be member, moderator or admin")
    return role


def _sanctioned(target: asyncpg.Record, now: datetime) -> str | None:
    """ "suspended" or "silenced" while the member is, else None."""
    for kind in ("suspended", "silenced"):
        until = target[f"{kind}_until"]
        if until is not None and until > now:
            return kind
    return None


async def _lock(conn: asyncpg.Connection, who: Session, user_id: int) -> tuple[list[int], asyncpg.Record]:
    """The admins' ids and the member's row, both locked (admins first: the same order for everyone)."""
    admins = [row["id"] for row in await conn.fetch(LOCK_ADMINS_SQL)]
    if who.user_id not in admins:
        raise ApiError(403, "forbidden", "Only admins can change a member's role, and you are no longer an admin.")
    target = await conn.fetchrow(TARGET_SQL, user_id)
    if target is None:
        raise access.not_found("that member")
    return admins, target


def _check_change(target: asyncpg.Record, admins: list[int], role: str) -> str:
    """The member's role now, if it may become `role` (409 with the reason otherwise)."""
    current = role_of(target["roles"])
    if current == role:
        raise ApiError(409, "same_role", f"{target['display_name']} is already {_a(role)}. Nothing was changed.")
    if current == "admin" and admins == [target["id"]]:
        raise ApiError(
            409,
            "last_admin",
            f"{target['display_name']} is the only admin. Make someone else an admin first, so the community "
            "always has one.",
        )
    sanction = _sanctioned(target, datetime.now(UTC))
    if sanction and RANK[role] > RANK[current]:
        raise ApiError(
            409,
            "sanctioned",
            f"{target['display_name']} is {sanction} at the moment, so they cannot be given a staff role. "
            f"End the {'suspension' if sanction == 'suspended' else 'silence'} first if you are sure.",
        )
    return current


def _a(role: str) -> str:
    return {"member": "a member without a staff role", "moderator": "a moderator", "admin": "an admin"}[role]


async def change_role(
    conn: asyncpg.Connection, who: Session, user_id: int, role: str | None, reason: str | None
) -> RoleChange:
    """Check, then make a member a moderator, an admin or a member again, in the caller's transaction:
    roles, audit entry and events. Admins only; refresh_member_sessions after commit."""
    access.require_admin(who, "Only admins can change a member's role.")
    role = check_role(role)
    reason = clean_reason(reason)
    admins, target = await _lock(conn, who, user_id)
    current = _check_change(target, admins, role)
    previous, roles = list(target["roles"]), STORED_ROLES[role]
    await conn.execute(SET_ROLES_SQL, user_id, roles, access.may_hold_safeguarding_duty(roles))
    await audit.record_by(
        conn,
        who,
        "user.role_change",
        user_id,
        reason=reason,
        before={"roles": previous},
        after={"roles": roles, "role": role},
    )
    event = UserRoleChanged(user_id=user_id, roles=roles, previous_roles=previous, reason=reason)
    await write_event(conn, event, actor_id=who.user_id)
    user = await accounts.user_by_id(conn, user_id)
    assert user is not None
    await write_event(conn, accounts.updated_event(user), actor_id=who.user_id)
    return RoleChange(user_id, target["username"], current, role, roles)


async def change_role_now(rt: Runtime, who: Session, user_id: int, role: str | None, reason: str | None) -> RoleChange:
    """change_role in a transaction of its own, then the member's sessions and API tokens carry the
    new roles at once."""
    async with rt.pool.acquire() as conn, conn.transaction():
        change = await change_role(conn, who, user_id, role, reason)
    await accounts.refresh_sessions(rt, user_id)
    return change


# --- the safeguarding lead duty -----------------------------------------------------------------------


async def change_duty(
    conn: asyncpg.Connection, who: Session, user_id: int, lead: bool, reason: str | None
) -> asyncpg.Record:
    """Check, then make a moderator or admin a safeguarding lead (mailed about every safeguarding item, as
    well as notified), or take the duty back, in the caller's transaction: audited, the member told.

    Admins only. The duty gives no access of its own (only staff hold it), so sessions need no refresh."""
    access.require_admin(who, "Only admins can change who is a safeguarding lead.")
    reason = clean_reason(reason)
    target = await conn.fetchrow(DUTY_TARGET_SQL, user_id)
    if target is None:
        raise access.not_found("that member")
    if target["safeguarding_lead"] == lead:
        already = "already" if lead else "not"
        raise ApiError(
            409, "same_duty", f"{target['display_name']} is {already} a safeguarding lead. Nothing was changed."
        )
    if lead and not access.may_hold_safeguarding_duty(target["roles"]):
        raise ApiError(
            409,
            "not_staff",
            f"{target['display_name']} is not a moderator or an admin. Only staff can be safeguarding leads, "
            "so that safeguarding items stay among staff: make them a moderator first.",
        )
    await conn.execute(SET_DUTY_SQL, user_id, lead)
    await audit.record_by(
        conn,
        who,
        "user.safeguarding_lead",
        user_id,
        reason=reason,
        before={"safeguarding_lead": not lead},
        after={"safeguarding_lead": lead},
    )
    roles = list(target["roles"])
    event = UserRoleChanged(
        user_id=user_id, roles=roles, previous_roles=roles, reason=reason, duty="safeguarding_lead", duty_held=lead
    )
    await write_event(conn, event, actor_id=who.user_id)
    row: asyncpg.Record = await conn.fetchrow(DUTY_TARGET_SQL, user_id)
    return row
