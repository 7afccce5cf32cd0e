"""Groups: open (anyone joins), on request (an owner approves) and private (by invitation,
invisible to outsiders); their members and owners, requests to join, and invitations by
email: the rules, SQL, actions and events (api.py is the JSON API, pages.py the pages).

Categories and library folders name the groups that may read them (access.py). A
member's group ids live in their sessions, so every change of membership rewrites the
member's live sessions (accounts.refresh_sessions) and records user.updated with the
new groups, which notify keeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import asyncpg

from services.forum import access
from services.forum.accounts import accounts, mails
from services.forum.outbox import write_event
from services.forum.topics.categories import slugify
from shared import ratelimit
from shared.events import Event, GroupMemberAdded, GroupMemberRemoved
from shared.sessions import Session
from shared.web import ApiError, Runtime, invalid

ACCESS = ("open", "request", "private")
ACCESS_LABELS = {
    "open": "Open: anyone can join",
    "request": "On request: an owner approves each request to join",
    "private": "Private: by invitation only, and hidden from everyone else",
}
NAME_MAX, DESCRIPTION_MAX, MESSAGE_MAX = 60, 1000, 500
SLUG_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
RESERVED_SLUGS = frozenset({"new", "invitations"})  # page paths under /groups/
MEMBERS_PER_PAGE = 50
INVITE_TTL = timedelta(days=14)
INVITE = ratelimit.Limit(  # invitations one person may send an hour
    "group-invite",
    limit=50,
    window_s=3600,
    message="You have sent a lot of invitations in the last hour. Please try again later.",
)


@dataclass(frozen=True)
class Viewing:
    """A group as one viewer sees it: the row, and the viewer's place in it."""

    group: asyncpg.Record
    who: Session | None
    member: bool
    owner: bool
    requested: bool

    @property
    def id(self) -> int:
        gid: int = self.group["id"]
        return gid

    @property
    def can_manage(self) -> bool:
        """Owners and admins approve requests, add, remove and invite members, and edit the group."""
        return access.may_manage_group(self.who, self.owner)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "We could not find that group.")


def group_url(group: asyncpg.Record) -> str:
    return f"/groups/{group['slug']}"


# --- SQL ----------------------------------------------------------------------------------------------

_GROUP_COLUMNS = """g.id, g.name, g.slug, g.description, g.access, g.created_at,
    (SELECT count(*) FROM forum.group_members m WHERE m.group_id = g.id) AS members_count"""

LIST_VISIBLE_SQL = f"""
SELECT {_GROUP_COLUMNS} FROM forum.groups g
WHERE {access.GROUP_VISIBLE_SQL.format(user="$1", staff="$2")}
ORDER BY lower(g.name), g.id
"""
PLACE_SQL = """
SELECT (SELECT owner FROM forum.group_members WHERE group_id = $1 AND user_id = $2) AS owner,
       EXISTS (SELECT 1 FROM forum.group_requests WHERE group_id = $1 AND user_id = $2) AS requested
"""
MEMBERS_SQL = """
SELECT u.id, u.username, u.display_name, m.owner, m.created_at
FROM forum.group_members m JOIN forum.users u ON u.id = m.user_id
WHERE m.group_id = $1 AND ($4::boolean IS NULL OR m.owner = $4)
ORDER BY m.owner DESC, lower(u.display_name), u.id
LIMIT $2 OFFSET $3
"""
REQUESTS_SQL = """
SELECT u.id, u.username, u.display_name, r.message, r.created_at
FROM forum.group_requests r JOIN forum.users u ON u.id = r.user_id
WHERE r.group_id = $1 ORDER BY r.created_at, u.id
"""
INVITES_SQL = """
SELECT i.id, i.email, i.created_at, i.expires_at, u.username AS invited_by
FROM forum.group_invites i LEFT JOIN forum.users u ON u.id = i.invited_by
WHERE i.group_id = $1 AND i.used_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
ORDER BY i.created_at DESC, i.id DESC
"""


async def fetch_group(conn: asyncpg.Connection, group_id: int) -> asyncpg.Record | None:
    """One group by id, whoever may see it."""
    return await conn.fetchrow(f"SELECT {_GROUP_COLUMNS} FROM forum.groups g WHERE g.id = $1", group_id)


async def fetch_group_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """One group by slug, whoever may see it."""
    if len(slug) > 100:
        return None
    return await conn.fetchrow(f"SELECT {_GROUP_COLUMNS} FROM forum.groups g WHERE g.slug = $1", slug)


async def list_visible(conn: asyncpg.Connection, who: Session | None) -> list[asyncpg.Record]:
    """Every group the viewer may see: open and on-request ones, and private ones they are in (staff: all)."""
    return list(await conn.fetch(LIST_VISIBLE_SQL, *access.shown_params(who)))


async def viewing(conn: asyncpg.Connection, who: Session | None, group: asyncpg.Record | None) -> Viewing:
    """The group with the viewer's place in it; 404 when there is none or it is private to them."""
    if group is None:
        raise not_found()
    place = await conn.fetchrow(PLACE_SQL, group["id"], who.user_id if who else 0)
    member = place["owner"] is not None
    if not access.group_visible(who, group["access"], member):
        raise not_found()
    return Viewing(group, who, member, bool(place["owner"]), bool(place["requested"]))


async def viewing_id(conn: asyncpg.Connection, who: Session | None, group_id: int) -> Viewing:
    return await viewing(conn, who, await fetch_group(conn, group_id))


async def members(
    conn: asyncpg.Connection,
    group_id: int,
    *,
    page: int = 1,
    owners: bool | None = None,
    per_page: int = MEMBERS_PER_PAGE,
) -> tuple[list[asyncpg.Record], bool]:
    """A page of members, owners first; and whether there is another page."""
    rows = await conn.fetch(MEMBERS_SQL, group_id, per_page + 1, (page - 1) * per_page, owners)
    return list(rows[:per_page]), len(rows) > per_page


async def pending_requests(conn: asyncpg.Connection, group_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(REQUESTS_SQL, group_id))


async def pending_invites(conn: asyncpg.Connection, group_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(INVITES_SQL, group_id))


async def existing_group_ids(conn: asyncpg.Connection, group_ids: Sequence[int]) -> list[int]:
    """The given ids that are groups, sorted; for categories and folders that belong to groups."""
    rows = await conn.fetch("SELECT id FROM forum.groups WHERE id = ANY($1::bigint[]) ORDER BY id", list(group_ids))
    return [row["id"] for row in rows]


async def check_group_ids(
    conn: asyncpg.Connection, group_ids: Sequence[int] | None, field: str = "group_ids"
) -> list[int]:
    """Sorted unique group ids, 422 naming `field` when one is not a group."""
    wanted = sorted(set(group_ids or []))
    if any(not 0 < g < access.MAX_ID for g in wanted) or await existing_group_ids(conn, wanted) != wanted:
        raise invalid(field, "must be ids of existing groups")
    return wanted


async def group_names(conn: asyncpg.Connection, group_ids: Sequence[int]) -> dict[int, str]:
    rows = await conn.fetch("SELECT id, name FROM forum.groups WHERE id = ANY($1::bigint[])", list(group_ids))
    return {row["id"]: row["name"] for row in rows}


async def insert_member(
    conn: asyncpg.Connection, group_id: int, user_id: int, *, owner: bool, added_by: int | None
) -> bool:
    """Add a member; False when they already were one (nothing changes then)."""
    added = await conn.fetchval(
        "INSERT INTO forum.group_members (group_id, user_id, owner, added_by) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING user_id",
        group_id,
        user_id,
        owner,
        added_by,
    )
    await conn.execute("DELETE FROM forum.group_requests WHERE group_id = $1 AND user_id = $2", group_id, user_id)
    return added is not None


async def delete_member(conn: asyncpg.Connection, group_id: int, user_id: int) -> bool:
    removed = await conn.fetchval(
        "DELETE FROM forum.group_members WHERE group_id = $1 AND user_id = $2 RETURNING user_id", group_id, user_id
    )
    return removed is not None


# --- rules and actions --------------------------------------------------------------------------------------


def _clean_text(value: str | None, field: str, limit: int, *, multiline: bool = False) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise invalid(field, f"must be {limit} characters or fewer")
    if accounts.has_controls(value, allow_newlines=multiline):
        raise invalid(field, "cannot contain control characters or text-direction marks")
    return value


async def create_group(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """A new group (admins only); 409 when its name or address is taken."""
    if not access.is_admin(who):
        raise ApiError(403, "forbidden", "Only admins can create groups.")
    name = _clean_text(data["name"], "name", NAME_MAX)
    if not name:
        raise invalid("name", "is required")
    slug = data.get("slug") or slugify(name, fallback="group")
    if slug in RESERVED_SLUGS:
        slug = f"{slug}-group"
    description = _clean_text(data.get("description"), "description", DESCRIPTION_MAX, multiline=True)
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM forum.groups WHERE lower(name) = lower($1))", name):
        raise ApiError(409, "conflict", "Another group already has that name.", {"name": "is already used"})
    try:
        async with conn.transaction():
            group_id = await conn.fetchval(
                "INSERT INTO forum.groups (name, slug, description, access) VALUES ($1, $2, $3, $4) RETURNING id",
                name,
                slug,
                description,
                data["access"],
            )
    except asyncpg.UniqueViolationError as exc:
        field = "name" if exc.constraint_name == "groups_name_key" else "slug"
        raise ApiError(
            409, "conflict", f"Another group already has that {field}.", {field: "is already used"}
        ) from None
    row = await fetch_group(conn, group_id)
    assert row is not None
    return row


async def update_group(conn: asyncpg.Connection, who: Session, group_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Change a group's name, description or access (its owners and admins)."""
    place = await viewing_id(conn, who, group_id)
    if not place.can_manage:
        raise ApiError(403, "forbidden", "Only the group's owners and admins can change it.")
    name = _clean_text(data.get("name"), "name", NAME_MAX) if "name" in data else None
    if name == "":
        raise invalid("name", "is required")
    description = (
        _clean_text(data.get("description"), "description", DESCRIPTION_MAX, multiline=True)
        if "description" in data
        else None
    )
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE forum.groups SET name = coalesce($2, name), description = coalesce($3, description), "
                "access = coalesce($4, access), updated_at = now() WHERE id = $1",
                group_id,
                name,
                description,
                data.get("access"),
            )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "conflict", "Another group already has that name.", {"name": "is already used"}) from None
    if data.get("access") in ("open", "private"):  # nobody approves requests there any more
        await conn.execute("DELETE FROM forum.group_requests WHERE group_id = $1", group_id)
    row = await fetch_group(conn, group_id)
    assert row is not None
    return row


async def _record_membership(conn: asyncpg.Connection, event: Event, user_id: int, actor: int | None) -> None:
    """A membership change's events: its own, and user.updated with the member's groups now."""
    await write_event(conn, event, actor_id=actor)
    user = await accounts.user_by_id(conn, user_id)
    if user is not None:
        await write_event(conn, accounts.updated_event(user), actor_id=actor)


async def _record_added(
    conn: asyncpg.Connection, group: asyncpg.Record, user_id: int, how: str, actor: int | None
) -> None:
    added = GroupMemberAdded(group_id=group["id"], group_name=group["name"], user_id=user_id, how=how, added_by=actor)
    await _record_membership(conn, added, user_id, actor)


async def _record_removed(
    conn: asyncpg.Connection, group: asyncpg.Record, user_id: int, how: str, actor: int | None
) -> None:
    removed = GroupMemberRemoved(
        group_id=group["id"], group_name=group["name"], user_id=user_id, how=how, removed_by=actor
    )
    await _record_membership(conn, removed, user_id, actor)


async def join(conn: asyncpg.Connection, who: Session, group_id: int, message: str | None = None) -> str:
    """Join an open group ("member"), or ask to join an on-request one ("requested").

    Doing it again changes nothing. A private group is joined only by invitation: its
    members get 409, everyone else 404 (they cannot see it).
    """
    place = await viewing_id(conn, who, group_id)
    if place.member:
        return "member"
    access = place.group["access"]
    if access == "private":
        raise ApiError(409, "invitation_only", "This group is joined by invitation only.")
    if access == "request":
        text = _clean_text(message, "message", MESSAGE_MAX, multiline=True)
        await conn.execute(
            "INSERT INTO forum.group_requests (group_id, user_id, message) VALUES ($1, $2, $3) "
            "ON CONFLICT (group_id, user_id) DO UPDATE SET message = excluded.message",
            group_id,
            who.user_id,
            text,
        )
        return "requested"
    if await insert_member(conn, group_id, who.user_id, owner=False, added_by=who.user_id):
        await _record_added(conn, place.group, who.user_id, "joined", who.user_id)
    return "member"


async def leave(conn: asyncpg.Connection, who: Session, group_id: int) -> None:
    """Leave a group, or take back a request to join it; 404 when neither applies."""
    place = await viewing_id(conn, who, group_id)
    if place.requested:
        await conn.execute(
            "DELETE FROM forum.group_requests WHERE group_id = $1 AND user_id = $2", group_id, who.user_id
        )
        return
    if not place.member or not await delete_member(conn, group_id, who.user_id):
        raise ApiError(404, "not_found", "You are not a member of this group.")
    await _record_removed(conn, place.group, who.user_id, "left", who.user_id)


def require_manager(place: Viewing) -> None:
    """The group's owners and admins only (403 for its other viewers)."""
    if not place.can_manage:
        raise ApiError(403, "forbidden", "Only the group's owners and admins can do that.")


async def managing(conn: asyncpg.Connection, who: Session, group_id: int) -> Viewing:
    """The group as one of its owners or an admin sees it (404 when hidden from the viewer, else 403)."""
    place = await viewing_id(conn, who, group_id)
    require_manager(place)
    return place


async def decide_request(conn: asyncpg.Connection, who: Session, group_id: int, user_id: int, action: str) -> str:
    """Approve ("member") or deny ("denied") a request to join; 404 when there is no such request."""
    place = await managing(conn, who, group_id)
    pending = await conn.fetchval(
        "DELETE FROM forum.group_requests WHERE group_id = $1 AND user_id = $2 RETURNING user_id", group_id, user_id
    )
    if pending is None:
        raise ApiError(404, "not_found", "There is no such request to join (it may have been answered already).")
    if action == "deny":
        return "denied"
    if await insert_member(conn, group_id, user_id, owner=False, added_by=who.user_id):
        await _record_added(conn, place.group, user_id, "approved", who.user_id)
    return "member"


async def add_member(
    conn: asyncpg.Connection, who: Session, group_id: int, username: str, *, owner: bool = False
) -> asyncpg.Record:
    """Add a member by username (owners and admins); making someone an owner needs an owner or admin too."""
    place = await managing(conn, who, group_id)
    user = await accounts.user_by_username(conn, username.strip().lstrip("@")) if len(username) <= 100 else None
    if user is None:
        raise invalid("username", "There is no member with that username")
    if await insert_member(conn, group_id, user.id, owner=owner, added_by=who.user_id):
        await _record_added(conn, place.group, user.id, "added", who.user_id)
    elif owner:
        await conn.execute(
            "UPDATE forum.group_members SET owner = true WHERE group_id = $1 AND user_id = $2", group_id, user.id
        )
    return await _member_row(conn, group_id, user.id)


async def _member_row(conn: asyncpg.Connection, group_id: int, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.display_name, m.owner, m.created_at FROM forum.group_members m "
        "JOIN forum.users u ON u.id = m.user_id WHERE m.group_id = $1 AND m.user_id = $2",
        group_id,
        user_id,
    )
    if row is None:
        raise ApiError(404, "not_found", "That person is not a member of this group.")
    return row


async def set_owner(conn: asyncpg.Connection, who: Session, group_id: int, user_id: int, owner: bool) -> asyncpg.Record:
    """Make a member an owner or take it back (owners and admins)."""
    await managing(conn, who, group_id)
    await _member_row(conn, group_id, user_id)
    await conn.execute(
        "UPDATE forum.group_members SET owner = $3 WHERE group_id = $1 AND user_id = $2", group_id, user_id, owner
    )
    return await _member_row(conn, group_id, user_id)


async def remove_member(conn: asyncpg.Connection, who: Session, group_id: int, user_id: int) -> None:
    """Remove a member (owners and admins; anyone may remove themselves, which is leaving)."""
    if user_id == who.user_id:
        await leave(conn, who, group_id)
        return
    place = await managing(conn, who, group_id)
    if not await delete_member(conn, group_id, user_id):
        raise ApiError(404, "not_found", "That person is not a member of this group.")
    await _record_removed(conn, place.group, user_id, "removed", who.user_id)


# --- invitations ----------------------------------------------------------------------------------------------


def invite_token(secret: bytes, invite_id: int, group_id: int, email: str) -> str:
    """The token in an invitation link: the invitation's id and an HMAC binding it to group and address."""
    return f"{invite_id}.{_invite_signature(secret, invite_id, group_id, email)}"


def _invite_signature(secret: bytes, invite_id: int, group_id: int, email: str) -> str:
    message = f"group-invite:{invite_id}:{group_id}:{email.lower()}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def invite_from_token(conn: asyncpg.Connection, secret: bytes, token: str) -> asyncpg.Record | None:
    """The usable invitation a token names (signature right, not used, revoked or expired), or None."""
    invite_id, _, signature = token.partition(".")
    if not invite_id.isdigit() or len(invite_id) > 18 or not signature:
        return None
    row = await conn.fetchrow(
        "SELECT i.id, i.group_id, i.email, i.expires_at, i.used_at, i.revoked_at, i.expires_at < now() AS expired "
        "FROM forum.group_invites i WHERE i.id = $1",
        int(invite_id),
    )
    if row is None:
        return None
    expected = _invite_signature(secret, row["id"], row["group_id"], row["email"])
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    if row["used_at"] or row["revoked_at"] or row["expired"]:
        return None
    return row


@dataclass(frozen=True)
class Invitation:
    """What inviting did: the invitation, and the mail to send once it is committed."""

    id: int
    email: str
    mail: mails.Mail


async def create_invite(
    conn: asyncpg.Connection, who: Session, group_id: int, email: str, *, secret: bytes, base_url: str
) -> Invitation:
    """Record an invitation (owners and admins) and compose its mail with the signed link."""
    place = await managing(conn, who, group_id)
    email = email.strip()
    problem = accounts.email_problem(email)
    if problem:
        raise invalid("email", problem)
    invite_id = await conn.fetchval(
        "INSERT INTO forum.group_invites (group_id, email, invited_by, expires_at) "
        "VALUES ($1, $2, $3, now() + $4::interval) RETURNING id",
        group_id,
        email,
        who.user_id,
        INVITE_TTL,
    )
    link = f"{base_url}/groups/invitations/{quote(invite_token(secret, invite_id, group_id, email))}"
    inviter = await accounts.user_by_id(conn, who.user_id)
    inviter_name = inviter.display_name if inviter else who.username
    mail = mails.compose(
        subject=f"You are invited to join {place.group['name']} on {mails.SITE}",
        greeting_name=email,
        paragraphs=[
            f"{inviter_name} has invited you to join the group \u201c{place.group['name']}\u201d on {mails.SITE}. "
            "To see the invitation and accept it, open this link:"
        ],
        link=link,
        after=[
            f"The link works for {INVITE_TTL.days} days. You will need to log in, or create an account, "
            "with this email address.",
            "If you were not expecting this, you can ignore this email. Nothing will happen.",
        ],
    )
    return Invitation(invite_id, email, mail)


async def invite(rt: Runtime, who: Session, group_id: int, email: str) -> Invitation:
    """Invite someone by email: the invitation is stored, then its mail is queued."""
    await ratelimit.enforce_limit(rt, INVITE, str(who.user_id))
    async with rt.pool.acquire() as conn, conn.transaction():
        invitation = await create_invite(
            conn, who, group_id, email, secret=rt.settings.key, base_url=rt.settings.public_url
        )
    await mails.send(rt, to=invitation.email, mail=invitation.mail, key=f"group-invite:{invitation.id}")
    return invitation


async def revoke_invite(conn: asyncpg.Connection, who: Session, group_id: int, invite_id: int) -> None:
    """Withdraw an open invitation (owners and admins): its link stops working."""
    await managing(conn, who, group_id)
    revoked = await conn.fetchval(
        "UPDATE forum.group_invites SET revoked_at = now() WHERE id = $1 AND group_id = $2 AND used_at IS NULL "
        "AND revoked_at IS NULL RETURNING id",
        invite_id,
        group_id,
    )
    if revoked is None:
        raise ApiError(404, "not_found", "There is no such open invitation.")


EXPIRED_INVITE = (
    "This invitation link has expired, was withdrawn or was already used. You can ask the group's owners for a new one."
)


async def invitation_group(
    conn: asyncpg.Connection, secret: bytes, token: str
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The invitation and its group, for the page that offers to accept it; 400 when unusable."""
    invite_row = await invite_from_token(conn, secret, token) if len(token) <= 200 else None
    group = await fetch_group(conn, invite_row["group_id"]) if invite_row else None
    if invite_row is None or group is None:
        raise ApiError(400, "invalid_token", EXPIRED_INVITE)
    return invite_row, group


async def accept_invite(conn: asyncpg.Connection, who: Session, token: str, *, secret: bytes) -> asyncpg.Record:
    """Join the group of an invitation; the member's confirmed email must be the one invited."""
    invite_row, group = await invitation_group(conn, secret, token)
    user = await accounts.user_by_id(conn, who.user_id)
    if user is None:
        raise ApiError(401, "unauthorized", "Please log in first.")
    if user.email.lower() != invite_row["email"].lower() or not user.email_verified:
        raise ApiError(
            403,
            "wrong_account",
            "This invitation was sent to another email address. Log in with the account that uses it, "
            "or ask the group's owners to invite the address you use here.",
        )
    used = await conn.fetchval(
        "UPDATE forum.group_invites SET used_at = now(), used_by = $2 WHERE id = $1 AND used_at IS NULL RETURNING id",
        invite_row["id"],
        user.id,
    )
    if used is None:
        raise ApiError(400, "invalid_token", EXPIRED_INVITE)
    if await insert_member(conn, group["id"], user.id, owner=False, added_by=who.user_id):
        await _record_added(conn, group, user.id, "invited", who.user_id)
    return group
