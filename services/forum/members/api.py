"""The members' admin API: find members (staff), a member's standing (staff) and changing their role
(admins). The `*_json` shapes here are what the pages show too. Rules and SQL: members.py and
accounts/roles.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.accounts import roles
from services.forum.members import members
from services.forum.moderation import audit
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, page_of, path_int, read_json, writing
from shared.sessions import Session
from shared.web import require_viewer, require_writer, runtime

api = ApiRouter(tag="members")

ROLE_IN = Schema(
    "RoleChangeIn",
    {
        "role": Field("string", required=True, enum=roles.ROLES, description="the member's role from now on"),
        "reason": Field(
            "string",
            required=True,
            min_length=roles.REASON_MIN,
            max_length=roles.REASON_MAX,
            description="why; the member is told",
        ),
    },
)

DUTY_IN = Schema(
    "DutyChangeIn",
    {
        "safeguarding_lead": Field(
            "boolean",
            required=True,
            description="a safeguarding lead is mailed about every safeguarding item (moderators and admins only)",
        ),
        "reason": Field(
            "string",
            required=True,
            min_length=roles.REASON_MIN,
            max_length=roles.REASON_MAX,
            description="why; the member is told",
        ),
    },
)

SANCTION = Shape("AdminMemberSanction", {"until": "datetime", "reason": "string?"})
MEMBER = Shape(
    "AdminMember",
    {
        "id": "integer",
        "username": "string",
        "display_name": "string",
        "role": "string",
        "roles": ["string"],
        "safeguarding_lead": "boolean",
        "status": "string",
        "email?": "string",
        "email_verified": "boolean",
        "created_at": "datetime",
        "last_seen_at": "datetime?",
        "silenced": Maybe(SANCTION),
        "suspended": Maybe(SANCTION),
        "url": "string",
    },
)
APPEAL = Shape(
    "AdminMemberAppeal",
    {
        "id": "integer",
        "status": "string",
        "decision": "string?",
        "reason": "string?",
        "created_at": "datetime",
        "decided_at": "datetime?",
        "post_id": "integer",
        "topic_title": "string",
        "url": "string",
    },
)
STANDING = Shape(
    "AdminMemberStanding",
    {
        "member": MEMBER,
        "posts": {
            "published": "integer",
            "hidden": "integer",
            "waiting": "integer",
            "not_published": "integer",
            "deleted": "integer",
        },
        "flags": {
            "received": "integer",
            "upheld": "integer",
            "set_aside": "integer",
            "waiting": "integer",
            "safeguarding": "integer",
        },
        "sanctions": [audit.ENTRY],
        "appeals": {
            "total": "integer",
            "waiting": "integer",
            "upheld": "integer",
            "kept": "integer",
            "items": [APPEAL],
        },
        "role_history?": [audit.ENTRY],
        "links": {"page": "string", "profile": "string", "posts": "string", "review": "string", "audit_log": "string"},
    },
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _sanction(row: asyncpg.Record, kind: str, now: datetime) -> dict[str, Any] | None:
    until = row[f"{kind}_until"]
    if until is None or until <= now:
        return None
    return {"until": until.isoformat(), "reason": row[f"{kind}_reason"]}


def member_json(who: Session, row: asyncpg.Record) -> dict[str, Any]:
    """A member as staff see them; the email address only for those who may see it (admins)."""
    now = datetime.now(UTC)
    out: dict[str, Any] = {
        "id": row["id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "role": roles.role_of(row["roles"]),
        "roles": list(row["roles"]),
        "safeguarding_lead": row["safeguarding_lead"],
        "status": row["status"],
        "email_verified": row["verified"],
        "created_at": row["created_at"].isoformat(),
        "last_seen_at": _iso(row["last_seen_at"]),
        "silenced": _sanction(row, "silenced", now),
        "suspended": _sanction(row, "suspended", now),
        "url": members.admin_url(row["id"]),
    }
    if access.may_see_email(who, row["id"]):
        out["email"] = row["email"]
    return out


def appeal_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "decision": row["resolution"],
        "reason": row["resolution_reason"],
        "created_at": row["created_at"].isoformat(),
        "decided_at": _iso(row["resolved_at"]),
        "post_id": row["post_id"],
        "topic_title": row["title"],
        "url": f"/p/{row['post_id']}",
    }


def standing_json(who: Session, found: members.Standing) -> dict[str, Any]:
    """A member's standing, as the API answers and the page shows it."""
    out: dict[str, Any] = {
        "member": member_json(who, found.member),
        "posts": found.posts,
        "flags": found.flags,
        "sanctions": [audit.entry_json(row) for row in found.sanctions],
        "appeals": {**found.appeal_counts, "items": [appeal_json(row) for row in found.appeals]},
        "links": members.links(found.member),
    }
    if found.role_history is not None:
        out["role_history"] = [audit.entry_json(row) for row in found.role_history]
    return out


async def _staff(request: Request) -> Session:
    who = await require_viewer(request)
    access.require_staff(who, "Only moderators and admins can look through members.")
    return who


@api.get(
    "/api/admin/members",
    answers={200: ("Members matching every filter", page_of(MEMBER))},
    auth=True,
    query={
        "name": Field("string", max_length=members.NAME_MAX, description="words in the username or display name"),
        "email": Field("string", max_length=members.EMAIL_MAX, description="part of the email address (admins only)"),
        "role": Field("string", enum=roles.ROLES),
        "status": Field("string", enum=members.STATUSES, description="unconfirmed: email address not confirmed yet"),
        "joined_since": Field("string", pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (from that day, UTC)"),
        "joined_until": Field("string", pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (to that day, UTC)"),
        "sort": Field("string", enum=tuple(members.SORTS), description="newest (default), oldest or name"),
        "page": Field("integer", minimum=1, maximum=10_000, description=f"1-based page of {members.PER_PAGE}"),
    },
)
async def members_endpoint(request: Request) -> Response:
    """Find members by name, email (admins), role, status and join date (moderators and admins)."""
    who = await _staff(request)
    query = members.parse_member_query(request, who)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await members.search(conn, who, query)
    return JSONResponse({"items": [member_json(who, row) for row in rows], "next": query.page + 1 if more else None})


@api.get("/api/admin/members/{id}", answers={200: STANDING}, auth=True)
async def member_endpoint(request: Request) -> Response:
    """A member's standing: posts, flags received, sanctions, appeals, role history (moderators and admins)."""
    user_id = path_int(request, "id")
    who = await _staff(request)
    async with runtime(request).pool.acquire() as conn:
        found = await members.standing(conn, who, user_id)
    return JSONResponse(standing_json(who, found))


@api.put(
    "/api/admin/members/{id}/role",
    body=ROLE_IN,
    answers={
        200: ("The member's standing with their new role", STANDING),
        409: "Already that role; the only admin; or silenced or suspended (cannot be given a staff role)",
    },
    auth=True,
)
async def role_endpoint(request: Request) -> Response:
    """Make a member a moderator, an admin or a member again, with a reason they are told (admins)."""
    user_id = path_int(request, "id")
    who = await require_writer(request)
    access.require_admin(who, "Only admins can change a member's role.")
    data = await read_json(request, ROLE_IN)
    rt = runtime(request)
    await roles.change_role_now(rt, who, user_id, data["role"], data["reason"])
    async with rt.pool.acquire() as conn:
        found = await members.standing(conn, who, user_id)
    return JSONResponse(standing_json(who, found))


@api.put(
    "/api/admin/members/{id}/duties",
    body=DUTY_IN,
    answers={
        200: ("The member's standing with their duties now", STANDING),
        409: "Already so; or not a moderator or admin (only staff can be safeguarding leads)",
    },
    auth=True,
)
async def duties_endpoint(request: Request) -> Response:
    """Make a moderator or admin a safeguarding lead, or take the duty back, with a reason they are told
    (admins). Leads are alerted about every safeguarding item by email as well as by notification."""
    user_id = path_int(request, "id")
    async with writing(request, DUTY_IN, allowed=_admin_for_duties) as w:
        await roles.change_duty(w.conn, w.who, user_id, w.data["safeguarding_lead"], w.data["reason"])
        found = await members.standing(w.conn, w.who, user_id)
    return JSONResponse(standing_json(w.who, found))


def _admin_for_duties(who: Session) -> None:
    access.require_admin(who, "Only admins can change who is a safeguarding lead.")
