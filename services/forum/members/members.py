"""Members as staff see them: search by name, email (admins only), role, status and join date; a
member's standing (posts, flags received, sanctions, appeals, role history) with links. The actions
on a member are elsewhere and only called from here: silence and suspend (moderation/), roles
(accounts/roles.py). api.py and pages.py serve what this module decides.

Pseudonymous posts are never counted or listed here: that would reveal their author without an
audited reveal (as on the moderation page of a member).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
from starlette.requests import Request

from services.forum import access
from services.forum.accounts import roles
from services.forum.directory.directory import like_patterns
from services.forum.moderation import audit
from shared.api import query_choice, query_int
from shared.sessions import Session
from shared.web import ApiError

PER_PAGE = 30
NAME_MAX, EMAIL_MAX = 100, 254
STATUSES = ("active", "silenced", "suspended", "unconfirmed")
STATUS_NAMES = {
    "active": "Active",
    "silenced": "Silenced",
    "suspended": "Suspended",
    "unconfirmed": "Email not confirmed yet",
}
SORTS = {"newest": "Newest members first", "oldest": "Longest-standing members first", "name": "Name, A to Z"}
SANCTION_ACTIONS = ["user.silence", "user.unsilence", "user.suspend", "user.unsuspend"]
ROLE_ACTIONS = ["user.role_change"]
APPEALS_LISTED = 20

# A member's one status (status_of in SQL): a suspension outweighs a silence, either an unconfirmed address.
STATUS_SQL = """(CASE WHEN u.suspended_until > now() THEN 'suspended'
      WHEN u.silenced_until > now() THEN 'silenced'
      WHEN u.email_verified_at IS NULL THEN 'unconfirmed'
      ELSE 'active' END)"""


def status_of(row: asyncpg.Record | dict[str, Any], now: datetime | None = None) -> str:
    """active, silenced, suspended or unconfirmed (its email address not confirmed yet)."""
    now = now or datetime.now(UTC)
    if row["suspended_until"] is not None and row["suspended_until"] > now:
        return "suspended"
    if row["silenced_until"] is not None and row["silenced_until"] > now:
        return "silenced"
    return "active" if row["verified"] else "unconfirmed"


# --- searching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberQuery:
    """Which members a list shows: ?name=&email=&role=&status=&joined_since=&joined_until=&sort=&page=."""

    name: str = ""
    email: str = ""
    role: str | None = None
    status: str | None = None
    joined_since: date | None = None
    joined_until: date | None = None
    sort: str = "newest"
    page: int = 1

    def params(self) -> dict[str, str]:
        """The filters as query parameters (those set), for links to other pages and sorts."""
        values = {
            "name": self.name,
            "email": self.email,
            "role": self.role or "",
            "status": self.status or "",
            "joined_since": self.joined_since.isoformat() if self.joined_since else "",
            "joined_until": self.joined_until.isoformat() if self.joined_until else "",
            "sort": self.sort if self.sort != "newest" else "",
        }
        return {k: v for k, v in values.items() if v}


def _text_param(request: Request, name: str, limit: int) -> str:
    text = (request.query_params.get(name) or "").replace("\x00", "").strip()
    if len(text) > limit:
        raise ApiError(400, "bad_request", f"?{name} is too long.", {name: f"must be at most {limit} characters"})
    return text


def parse_member_query(request: Request, who: Session) -> MemberQuery:
    """The filters of a request; 400 for a value that cannot be one, 403 for a moderator's email search."""
    email = _text_param(request, "email", EMAIL_MAX)
    if email and not access.may_search_email(who):
        raise ApiError(
            403, "forbidden", "Only admins can find members by email address.", {"email": "is for admins only"}
        )
    since, until = audit.query_date(request, "joined_since"), audit.query_date(request, "joined_until")
    if since and until and since > until:
        raise ApiError(
            400,
            "bad_request",
            "The first join date must not be after the second.",
            {"joined_since": "must not be after the second date"},
        )
    return MemberQuery(
        name=_text_param(request, "name", NAME_MAX),
        email=email,
        role=query_choice(request, "role", roles.ROLES, message="?role must be member, moderator or admin."),
        status=query_choice(
            request, "status", STATUSES, message="?status must be active, silenced, suspended or unconfirmed."
        ),
        joined_since=since,
        joined_until=until,
        sort=query_choice(request, "sort", SORTS, default="newest", message="?sort must be newest, oldest or name."),
        page=query_int(request, "page", 1),
    )


_ORDERS = {
    "newest": "u.created_at DESC, u.id DESC",
    "oldest": "u.created_at, u.id",
    "name": "lower(u.display_name), lower(u.username), u.id",
}
MEMBER_COLUMNS = f"""u.id, u.username, u.display_name, u.email, u.roles, u.created_at, u.last_seen_at,
       u.email_verified_at IS NOT NULL AS verified, u.suspended_until, u.suspended_reason,
       u.silenced_until, u.silenced_reason, {STATUS_SQL} AS status, u.safeguarding_lead"""
# $1 name patterns (each must match the username or display name), $2 an email pattern, $3 role,
# $4 status, $5 and $6 the join dates' bounds.
_SEARCH = f"""
SELECT {MEMBER_COLUMNS}
FROM forum.users u
WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[]) w WHERE NOT (u.username ILIKE w OR u.display_name ILIKE w))
  AND ($2::text IS NULL OR u.email ILIKE $2)
  AND ($3::text IS NULL OR {roles.ROLE_SQL.format(roles="u.roles")} = $3)
  AND ($4::text IS NULL OR {STATUS_SQL} = $4)
  AND ($5::timestamptz IS NULL OR u.created_at >= $5)
  AND ($6::timestamptz IS NULL OR u.created_at < $6)
ORDER BY {{order}}
LIMIT $7 OFFSET $8
"""
SEARCH_SQL = {sort: _SEARCH.format(order=order) for sort, order in _ORDERS.items()}


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def _email_pattern(text: str) -> str | None:
    if not text:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(conn: asyncpg.Connection, who: Session, query: MemberQuery) -> tuple[list[asyncpg.Record], bool]:
    """A page of members matching every filter (staff), and whether another page follows."""
    access.require_staff(who, "Only moderators and admins can look through members.")
    if query.email and not access.may_search_email(who):
        raise ApiError(403, "forbidden", "Only admins can find members by email address.")
    rows = await conn.fetch(
        SEARCH_SQL[query.sort],
        like_patterns(query.name),
        _email_pattern(query.email),
        query.role,
        query.status,
        _start_of(query.joined_since),
        _start_of(query.joined_until + timedelta(days=1)) if query.joined_until else None,  # includes its day
        PER_PAGE + 1,
        (query.page - 1) * PER_PAGE,
    )
    return list(rows[:PER_PAGE]), len(rows) > PER_PAGE


# --- one member's standing -------------------------------------------------------------------------

MEMBER_SQL = f"SELECT {MEMBER_COLUMNS} FROM forum.users u WHERE u.id = $1"
POSTS_SQL = """
SELECT count(*) FILTER (WHERE status IN ('visible', 'hidden')) AS published,
       count(*) FILTER (WHERE status = 'hidden') AS hidden,
       count(*) FILTER (WHERE status = 'pending') AS waiting,
       count(*) FILTER (WHERE status = 'rejected') AS not_published,
       count(*) FILTER (WHERE status = 'deleted') AS deleted
FROM forum.posts WHERE author_id = $1 AND NOT anonymous
"""
# Flags on their posts and document comments. Upheld: moderators agreed (hid, rejected or deleted
# the writing); set aside: they kept it or ignored the flags. A safeguarding flag is someone's
# worry for the writer, not a complaint about them: counted apart.
FLAGS_SQL = """
SELECT count(*) FILTER (WHERE reason <> 'safeguarding') AS received,
       count(*) FILTER (WHERE reason <> 'safeguarding' AND status = 'agreed') AS upheld,
       count(*) FILTER (WHERE reason <> 'safeguarding' AND status IN ('disagreed', 'ignored')) AS set_aside,
       count(*) FILTER (WHERE reason <> 'safeguarding' AND status = 'pending') AS waiting,
       count(*) FILTER (WHERE reason = 'safeguarding') AS safeguarding
FROM (SELECT f.reason, f.status FROM forum.flags f JOIN forum.posts p ON p.id = f.post_id
      WHERE p.author_id = $1 AND NOT p.anonymous
      UNION ALL
      SELECT f.reason, f.status FROM forum.document_comment_flags f
      JOIN forum.document_comments c ON c.id = f.comment_id WHERE c.author_id = $1) f
"""
APPEAL_COUNTS_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE r.status = 'pending') AS waiting,
       count(*) FILTER (WHERE r.status = 'approved') AS upheld,
       count(*) FILTER (WHERE r.status IN ('rejected', 'deleted', 'ignored')) AS kept
FROM forum.reviewables r JOIN forum.posts p ON p.id = r.post_id
WHERE r.kind = 'appeal' AND r.author_id = $1 AND NOT p.anonymous
"""
APPEALS_SQL = """
SELECT r.id, r.status, r.resolution, r.resolution_reason, r.created_at, r.resolved_at, r.post_id, t.title
FROM forum.reviewables r JOIN forum.posts p ON p.id = r.post_id JOIN forum.topics t ON t.id = r.topic_id
WHERE r.kind = 'appeal' AND r.author_id = $1 AND NOT p.anonymous
ORDER BY r.created_at DESC, r.id DESC
LIMIT $2
"""


async def member_row(conn: asyncpg.Connection, who: Session, user_id: int) -> asyncpg.Record:
    """A member's account as staff see it (404 when there is none)."""
    access.require_staff(who, "Only moderators and admins can look through members.")
    row: asyncpg.Record | None = await conn.fetchrow(MEMBER_SQL, user_id)
    if row is None:
        raise access.not_found("that member")
    return row


@dataclass
class Standing:
    """Everything a member's admin page and API say about them."""

    member: asyncpg.Record
    posts: dict[str, int]
    flags: dict[str, int]
    sanctions: list[asyncpg.Record]
    appeal_counts: dict[str, int]
    appeals: list[asyncpg.Record]
    role_history: list[asyncpg.Record] | None  # None: the viewer may not see role changes


async def standing(conn: asyncpg.Connection, who: Session, user_id: int) -> Standing:
    """A member's standing: posts, flags received, sanctions, appeals and (for admins) role history."""
    member = await member_row(conn, who, user_id)
    sees_roles = all(access.audit_action_visible(who, action) for action in ROLE_ACTIONS)
    return Standing(
        member=member,
        posts=dict(await conn.fetchrow(POSTS_SQL, user_id)),
        flags=dict(await conn.fetchrow(FLAGS_SQL, user_id)),
        sanctions=await audit.account_entries(conn, who, user_id, SANCTION_ACTIONS),
        appeal_counts=dict(await conn.fetchrow(APPEAL_COUNTS_SQL, user_id)),
        appeals=list(await conn.fetch(APPEALS_SQL, user_id, APPEALS_LISTED)),
        role_history=await audit.account_entries(conn, who, user_id, ROLE_ACTIONS) if sees_roles else None,
    )


# --- where things are -------------------------------------------------------------------------------


def admin_url(user_id: int) -> str:
    return f"/admin/members/{user_id}"


def links(member: asyncpg.Record) -> dict[str, str]:
    """Where staff go next: the member's public posts, their review page, the audit log about them."""
    return {
        "page": admin_url(member["id"]),
        "profile": f"/u/{quote(member['username'])}",
        "posts": "/search?q=" + quote("@" + member["username"]),
        "review": f"/review/members/{quote(member['username'])}",
        "audit_log": f"/admin/audit-log?target_type=user&target_id={member['id']}",
    }
