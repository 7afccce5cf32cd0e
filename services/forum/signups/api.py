"""The sign-ups JSON API, for moderators and admins: the queue of accounts waiting for approval
and the decision on each, invitations to join (send, list, resend, withdraw); its request schemas
and the `*_json` shapes the pages use too. Rules and actions are in signups.py and invitations.py.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.accounts.accounts import EMAIL_MAX
from services.forum.accounts.api import PERSON
from services.forum.signups import invitations, signups
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, page_of, path_int, query_choice, query_int, read_json
from shared.sessions import Session
from shared.web import require_viewer, require_writer, runtime

api = ApiRouter(tag="signups")

# --- request schemas -----------------------------------------------------------------------------------

DECISION_IN = Schema(
    "SignupDecision",
    {
        "decision": Field("string", required=True, enum=signups.DECISIONS),
        "note": Field(
            "string",
            nullable=True,
            max_length=signups.NOTE_MAX,
            description="for the person, in the mail that tells them (plain text)",
        ),
    },
)
INVITATION_IN = Schema(
    "InvitationIn",
    {
        "email": Field("string", required=True, max_length=EMAIL_MAX),
        "note": Field(
            "string",
            nullable=True,
            max_length=invitations.NOTE_MAX,
            description="a personal note, in the invitation's mail (plain text)",
        ),
    },
)

# --- JSON shapes -----------------------------------------------------------------------------------------

SIGNUP = Shape(
    "WaitingSignup",
    {
        "id": "integer",
        "username": "string",
        "display_name": "string",
        "email_confirmed": "boolean",
        "answer": "string",
        "created_at": "datetime",
        "email?": "string",
    },
)
DECIDED = Shape("SignupDecided", {"status": "string", "id": "integer", "username": "string"})
INVITATION = Shape(
    "Invitation",
    {
        "id": "integer",
        "email": "string",
        "note": "string",
        "status": "string",
        "invited_by": Maybe(PERSON),
        "created_at": "datetime",
        "sent_at": "datetime",
        "expires_at": "datetime",
        "used_at": "datetime?",
        "used_by": Maybe(PERSON),
        "withdrawn_at": "datetime?",
    },
)
PAGE_QUERY = Field("integer", minimum=1, maximum=10_000, description="page number, from 1")


def signup_json(waiting: signups.Waiting, who: Session | None) -> dict[str, Any]:
    """A waiting account as staff see it, with its answer; the address for admins only."""
    out: dict[str, Any] = {
        "id": waiting.id,
        "username": waiting.username,
        "display_name": waiting.display_name,
        "email_confirmed": waiting.email_verified,
        "answer": waiting.answer,
        "created_at": waiting.created_at.isoformat(),
    }
    if access.may_see_email(who, waiting.id):
        out["email"] = waiting.email
    return out


def _person(user_id: int | None, username: str | None, display_name: str | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "username": username, "display_name": display_name or ""}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def invitation_json(row: asyncpg.Record) -> dict[str, Any]:
    """An invitation as staff see it: to whom, its note and status, who sent and who used it."""
    return {
        "id": row["id"],
        "email": row["email"],
        "note": row["note"],
        "status": row["status"],
        "invited_by": _person(row["inviter_id"], row["inviter_username"], row["inviter_name"]),
        "created_at": row["created_at"].isoformat(),
        "sent_at": row["sent_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        "used_at": _iso(row["used_at"]),
        "used_by": _person(row["member_id"], row["member_username"], row["member_name"]),
        "withdrawn_at": _iso(row["withdrawn_at"]),
    }


# --- endpoints ---------------------------------------------------------------------------------------------


async def _staff(request: Request, *, writes: bool = False, refusal: str = signups.REFUSAL) -> Session:
    """Moderators and admins only: 401 for visitors, 403 for members (before any body is read)."""
    who = await (require_writer(request) if writes else require_viewer(request))
    access.require_staff(who, refusal)
    return who


@api.get("/api/admin/signups", answers={200: page_of(SIGNUP)}, auth=True, query={"page": PAGE_QUERY})
async def list_signups(request: Request) -> Response:
    """Accounts waiting for approval, oldest first, with their answers (moderators and admins)."""
    who = await _staff(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        waiting, more = await signups.list_waiting(conn, page=page)
    return JSONResponse({"items": [signup_json(w, who) for w in waiting], "next": page + 1 if more else None})


@api.post(
    "/api/admin/signups/{id:int}",
    body=DECISION_IN,
    answers={
        200: ("{status: approved|declined, id, username}; the person is mailed", DECIDED),
        404: "not_found: nobody with that id waits (decided already?)",
        409: "conflict: a member has taken the username or address since",
    },
    auth=True,
)
async def decide_signup(request: Request) -> Response:
    """Approve a waiting account (it can log in) or decline it (it is deleted), with an optional
    note to the person; either way they are mailed (moderators and admins)."""
    who = await _staff(request, writes=True)
    signup_id = path_int(request, "id")
    data = await read_json(request, DECISION_IN)
    done = await signups.decide(runtime(request), who, signup_id, data["decision"], data.get("note"))
    status = "approved" if done.approved else "declined"
    return JSONResponse({"status": status, "id": done.id, "username": done.username})


@api.get(
    "/api/admin/invitations",
    answers={200: page_of(INVITATION)},
    auth=True,
    query={
        "status": Field("string", enum=invitations.STATUSES, description="only invitations with this status"),
        "page": PAGE_QUERY,
    },
)
async def list_invitations(request: Request) -> Response:
    """Invitations to join, newest first, with their status (moderators and admins)."""
    await _staff(request, refusal=invitations.REFUSAL)
    status = query_choice(request, "status", invitations.STATUSES)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await invitations.list_invitations(conn, status=status, page=page)
    return JSONResponse({"items": [invitation_json(row) for row in rows], "next": page + 1 if more else None})


@api.post(
    "/api/admin/invitations",
    body=INVITATION_IN,
    answers={
        201: ("The invitation; its mail is on its way", INVITATION),
        409: "already_invited: an invitation to that address is waiting to be used",
        429: "rate_limited: too many invitations today",
    },
    auth=True,
)
async def send_invitation(request: Request) -> Response:
    """Invite someone to join by email, with an optional personal note: the mail carries a link to
    the registration form, valid 28 days and once (moderators and admins; 50 a day each)."""
    who = await _staff(request, writes=True, refusal=invitations.REFUSAL)
    data = await read_json(request, INVITATION_IN)
    row = await invitations.invite(runtime(request), who, data["email"], data.get("note"))
    return JSONResponse(invitation_json(row), status_code=201)


@api.post(
    "/api/admin/invitations/{id:int}/resend",
    answers={
        200: ("The invitation; a new link is on its way", INVITATION),
        409: "conflict: the invitation was used or withdrawn",
        429: "rate_limited: too many invitations today",
    },
    auth=True,
)
async def resend_invitation(request: Request) -> Response:
    """Send an invitation again with a new link (valid 28 days from now); earlier links stop working."""
    who = await _staff(request, writes=True, refusal=invitations.REFUSAL)
    row = await invitations.resend(runtime(request), who, path_int(request, "id"))
    return JSONResponse(invitation_json(row))


@api.delete(
    "/api/admin/invitations/{id:int}",
    answers={204: "Withdrawn: its link no longer works", 409: "conflict: the invitation was used or withdrawn"},
    auth=True,
)
async def withdraw_invitation(request: Request) -> Response:
    """Withdraw an invitation that was not used: its link stops working (it stays in the list)."""
    who = await _staff(request, writes=True, refusal=invitations.REFUSAL)
    invitation_id = path_int(request, "id")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await invitations.withdraw(conn, who, invitation_id)
    return Response(status_code=204)
