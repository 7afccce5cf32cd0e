"""The groups JSON API: its endpoints, request schemas and the `*_json` shapes the pages
build on too. Rules and actions are in groups.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum.accounts import accounts
from services.forum.accounts.api import AVATAR, PERSON, avatar_json
from services.forum.groups import groups
from services.forum.groups.groups import Viewing, group_url
from shared.api import STATUS, ApiRouter, Field, Schema, Shape, page_of, path_int, query_int, read_json, writing
from shared.web import require_viewer, require_writer, runtime, viewer

api = ApiRouter(tag="groups")

GROUP_IN = Schema(
    "GroupIn",
    {
        "name": Field("string", required=True, min_length=1, max_length=groups.NAME_MAX),
        "slug": Field(
            "string",
            nullable=True,
            max_length=60,
            pattern=groups.SLUG_PATTERN,
            description="lowercase words joined by '-'; made from the name when absent",
        ),
        "description": Field("string", nullable=True, max_length=groups.DESCRIPTION_MAX),
        "access": Field(
            "string",
            required=True,
            enum=groups.ACCESS,
            description="open: anyone joins; request: an owner approves; private: by invitation",
        ),
    },
)
GROUP_PATCH = Schema(
    "GroupPatch",
    {
        "name": Field("string", min_length=1, max_length=groups.NAME_MAX),
        "description": Field("string", max_length=groups.DESCRIPTION_MAX),
        "access": Field("string", enum=groups.ACCESS),
    },
)
JOIN_IN = Schema(
    "JoinRequest",
    {
        "message": Field(
            "string", nullable=True, max_length=groups.MESSAGE_MAX, description="for the owners of an on-request group"
        )
    },
)
ADD_MEMBER_IN = Schema(
    "GroupMemberIn",
    {"username": Field("string", required=True, max_length=100), "owner": Field("boolean", nullable=True)},
)
MEMBER_PATCH = Schema("GroupMemberPatch", {"owner": Field("boolean", required=True)})
DECISION_IN = Schema("GroupRequestDecision", {"action": Field("string", required=True, enum=("approve", "deny"))})
INVITE_IN = Schema("GroupInviteIn", {"email": Field("string", required=True, max_length=accounts.EMAIL_MAX)})
ACCEPT_IN = Schema("GroupInviteAccept", {"token": Field("string", required=True, max_length=200)})


# --- JSON shapes ----------------------------------------------------------------------------------------------

GROUP = Shape(
    "Group",
    {
        "id": "integer",
        "name": "string",
        "slug": "string",
        "description": "string?",
        "access": "string",
        "members_count": "integer",
        "created_at": "datetime",
        "url": "string",
        "viewer?": {"member": "boolean", "owner": "boolean", "requested": "boolean", "can_manage": "boolean"},
    },
)
MEMBER = Shape(
    "GroupMember",
    {
        "id": "integer",
        "username": "string",
        "display_name": "string",
        "owner": "boolean",
        "joined_at": "datetime",
        "avatar": AVATAR,
    },
)
GROUP_WITH_OWNERS = GROUP.extend("GroupWithOwners", {"owners": [MEMBER]})
JOIN_REQUEST = Shape("GroupJoinRequest", {"user": PERSON, "message": "string?", "created_at": "datetime"})
INVITE = Shape(
    "GroupInvite",
    {"id": "integer", "email": "string", "invited_by": "any", "created_at": "datetime", "expires_at": "datetime"},
)
INVITE_SENT = Shape("GroupInviteSent", {"status": "string", "id": "integer"})


def group_json(group: asyncpg.Record, place: Viewing | None = None) -> dict[str, Any]:
    """A group; with the viewer's place in it when known."""
    out: dict[str, Any] = {
        "id": group["id"],
        "name": group["name"],
        "slug": group["slug"],
        "description": group["description"],
        "access": group["access"],
        "members_count": group["members_count"],
        "created_at": group["created_at"].isoformat(),
        "url": group_url(group),
    }
    if place is not None:
        out["viewer"] = {
            "member": place.member,
            "owner": place.owner,
            "requested": place.requested,
            "can_manage": place.can_manage,
        }
    return out


def member_json(row: asyncpg.Record) -> dict[str, Any]:
    """A member of a group, with their initials avatar."""
    return {
        "id": row["id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "owner": row["owner"],
        "joined_at": row["created_at"].isoformat(),
        "avatar": avatar_json(row["id"], row["display_name"], row["username"]),
    }


def request_json(row: asyncpg.Record) -> dict[str, Any]:
    """A request to join, with who asked and their message for the owners."""
    return {
        "user": {"id": row["id"], "username": row["username"], "display_name": row["display_name"]},
        "message": row["message"],
        "created_at": row["created_at"].isoformat(),
    }


def invite_json(row: asyncpg.Record) -> dict[str, Any]:
    """An open invitation (for the group's owners and admins)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "invited_by": row["invited_by"],
        "created_at": row["created_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
    }


# --- endpoints ------------------------------------------------------------------------------------------------


async def _changed(request: Request, user_id: int) -> None:
    """After a membership change commits: the member's live sessions learn their groups."""
    await accounts.refresh_sessions(runtime(request), user_id)


async def _owners_list(
    request: Request,
    pending: Callable[[asyncpg.Connection, int], Awaitable[list[asyncpg.Record]]],
    shape: Callable[[asyncpg.Record], dict[str, Any]],
) -> Response:
    """A list only the group's owners and admins see (requests, invitations), all in one page."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        place = await groups.managing(conn, who, path_int(request, "id"))
        rows = await pending(conn, place.id)
    return JSONResponse({"items": [shape(r) for r in rows], "next": None})


@api.get("/api/groups", answers={200: page_of(GROUP)})
async def list_groups(request: Request) -> Response:
    """The groups the viewer may see (private ones only to their members and staff), with the viewer's place."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        items = [group_json(row, await groups.viewing(conn, who, row)) for row in await groups.list_visible(conn, who)]
    return JSONResponse({"items": items, "next": None})


@api.post("/api/groups", body=GROUP_IN, answers={201: GROUP}, auth=True)
async def create_group_endpoint(request: Request) -> Response:
    """Create a group (admins). Add owners with POST /api/groups/{id}/members."""
    async with writing(request, GROUP_IN) as w:
        row = await groups.create_group(w.conn, w.who, w.data)
        place = await groups.viewing(w.conn, w.who, row)
    return JSONResponse(group_json(row, place), status_code=201)


@api.get("/api/groups/{id:int}", answers={200: GROUP_WITH_OWNERS})
async def get_group(request: Request) -> Response:
    """A group, its owners and the viewer's place in it (404 for a private group the viewer is not in)."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        place = await groups.viewing_id(conn, who, path_int(request, "id"))
        owners, _ = await groups.members(conn, place.id, owners=True)
    return JSONResponse({**group_json(place.group, place), "owners": [member_json(r) for r in owners]})


@api.patch("/api/groups/{id:int}", body=GROUP_PATCH, answers={200: GROUP}, auth=True)
async def patch_group(request: Request) -> Response:
    """Change a group's name, description or access (its owners and admins)."""
    async with writing(request, GROUP_PATCH) as w:
        row = await groups.update_group(w.conn, w.who, path_int(request, "id"), w.data)
        place = await groups.viewing(w.conn, w.who, row)
    return JSONResponse(group_json(row, place))


@api.get(
    "/api/groups/{id:int}/members",
    answers={200: page_of(MEMBER)},
    auth=True,
    query={"page": Field("integer", minimum=1, maximum=10_000, description="page number, from 1")},
)
async def list_members(request: Request) -> Response:
    """A group's members, owners first (members who are logged in only)."""
    who = await require_viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        place = await groups.viewing_id(conn, who, path_int(request, "id"))
        rows, more = await groups.members(conn, place.id, page=page)
    return JSONResponse({"items": [member_json(r) for r in rows], "next": page + 1 if more else None})


@api.post(
    "/api/groups/{id:int}/membership",
    body=JOIN_IN,
    answers={
        201: ("{status: member}", STATUS),
        202: ("{status: requested}", STATUS),
        200: ("Already a member", STATUS),
    },
    auth=True,
)
async def join_endpoint(request: Request) -> Response:
    """Join an open group, or ask to join an on-request group (with an optional message for its owners)."""
    group_id = path_int(request, "id")
    async with writing(request, JOIN_IN) as w:
        was_member = (await groups.viewing_id(w.conn, w.who, group_id)).member
        status = await groups.join(w.conn, w.who, group_id, w.data.get("message"))
    if status == "member" and not was_member:
        await _changed(request, w.who.user_id)
    code = 202 if status == "requested" else (200 if was_member else 201)
    return JSONResponse({"status": status}, status_code=code)


@api.delete("/api/groups/{id:int}/membership", answers={204: "Left (or request taken back)"}, auth=True)
async def leave_endpoint(request: Request) -> Response:
    """Leave a group, or take back a request to join it."""
    async with writing(request) as w:
        await groups.leave(w.conn, w.who, path_int(request, "id"))
    await _changed(request, w.who.user_id)
    return Response(status_code=204)


@api.post("/api/groups/{id:int}/members", body=ADD_MEMBER_IN, answers={201: MEMBER}, auth=True)
async def add_member_endpoint(request: Request) -> Response:
    """Add a member by username, optionally as an owner (the group's owners and admins)."""
    async with writing(request, ADD_MEMBER_IN) as w:
        row = await groups.add_member(
            w.conn, w.who, path_int(request, "id"), w.data["username"], owner=bool(w.data.get("owner"))
        )
    await _changed(request, row["id"])
    return JSONResponse(member_json(row), status_code=201)


@api.patch("/api/groups/{id:int}/members/{user_id:int}", body=MEMBER_PATCH, answers={200: MEMBER}, auth=True)
async def patch_member_endpoint(request: Request) -> Response:
    """Make a member an owner, or not (the group's owners and admins)."""
    async with writing(request, MEMBER_PATCH) as w:
        row = await groups.set_owner(
            w.conn, w.who, path_int(request, "id"), path_int(request, "user_id"), w.data["owner"]
        )
    await _changed(request, row["id"])
    return JSONResponse(member_json(row))


@api.delete("/api/groups/{id:int}/members/{user_id:int}", answers={204: "Removed"}, auth=True)
async def remove_member_endpoint(request: Request) -> Response:
    """Remove a member (the group's owners and admins; or yourself)."""
    user_id = path_int(request, "user_id")
    async with writing(request) as w:
        await groups.remove_member(w.conn, w.who, path_int(request, "id"), user_id)
    await _changed(request, user_id)
    return Response(status_code=204)


@api.get("/api/groups/{id:int}/requests", answers={200: page_of(JOIN_REQUEST)}, auth=True)
async def list_requests(request: Request) -> Response:
    """Requests to join waiting for an answer (the group's owners and admins)."""
    return await _owners_list(request, groups.pending_requests, request_json)


@api.post(
    "/api/groups/{id:int}/requests/{user_id:int}",
    body=DECISION_IN,
    answers={200: ("{status: member|denied}", STATUS)},
    auth=True,
)
async def decide_request_endpoint(request: Request) -> Response:
    """Approve or deny a request to join (the group's owners and admins)."""
    user_id = path_int(request, "user_id")
    async with writing(request, DECISION_IN) as w:
        status = await groups.decide_request(w.conn, w.who, path_int(request, "id"), user_id, w.data["action"])
    if status == "member":
        await _changed(request, user_id)
    return JSONResponse({"status": status})


@api.get("/api/groups/{id:int}/invites", answers={200: page_of(INVITE)}, auth=True)
async def list_invites(request: Request) -> Response:
    """Open invitations (the group's owners and admins)."""
    return await _owners_list(request, groups.pending_invites, invite_json)


@api.post("/api/groups/{id:int}/invites", body=INVITE_IN, answers={202: INVITE_SENT}, auth=True)
async def invite_endpoint(request: Request) -> Response:
    """Invite someone by email (the group's owners and admins); the mail carries a signed link valid 14 days."""
    who = await require_writer(request)
    data = await read_json(request, INVITE_IN)
    invitation = await groups.invite(runtime(request), who, path_int(request, "id"), data["email"])
    return JSONResponse({"status": "sent", "id": invitation.id}, status_code=202)


@api.delete("/api/groups/{id:int}/invites/{invite_id:int}", answers={204: "Withdrawn"}, auth=True)
async def revoke_invite_endpoint(request: Request) -> Response:
    """Withdraw an open invitation: its link stops working."""
    async with writing(request) as w:
        await groups.revoke_invite(w.conn, w.who, path_int(request, "id"), path_int(request, "invite_id"))
    return Response(status_code=204)


@api.post("/api/group-invites/accept", body=ACCEPT_IN, answers={200: ("Group (now a member)", GROUP)}, auth=True)
async def accept_invite_endpoint(request: Request) -> Response:
    """Accept an invitation with the token from its link; the viewer's confirmed email must be the one invited."""
    async with writing(request, ACCEPT_IN) as w:
        group = await groups.accept_invite(w.conn, w.who, w.data["token"], secret=runtime(request).settings.key)
    await _changed(request, w.who.user_id)
    async with runtime(request).pool.acquire() as conn:
        place = await groups.viewing_id(conn, w.who, group["id"])
    return JSONResponse(group_json(place.group, place))
