"""Group pages: the list of groups, a group with its owners and members, joining,
leaving, asking to join, the owners' tools (requests, adding and removing members,
owners, invitations by email), creating and editing a group, and accepting an invitation.

Every action calls the same check-then-do functions as the JSON API (groups.py); a
private group is a 404 page to everyone outside it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.accounts import accounts
from services.forum.groups import api as group_api
from services.forum.groups import groups
from services.forum.topics.fragments import person
from shared.api import query_int
from shared.pages import (
    Pages,
    Save,
    day,
    form_data,
    form_errors,
    form_page,
    form_text,
    login_redirect,
    member_session,
    members_only,
    page_status,
    render,
)
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

pages = Pages()

DONE = {
    "joined": "You have joined this group.",
    "requested": "Your request to join has been sent to the group's owners.",
    "left": "You have left this group.",
    "withdrawn": "Your request to join has been taken back.",
    "approved": "The request was approved: they are a member now.",
    "denied": "The request was declined.",
    "added": "They are a member now.",
    "removed": "They are no longer a member.",
    "owner": "Owners updated.",
    "invited": "The invitation is on its way. The link works for 14 days.",
    "revoked": "The invitation was withdrawn: its link no longer works.",
    "saved": "Your changes were saved.",
    "created": "The group was created. Add its first owner below.",
    "accepted": "Welcome! You are now a member of this group.",
}
Outcome = tuple[str, int | None]  # what happened (a DONE key), and whose sessions to refresh
ACCESS_TAGS = {"open": ("Open", "green"), "request": ("On request", "blue"), "private": ("Private", "grey")}


# --- helpers -------------------------------------------------------------------------------------------------


def group_view(place: groups.Viewing) -> dict[str, Any]:
    group = place.group
    label, colour = ACCESS_TAGS[group["access"]]
    return {
        **group_api.group_json(group, place),
        "access_label": label,
        "access_colour": colour,
        "access_text": groups.ACCESS_LABELS[group["access"]],
        "place": place,
    }


# --- the list -----------------------------------------------------------------------------------------------------


@pages.get("/groups")
async def groups_page(request: Request) -> Response:
    """Every group the viewer may see, with their place in it."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        items = [group_view(await groups.viewing(conn, who, row)) for row in await groups.list_visible(conn, who)]
    return await render(request, "groups/index.html", {"groups": items})


# --- creating and editing ------------------------------------------------------------------------------------------


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "name": form_text(form, "name"),
        "description": form_text(form, "description"),
        "access": form_text(form, "access"),
    }


async def _group_form(request: Request, context: dict[str, Any], save: Save) -> Response:
    """The group form (for creating and changing a group), whose errors show at the name."""
    return await form_page(request, "groups/form.html", context, read=_form_values, save=save, field="name")


@pages.form("/groups/new")
@members_only
async def new_group_page(request: Request, who: Session) -> Response:
    """Create a group (admins)."""
    if not access.is_admin(who):
        raise ApiError(403, "forbidden", "Only admins can create groups.")

    async def save(conn: asyncpg.Connection, values: dict[str, Any]) -> str:
        data = group_api.GROUP_IN.validate({**values, "access": values["access"] or None})
        row = await groups.create_group(conn, who, data)
        return f"/groups/{row['slug']}?done=created"

    context: dict[str, Any] = {"values": {"access": "open"}, "access_options": groups.ACCESS_LABELS, "new": True}
    return await _group_form(request, context, save)


# --- invitations ------------------------------------------------------------------------------------------------------


@pages.form("/groups/invitations/{token}")
async def invitation_page(request: Request) -> Response:
    """The link in an invitation mail: shows the group and lets the invited member accept."""
    token = str(request.path_params["token"])
    rt = runtime(request)
    who = await member_session(request)
    if request.method == "POST":
        await form_data(request)
    try:
        async with rt.pool.acquire() as conn:
            invite_row, group = await groups.invitation_group(conn, rt.settings.key, token)
    except ApiError as exc:
        return await render(request, "groups/invitation.html", {"expired": True, "message": exc.message}, status=400)
    context: dict[str, Any] = {
        "group": group,
        "token": token,
        "email": invite_row["email"],
        "login_url": f"/login?next={quote(request.url.path)}",
    }
    if request.method == "GET" or who is None:
        return await render(request, "groups/invitation.html", context)
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            joined = await groups.accept_invite(conn, who, token, secret=rt.settings.key)
    except ApiError as exc:
        context.update(form_errors(exc, "accept"))
        return await render(request, "groups/invitation.html", context, status=page_status(exc))
    await accounts.refresh_sessions(rt, who.user_id)
    return RedirectResponse(f"/groups/{joined['slug']}?done=accepted", status_code=303)


# --- one group -------------------------------------------------------------------------------------------------------


async def _group_context(
    conn: asyncpg.Connection, who: Session | None, place: groups.Viewing, page: int
) -> dict[str, Any]:
    owners, _ = await groups.members(conn, place.id, owners=True)
    context: dict[str, Any] = {"group": group_view(place), "owners": [_member(r) for r in owners], "page": page}
    if who is not None:
        rows, more = await groups.members(conn, place.id, page=page)
        context["members"] = [_member(r) for r in rows]
        base = groups.group_url(place.group)
        context["previous_url"] = f"{base}?page={page - 1}" if page > 1 else None
        context["next_url"] = f"{base}?page={page + 1}" if more else None
    if place.can_manage:
        context["requests"] = [
            {**group_api.request_json(r), "person": person(r["id"], r["username"], r["display_name"])}
            for r in await groups.pending_requests(conn, place.id)
        ]
        context["invites"] = [
            {**group_api.invite_json(r), "sent": day(r["created_at"])}
            for r in await groups.pending_invites(conn, place.id)
        ]
    return context


def _member(row: asyncpg.Record) -> dict[str, Any]:
    return {
        **person(row["id"], row["username"], row["display_name"]),
        "owner": row["owner"],
        "joined": day(row["created_at"]),
    }


async def _show(request: Request, slug: str, extra: dict[str, Any] | None = None, status: int = 200) -> Response:
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        place = await groups.viewing(conn, who, await groups.fetch_group_by_slug(conn, slug))
        context = await _group_context(conn, who, place, page)
    done = request.query_params.get("done", "")
    context.update({"done": DONE.get(done), "values": {}})
    context.update(extra or {})
    return await render(request, "groups/show.html", context, status=status)


@pages.get("/groups/{slug}")
async def group_page(request: Request) -> Response:
    """A group: what it is for, its owners and members, and what the viewer can do there."""
    return await _show(request, request.path_params["slug"])


@pages.form("/groups/{slug}/edit")
@members_only
async def edit_group_page(request: Request, who: Session) -> Response:
    """Change a group's name, description and access (owners and admins)."""
    place = await _place(request, who)
    if not place.can_manage:
        raise ApiError(403, "forbidden", "Only the group's owners and admins can change it.")

    async def save(conn: asyncpg.Connection, values: dict[str, Any]) -> str:
        data = group_api.GROUP_PATCH.validate({k: v for k, v in values.items() if k != "access" or v})
        await groups.update_group(conn, who, place.id, data)
        return _done_url(request, "saved")

    group = place.group
    context: dict[str, Any] = {
        "group": group_view(place),
        "access_options": groups.ACCESS_LABELS,
        "new": False,
        "values": {"name": group["name"], "description": group["description"], "access": group["access"]},
    }
    return await _group_form(request, context, save)


async def _place(request: Request, who: Session | None) -> groups.Viewing:
    async with runtime(request).pool.acquire() as conn:
        return await groups.viewing(conn, who, await groups.fetch_group_by_slug(conn, request.path_params["slug"]))


def _done_url(request: Request, what: str) -> str:
    """This group's page, saying what was done."""
    return f"/groups/{quote(request.path_params['slug'])}?done={what}"


def _done(request: Request, what: str) -> Response:
    return RedirectResponse(_done_url(request, what), status_code=303)


async def _act(request: Request, action: Any, field: str) -> Response:
    """Run one action of the group page: check the form, act, then show the page again with what happened."""
    form = await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request, f"/groups/{request.path_params['slug']}")
    rt = runtime(request)
    try:
        place = await _place(request, who)
        async with rt.pool.acquire() as conn, conn.transaction():
            done, changed_user = await action(conn, who, place, form)
    except ApiError as exc:
        if exc.status == 404 and exc.message == groups.not_found().message:
            raise
        values = {k: form_text(form, k) for k in ("username", "email", "message")}
        return await _show(
            request, request.path_params["slug"], {**form_errors(exc, field), "values": values}, status=page_status(exc)
        )
    if changed_user is not None:
        await accounts.refresh_sessions(rt, changed_user)
    return _done(request, done)


@pages.post("/groups/{slug}/join")
async def join_submit(request: Request) -> Response:
    """Join an open group, or ask to join an on-request one."""

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        status = await groups.join(conn, who, place.id, form_text(form, "message"))
        return ("requested", None) if status == "requested" else ("joined", who.user_id)

    return await _act(request, action, "message")


@pages.post("/groups/{slug}/leave")
async def leave_submit(request: Request) -> Response:
    """Leave a group, or take back a request to join it."""

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        await groups.leave(conn, who, place.id)
        return ("withdrawn", None) if place.requested else ("left", who.user_id)

    return await _act(request, action, "leave")


def _user_id(request: Request) -> int:
    raw = str(request.path_params.get("user_id", ""))
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", "Not found.")
    return int(raw)


@pages.post("/groups/{slug}/requests/{user_id}")
async def decide_submit(request: Request) -> Response:
    """Approve or decline a request to join (owners and admins)."""
    user_id = _user_id(request)

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        decision = "approve" if form_text(form, "action") == "approve" else "deny"
        status = await groups.decide_request(conn, who, place.id, user_id, decision)
        return ("approved", user_id) if status == "member" else ("denied", None)

    return await _act(request, action, "requests")


@pages.post("/groups/{slug}/members")
async def add_submit(request: Request) -> Response:
    """Add a member by username (owners and admins)."""

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        row = await groups.add_member(
            conn, who, place.id, form_text(form, "username"), owner=form_text(form, "owner") == "1"
        )
        return "added", row["id"]

    return await _act(request, action, "username")


@pages.post("/groups/{slug}/members/{user_id}/remove")
async def remove_submit(request: Request) -> Response:
    """Remove a member (owners and admins)."""
    user_id = _user_id(request)

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        await groups.remove_member(conn, who, place.id, user_id)
        return ("left" if user_id == who.user_id else "removed"), user_id

    return await _act(request, action, "members")


@pages.post("/groups/{slug}/members/{user_id}/owner")
async def owner_submit(request: Request) -> Response:
    """Make a member an owner, or not (owners and admins)."""
    user_id = _user_id(request)

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        await groups.set_owner(conn, who, place.id, user_id, form_text(form, "owner") == "1")
        return "owner", user_id

    return await _act(request, action, "members")


@pages.post("/groups/{slug}/invites")
async def invite_submit(request: Request) -> Response:
    """Invite someone by email (owners and admins)."""
    form = await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request, f"/groups/{request.path_params['slug']}")
    try:
        place = await _place(request, who)
        await groups.invite(runtime(request), who, place.id, form_text(form, "email"))
    except ApiError as exc:
        if exc.status == 404:
            raise
        return await _show(
            request,
            request.path_params["slug"],
            {**form_errors(exc, "email"), "values": {"email": form_text(form, "email")}},
            status=page_status(exc),
        )
    return _done(request, "invited")


@pages.post("/groups/{slug}/invites/{user_id}/revoke")
async def revoke_submit(request: Request) -> Response:
    """Withdraw an invitation (owners and admins)."""
    invite_id = _user_id(request)

    async def action(conn: asyncpg.Connection, who: Session, place: groups.Viewing, form: FormData) -> Outcome:
        await groups.revoke_invite(conn, who, place.id, invite_id)
        return "revoked", None

    return await _act(request, action, "invites")


routes = pages.routes
