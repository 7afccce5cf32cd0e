"""The members' admin pages: /admin/members (find members; every filter a GET parameter, so it
works without JavaScript) and /admin/members/{id} (a member's standing, links to the moderation
tools, and for admins the role form, with a confirmation when an admin steps down themselves).

Built from members.py and the API's shapes; the role change is accounts/roles.py's. Staff only:
visitors are sent to log in, members get 403, a member that does not exist 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.accounts import roles
from services.forum.members import members
from services.forum.members.api import member_json, standing_json
from services.forum.moderation import audit_words
from shared.api import path_int
from shared.pages import Pages, day, form_data, form_errors, form_text, render, signed_in, when
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

pages = Pages()

LIST_TEMPLATE = "members/index.html"
MEMBER_TEMPLATE = "members/member.html"
FIELD_LABELS = {
    "name": "Name",
    "email": "Email address",
    "role": "Role",
    "status": "Status",
    "joined_since": "Joined from",
    "joined_until": "Joined up to",
    "sort": "Sort",
    "page": "Page",
    "reason": "Reason",
}
FILTER_FIELDS = ("name", "email", "role", "status", "joined_since", "joined_until", "sort")
ROLE_HINTS = {
    "member": "Takes part in the community, without staff tools.",
    "moderator": "Reviews flags and queued posts, hides and restores posts, silences and suspends members.",
    "admin": "Everything moderators do, and runs the community: roles, categories, settings.",
}


def _staff_only(who: Session) -> None:
    access.require_staff(who, "Only moderators and admins can look through members.")


# --- finding members -----------------------------------------------------------------------------------------


def _list_url(query: members.MemberQuery, **changes: Any) -> str:
    params = {**query.params(), **{k: str(v) for k, v in changes.items() if v}}
    return "/admin/members" + (f"?{urlencode(params)}" if params else "")


def _filters(request: Request) -> dict[str, str]:
    """The filters as typed (shown again as they were, even when one is wrong)."""
    return {name: (request.query_params.get(name) or "").replace("\x00", "")[:300] for name in FILTER_FIELDS}


def _list_context(who: Session, filters: dict[str, str]) -> dict[str, Any]:
    def items(choices: dict[str, str], chosen: str, empty: str | None) -> list[dict[str, Any]]:
        first = [{"value": "", "text": empty, "selected": not chosen}] if empty else []
        return first + [{"value": v, "text": t, "selected": v == chosen} for v, t in choices.items()]

    return {
        "filters": filters,
        "may_search_email": access.may_search_email(who),
        "role_items": items(roles.ROLE_NAMES, filters["role"], "Any role"),
        "status_items": items(members.STATUS_NAMES, filters["status"], "Any status"),
        "sort_items": items(members.SORTS, filters["sort"] or "newest", None),
        "role_names": roles.ROLE_NAMES,
        "status_names": members.STATUS_NAMES,
        "results": [],
        "searched": False,
    }


def _filter_errors(exc: ApiError) -> dict[str, Any]:
    """The error summary for a filter that cannot be used, in the page's words (not the API's)."""
    if not exc.fields:
        return {"errors": {"name": exc.message}, "error_list": [{"text": exc.message, "href": "#name"}]}
    field, problem = next(iter(exc.fields.items()))
    text = f"{FIELD_LABELS.get(field, field.replace('_', ' ').capitalize())} {problem}"
    anchor = field if field in FILTER_FIELDS else "name"
    return {"errors": {field: text}, "error_list": [{"text": text, "href": f"#{anchor}"}]}


def _row_view(who: Session, row: Any) -> dict[str, Any]:
    member = member_json(who, row)
    seen = row["last_seen_at"]
    return {
        **member,
        "joined": {"iso": member["created_at"], "text": day(row["created_at"])},
        "seen": when(seen) if seen else None,
    }


@pages.get("/admin/members")
@signed_in(viewer)
async def members_page(request: Request, who: Session) -> Response:
    """Find members by name, email (admins), role, status and join date; newest first, by name or oldest."""
    _staff_only(who)
    context = _list_context(who, _filters(request))
    try:
        query = members.parse_member_query(request, who)
    except ApiError as exc:
        return await render(request, LIST_TEMPLATE, {**context, **_filter_errors(exc)}, status=exc.status)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await members.search(conn, who, query)
    context.update(
        results=[_row_view(who, row) for row in rows],
        searched=True,
        previous_url=_list_url(query, page=query.page - 1 if query.page > 2 else None) if query.page > 1 else None,
        next_url=_list_url(query, page=query.page + 1) if more else None,
    )
    return await render(request, LIST_TEMPLATE, context)


# --- one member ------------------------------------------------------------------------------------------------


def _role_items(current: str, chosen: str | None) -> list[dict[str, Any]]:
    return [
        {
            "value": role,
            "text": roles.ROLE_NAMES[role] + (" (now)" if role == current else ""),
            "hint": {"text": ROLE_HINTS[role]},
            "checked": role == (chosen or current),
        }
        for role in roles.ROLES
    ]


async def _member_context(request: Request, who: Session, user_id: int) -> dict[str, Any]:
    async with runtime(request).pool.acquire() as conn:
        found = await members.standing(conn, who, user_id)
        shown = standing_json(who, found)
        sanctions = await audit_words.described(conn, who, shown["sanctions"])
        history = await audit_words.described(conn, who, shown["role_history"]) if "role_history" in shown else None
    member = _row_view(who, found.member)
    return {
        **shown,
        "member": member,
        "sanctions": sanctions,
        "role_history": history,
        "silenced": _moment(member["silenced"]),
        "suspended": _moment(member["suspended"]),
        "staff_member": member["role"] != "member",
        "may_change_role": access.may_change_roles(who),
        "role_items": _role_items(member["role"], None),
        "role_names": roles.ROLE_NAMES,
        "status_names": members.STATUS_NAMES,
        "appeal_words": APPEAL_WORDS,
        "form": {},
    }


APPEAL_WORDS = {
    "pending": "Waiting for a moderator",
    "approved": "Upheld: the post was restored",
    "rejected": "Decision kept",
    "deleted": "Decision kept: the post was removed",
    "ignored": "Closed",
}


def _moment(sanction: dict[str, Any] | None) -> dict[str, Any] | None:
    if sanction is None:
        return None
    return {**when(datetime.fromisoformat(sanction["until"])), "reason": sanction["reason"]}


@pages.get("/admin/members/{id}")
@signed_in(viewer)
async def member_page(request: Request, who: Session) -> Response:
    """A member's standing (posts, flags, sanctions, appeals, role history) and what staff may do."""
    user_id = path_int(request, "id")
    _staff_only(who)
    context = await _member_context(request, who, user_id)
    context["done"] = request.query_params.get("done") == "role"
    context["duty_done"] = request.query_params.get("done") == "duty"
    return await render(request, MEMBER_TEMPLATE, context)


@pages.post("/admin/members/{id}/duties")
@signed_in(viewer)
async def duties_page(request: Request, who: Session) -> Response:
    """The safeguarding lead form: give a moderator or admin the duty, or take it back, with a reason
    they are told (admins)."""
    user_id = path_int(request, "id")
    access.require_admin(who, "Only admins can change who is a safeguarding lead.")
    submitted = await form_data(request)
    form = {"lead": form_text(submitted, "lead"), "duty_reason": form_text(submitted, "reason", strip=False)}
    try:
        if form["lead"] not in ("yes", "no"):
            raise ApiError(422, "invalid", "Some fields need attention.", {"lead": "must be yes or no"})
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            await roles.change_duty(conn, who, user_id, form["lead"] == "yes", form["duty_reason"])
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        context = await _member_context(request, who, user_id)
        fields = exc.fields or {}
        message = f"Reason {fields['reason']}" if "reason" in fields else exc.message
        anchor = "duty_reason" if "reason" in fields else "duty-heading"
        errors: dict[str, Any] = {
            "errors": {"duty_reason" if "reason" in fields else "duty": message},
            "error_list": [{"text": message, "href": f"#{anchor}"}],
        }
        return await render(request, MEMBER_TEMPLATE, {**context, "duty_form": form, **errors}, status=exc.status)
    return RedirectResponse(f"{members.admin_url(user_id)}?done=duty#duty-heading", status_code=303)


def _lowers(current: str, role: str) -> bool:
    return role in roles.RANK and roles.RANK[role] < roles.RANK[current]


@pages.post("/admin/members/{id}/role")
@signed_in(viewer)
async def role_page(request: Request, who: Session) -> Response:
    """The role form: member, moderator or admin, with a reason the member is told. An admin who
    lowers their own role confirms it first."""
    user_id = path_int(request, "id")
    access.require_admin(who, "Only admins can change a member's role.")
    submitted = await form_data(request)
    form = {"role": form_text(submitted, "role"), "reason": form_text(submitted, "reason", strip=False)}
    rt = runtime(request)
    try:
        roles.check_role(form["role"] or None)
        roles.clean_reason(form["reason"])
        if user_id == who.user_id and form_text(submitted, "confirm") != "yes":
            async with rt.pool.acquire() as conn:
                me = await members.member_row(conn, who, user_id)
            if _lowers(roles.role_of(me["roles"]), form["role"]):
                return await _confirm(request, user_id, form, roles.role_of(me["roles"]))
        change = await roles.change_role_now(rt, who, user_id, form["role"], form["reason"])
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        context = await _member_context(request, who, user_id)
        context.update(form=form, role_items=_role_items(context["member"]["role"], form["role"] or None))
        errors = form_errors(exc, "role", labels=FIELD_LABELS, anchors={"role": "role"})
        return await render(request, MEMBER_TEMPLATE, {**context, **errors}, status=exc.status)
    if change.user_id == who.user_id and change.after == "member":
        return await render(request, "members/role_done.html", {"change": change, "role_names": roles.ROLE_NAMES})
    return RedirectResponse(f"{members.admin_url(user_id)}?done=role#role-heading", status_code=303)


async def _confirm(request: Request, user_id: int, form: dict[str, str], current: str) -> Response:
    return await render(
        request,
        "members/confirm_role.html",
        {
            "user_id": user_id,
            "form": form,
            "current": current,
            "role_names": roles.ROLE_NAMES,
            "back": members.admin_url(user_id),
        },
    )


routes = pages.routes
