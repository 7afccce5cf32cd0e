"""Invitations to join, by email, from staff: the rules, SQL and actions.

While `registration_mode` is "invite", registering needs an invitation; in the other modes an
invitation still works, and lets its person skip the approval queue. An invitation is valid for 28
days and for one account; its mail carries a signed link to the registration form, which fills in
the invited address (registering with that address counts as confirming it). Staff see every
invitation (pending, used, expired, withdrawn), resend one (a new link: the old one stops working,
and the 28 days start again) or withdraw one. Sending and resending are limited per staff member
per day. Invitations stay valid when the mode changes.

A link is `{id}.{version}.{signature}`: the signature (HMAC with the site's secret) binds the
invitation, the version of its link and the address, so a link cannot be made up or moved to
another address, and resending (a new version) retires every earlier link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import asyncpg

from services.forum import access, outbox
from services.forum.accounts import accounts, mails
from services.forum.moderation import audit
from shared import ratelimit
from shared.events import InvitationSent, InvitationWithdrawn
from shared.sessions import Session
from shared.web import ApiError, Runtime

INVITE_TTL = timedelta(days=28)
NOTE_MAX = 1000
PER_PAGE = 50
TOKEN_MAX = 200
STATUSES = ("pending", "used", "expired", "withdrawn")
STATUS_LABELS = {"pending": "Waiting to be used", "used": "Used", "expired": "Expired", "withdrawn": "Withdrawn"}
REFUSAL = "Only moderators and admins can invite people."
# Invitations (sent or sent again) one staff member may send a day.
INVITE_LIMIT = ratelimit.Limit(
    "site-invite",
    limit=50,
    window_s=24 * 60 * 60,
    message="You have sent a lot of invitations today. Please try again tomorrow.",
)

# What a link that cannot be used says, by why: kindly, and what the person can do.
UNUSABLE = {
    "unknown": (
        "This invitation link is not complete or not right. Check that you opened the whole link from the "
        "email, or ask the person who invited you to send it again."
    ),
    "replaced": (
        "This invitation link has been replaced by a newer one. Please use the link in the most recent "
        "invitation email we sent you."
    ),
    "expired": (
        f"This invitation has expired: invitations work for {INVITE_TTL.days} days. You can ask the person "
        "who invited you, or a moderator, to send it again."
    ),
    "used": (
        "This invitation has already been used to create an account. If that was you, you can log in with "
        "the username and password you chose."
    ),
    "withdrawn": (
        "This invitation was withdrawn, so it can no longer be used. If you think this is a mistake, ask "
        "the person who invited you."
    ),
}


@dataclass(frozen=True)
class Usable:
    """An invitation a link names that can be used now: its id, link version and address."""

    id: int
    version: int
    email: str


# --- SQL ---------------------------------------------------------------------------------------------

STATUS_SQL = """CASE WHEN i.withdrawn_at IS NOT NULL THEN 'withdrawn' WHEN i.used_at IS NOT NULL THEN 'used'
     WHEN i.expires_at <= now() THEN 'expired' ELSE 'pending' END"""
_COLUMNS = f"""i.id, i.email, i.note, i.link_version, i.created_at, i.sent_at, i.expires_at, i.used_at,
    i.withdrawn_at, {STATUS_SQL} AS status,
    inviter.id AS inviter_id, inviter.username AS inviter_username, inviter.display_name AS inviter_name,
    member.id AS member_id, member.username AS member_username, member.display_name AS member_name"""
_FROM = """forum.invitations i
LEFT JOIN forum.users inviter ON inviter.id = i.invited_by
LEFT JOIN forum.users member ON member.id = i.used_by"""
LIST_SQL = f"""
SELECT {_COLUMNS} FROM {_FROM}
WHERE $1::text IS NULL OR {STATUS_SQL} = $1
ORDER BY i.created_at DESC, i.id DESC
LIMIT $2 OFFSET $3
"""
BY_ID_SQL = f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.id = $1"
COUNT_PENDING_SQL = """
SELECT count(*) FROM forum.invitations WHERE used_at IS NULL AND withdrawn_at IS NULL AND expires_at > now()
"""
# Invitations to one address are sent one at a time (so two clicks cannot send two).
LOCK_EMAIL_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('tica-invite:' || lower($1), 0))"
PENDING_FOR_SQL = """
SELECT id FROM forum.invitations
WHERE lower(email) = lower($1) AND used_at IS NULL AND withdrawn_at IS NULL AND expires_at > now()
"""
INSERT_SQL = """
INSERT INTO forum.invitations (email, note, invited_by, expires_at) VALUES ($1, $2, $3, now() + $4::interval)
RETURNING id
"""
RESEND_SQL = """
UPDATE forum.invitations SET link_version = link_version + 1, sent_at = now(), expires_at = now() + $2::interval
WHERE id = $1 AND used_at IS NULL AND withdrawn_at IS NULL
RETURNING id
"""
WITHDRAW_SQL = """
UPDATE forum.invitations SET withdrawn_at = now(), withdrawn_by = $2
WHERE id = $1 AND used_at IS NULL AND withdrawn_at IS NULL
RETURNING id
"""
FOR_TOKEN_SQL = f"SELECT i.id, i.email, i.link_version, {STATUS_SQL} AS status FROM forum.invitations i WHERE i.id = $1"
USE_SQL = """
UPDATE forum.invitations SET used_at = now(), used_by = $3
WHERE id = $1 AND link_version = $2 AND used_at IS NULL AND withdrawn_at IS NULL AND expires_at > now()
RETURNING id
"""


async def count_pending_invitations(conn: asyncpg.Connection) -> int:
    """How many invitations can still be used (the admin home shows it)."""
    count: int = await conn.fetchval(COUNT_PENDING_SQL)
    return count


async def list_invitations(
    conn: asyncpg.Connection, *, status: str | None = None, page: int = 1
) -> tuple[list[asyncpg.Record], bool]:
    """A page of invitations, newest first (only those with `status` when given); and whether there
    is another page."""
    rows = await conn.fetch(LIST_SQL, status, PER_PAGE + 1, (page - 1) * PER_PAGE)
    return list(rows[:PER_PAGE]), len(rows) > PER_PAGE


async def invitation(conn: asyncpg.Connection, invitation_id: int) -> asyncpg.Record:
    """One invitation with its status (404 when there is none)."""
    row = await conn.fetchrow(BY_ID_SQL, invitation_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such invitation.")
    return row


# --- links ------------------------------------------------------------------------------------------------


def _signature(secret: bytes, invitation_id: int, version: int, email: str) -> str:
    message = f"site-invitation:{invitation_id}:{version}:{email.lower()}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_token(secret: bytes, invitation_id: int, version: int, email: str) -> str:
    """The token in an invitation's link (its id, the link's version and a signature)."""
    return f"{invitation_id}.{version}.{_signature(secret, invitation_id, version, email)}"


def invitation_link(base_url: str, token: str) -> str:
    return f"{base_url}/register?invitation={quote(token)}"


def unusable(reason: str) -> ApiError:
    """The 400 for an invitation link that cannot be used, saying why (`fields.invitation`)."""
    return ApiError(400, "invalid_invitation", UNUSABLE[reason], {"invitation": reason})


async def usable(conn: asyncpg.Connection, secret: bytes, token: str) -> Usable:
    """The invitation a link's token names, if it can be used now; else 400 saying why (unknown,
    replaced by a newer link, expired, used or withdrawn)."""
    parts = token.split(".") if len(token) <= TOKEN_MAX else []
    if len(parts) != 3 or not all(p.isdigit() and 0 < len(p) <= 18 for p in parts[:2]) or not parts[2]:
        raise unusable("unknown")
    row = await conn.fetchrow(FOR_TOKEN_SQL, int(parts[0]))
    version = int(parts[1])
    if row is None or version > row["link_version"]:
        raise unusable("unknown")
    expected = _signature(secret, row["id"], version, row["email"])
    if not hmac.compare_digest(expected.encode(), parts[2].encode()):
        raise unusable("unknown")
    if row["status"] in ("used", "withdrawn"):
        raise unusable(row["status"])
    if version < row["link_version"]:
        raise unusable("replaced")
    if row["status"] == "expired":
        raise unusable("expired")
    return Usable(row["id"], version, row["email"])


async def use(conn: asyncpg.Connection, invite: Usable, user_id: int) -> None:
    """Mark an invitation used by the account just created, in the caller's transaction (400 when it
    was used, withdrawn or replaced meanwhile)."""
    if await conn.fetchval(USE_SQL, invite.id, invite.version, user_id) is None:
        raise unusable("used")


# --- staff's actions -----------------------------------------------------------------------------------


def clean_note(note: str | None) -> str:
    """The personal note of an invitation: plain text, bounded (422 otherwise)."""
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise accounts.invalid({"note": f"The note must be {NOTE_MAX:,} characters or fewer"})
    if accounts.has_controls(text, allow_newlines=True):
        raise accounts.invalid({"note": "The note cannot contain control characters or text-direction marks"})
    return text


def _check_email(email: str) -> str:
    email = email.strip()
    problem = accounts.email_problem(email)
    if problem:
        raise accounts.invalid({"email": problem.replace("your email address", "their email address")})
    return email


async def invite(rt: Runtime, who: Session, email: str, note: str | None = None) -> asyncpg.Record:
    """Invite someone to join by email (moderators and admins): the invitation is stored, audited and
    its mail queued. 409 when an invitation to that address is still waiting (resend it instead)."""
    access.require_staff(who, REFUSAL)
    email, text = _check_email(email), clean_note(note)
    await ratelimit.enforce_limit(rt, INVITE_LIMIT, str(who.user_id))
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK_EMAIL_SQL, email)
        if await conn.fetchval(PENDING_FOR_SQL, email) is not None:
            raise ApiError(
                409,
                "already_invited",
                "An invitation to that address is still waiting to be used. You can send it again from the list.",
                {"email": "An invitation to this address is still waiting to be used"},
            )
        invitation_id = await conn.fetchval(INSERT_SQL, email, text, who.user_id, INVITE_TTL)
        await outbox.write_event(conn, InvitationSent(invitation_id=invitation_id), actor_id=who.user_id)
        await audit.record_by(conn, who, "invitation.send", invitation_id, after={"status": "pending"})
        row = await invitation(conn, invitation_id)
    await _mail(rt, who, row)
    return row


async def resend(rt: Runtime, who: Session, invitation_id: int) -> asyncpg.Record:
    """Send an invitation again with a new link, valid 28 days from now; its earlier links stop
    working. 404 when there is none, 409 when it was used or withdrawn."""
    access.require_staff(who, REFUSAL)
    await ratelimit.enforce_limit(rt, INVITE_LIMIT, str(who.user_id))
    async with rt.pool.acquire() as conn, conn.transaction():
        before = await invitation(conn, invitation_id)
        if await conn.fetchval(RESEND_SQL, invitation_id, INVITE_TTL) is None:
            raise _closed(before["status"])
        await outbox.write_event(conn, InvitationSent(invitation_id=invitation_id), actor_id=who.user_id)
        await audit.record_by(
            conn,
            who,
            "invitation.send",
            invitation_id,
            before={"status": before["status"], "link": before["link_version"]},
            after={"status": "pending", "link": before["link_version"] + 1},
        )
        row = await invitation(conn, invitation_id)
    await _mail(rt, who, row)
    return row


async def withdraw(conn: asyncpg.Connection, who: Session, invitation_id: int) -> asyncpg.Record:
    """Withdraw an invitation that was not used (moderators and admins): its link stops working.
    404 when there is none, 409 when it was used or withdrawn already."""
    access.require_staff(who, REFUSAL)
    before = await invitation(conn, invitation_id)
    if await conn.fetchval(WITHDRAW_SQL, invitation_id, who.user_id) is None:
        raise _closed(before["status"])
    await outbox.write_event(conn, InvitationWithdrawn(invitation_id=invitation_id), actor_id=who.user_id)
    await audit.record_by(
        conn,
        who,
        "invitation.revoke",
        invitation_id,
        before={"status": before["status"]},
        after={"status": "withdrawn"},
    )
    return await invitation(conn, invitation_id)


def _closed(status: str) -> ApiError:
    if status == "used":
        return ApiError(409, "conflict", "This invitation has been used already: its person has an account.")
    return ApiError(409, "conflict", "This invitation was withdrawn. To invite the person again, send a new one.")


async def _mail(rt: Runtime, who: Session, row: asyncpg.Record) -> None:
    """The invitation's mail with its current link (after the change is committed)."""
    token = link_token(rt.settings.key, row["id"], row["link_version"], row["email"])
    inviter = row["inviter_name"] or who.username
    mail = mails.invitation_mail(
        invitation_link(rt.settings.public_url, token),
        inviter=inviter,
        note=row["note"],
        days=INVITE_TTL.days,
    )
    await mails.send(rt, to=row["email"], mail=mail, key=f"site-invite:{row['id']}:{row['link_version']}")
