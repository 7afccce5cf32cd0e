"""The member directory's pages: /members (search the directory) and /members/badges (admins
manage badges), built from the directory's actions and the API's shapes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum.accounts import accounts
from services.forum.directory.api import badge_json, card_json, search_filters
from services.forum.directory.directory import (
    badge_holders,
    choose_shown_badges,
    create_badge,
    grant_badge,
    list_badges,
    require_badge_admin,
    revoke_badge,
    search,
)
from shared.pages import Pages, form_data, form_errors, form_text, members_only, render, signed_in
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

pages = Pages()


def _page_url(filters: dict[str, Any], page: int) -> str:
    params = {
        k: v
        for k, v in (
            ("q", filters["q"]),
            ("organisation", filters["organisation"]),
            ("interest", filters["interest"]),
            ("badge", filters["badge_id"] or ""),
            ("page", page if page > 1 else ""),
        )
        if v
    }
    return "/members" + (f"?{urlencode(params)}" if params else "")


@pages.get("/members")
@signed_in(viewer)
async def directory_page(request: Request, who: Session) -> Response:
    """The member directory: search by name, organisation, interests and badge."""
    filters = search_filters(request)
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        rows, more = await search(conn, **filters)
        badges = await list_badges(conn)
    me = await accounts.current_user(rt, who)
    page = filters["page"]
    return await render(
        request,
        "directory/index.html",
        {
            "members": [card_json(r) for r in rows],
            "badges": [badge_json(b) for b in badges],
            "filters": filters,
            "searched": any(filters[k] for k in ("q", "organisation", "interest", "badge_id")),
            "previous_url": _page_url(filters, page - 1) if page > 1 else None,
            "next_url": _page_url(filters, page + 1) if more else None,
            "listed": me.in_directory,
        },
    )


async def _badges_context(conn: asyncpg.Connection) -> dict[str, Any]:
    badges = [
        {**badge_json(b), "holders": [dict(h) for h in await badge_holders(conn, b["id"])]}
        for b in await list_badges(conn)
    ]
    return {"badges": badges}


async def _badge_action(conn: asyncpg.Connection, who: Session, form: FormData) -> str:
    action = form_text(form, "action")
    if action == "create":
        row = await create_badge(conn, who, form_text(form, "name"), form_text(form, "description"))
        return f"The badge \u201c{row['name']}\u201d was created."
    badge = form_text(form, "badge_id")
    if not badge.isdigit() or len(badge) > 18:
        raise accounts.invalid({"badge_id": "Choose a badge"})
    username = form_text(form, "username").lstrip("@")
    if action == "grant":
        user = await grant_badge(conn, who, username, int(badge))
        return f"{user.display_name} has the badge now."
    await revoke_badge(conn, who, username, int(badge))
    return "The badge was taken back."


@pages.form("/members/badges")
@members_only
async def badges_page(request: Request, who: Session) -> Response:
    """Admins: create badges, give them to members and take them back."""
    require_badge_admin(who)
    rt = runtime(request)
    context: dict[str, Any] = {"values": {}}
    if request.method == "POST":
        form = await form_data(request)
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                context["done"] = await _badge_action(conn, who, form)
        except ApiError as exc:
            context.update(
                values={k: form_text(form, k) for k in ("name", "description", "username", "badge_id")},
                **form_errors(exc, "username"),
            )
            async with rt.pool.acquire() as conn:
                context.update(await _badges_context(conn))
            return await render(request, "directory/badges.html", context, status=422 if exc.status != 403 else 403)
    async with rt.pool.acquire() as conn:
        context.update(await _badges_context(conn))
    return await render(request, "directory/badges.html", context)


@pages.post("/me/badges")
@members_only
async def choose_badges_submit(request: Request, session: Session) -> Response:
    """Choose which of your badges show beside your name on your posts (the form on /me/edit)."""
    form = await form_data(request)
    try:
        chosen = [int(value) if isinstance(value, str) else int("") for value in form.getlist("shown")]
    except ValueError:  # not a number, or a file where a badge's number belongs
        raise ApiError(400, "bad_request", "That is not a badge you can choose.") from None
    async with runtime(request).pool.acquire() as conn:
        await choose_shown_badges(conn, session, chosen)
    return RedirectResponse("/me/edit?done=badges#badges", status_code=303)


routes = pages.routes
