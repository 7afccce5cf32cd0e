"""The admin home, /admin: every tool a moderator or admin may use, with what waits in each."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.forum.admin import admin
from shared.pages import Pages, render, signed_in
from shared.sessions import Session
from shared.web import runtime, viewer

pages = Pages()


@pages.get("/admin")
@signed_in(viewer)
async def admin_home(request: Request, who: Session) -> Response:
    """Staff's tools under plain headings (admins see more), each with what waits there; visitors log in first."""
    groups = admin.sections_for(who)
    async with runtime(request).pool.acquire() as conn:
        waiting = await admin.waiting(conn, who)
    return await render(request, "admin/home.html", {"groups": groups, "waiting": waiting})


routes = pages.routes
