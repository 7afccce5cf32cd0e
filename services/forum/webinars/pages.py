"""Webinar pages: upcoming and past lists, the webinar page (speakers, register or cancel,
add to calendar, the discussion; the join link only for registered members and organisers),
and the organisers' forms (schedule, edit with attendance/recording/slides, cancel).

Forms take the date and times as they are in the UK (Europe/London) and store them in UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from html import escape
from typing import Any

import asyncpg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.webinars import api as webinar_api
from services.forum.webinars import calendar as webinar_calendar
from services.forum.webinars import webinars
from shared import markdown
from shared.api import path_int
from shared.pages import (
    Pages,
    form_data,
    form_errors,
    form_text,
    login_redirect,
    member_session,
    page_status,
    render,
    signed_in,
)
from shared.sessions import Session
from shared.web import ApiError, invalid, runtime

pages = Pages()

# Where each API field's error is shown on the form.
FIELD_IDS = {"starts_at": "date", "ends_at": "end_time"}


def view(row: Any, who: Session | None, registration: str | None, position: int | None = None) -> dict[str, Any]:
    """A webinar as its templates use it."""
    out = webinar_api.webinar_json(row, who, registration)
    out["waiting_position"] = position
    out["can_register"] = row["status"] in ("scheduled", "live") and out["my_registration"] is None
    out["is_organiser"] = webinars.is_organiser(who, row)
    out["date_local"] = webinars.london(row["starts_at"]).strftime("%Y-%m-%d")
    out["start_time_local"] = webinars.london(row["starts_at"]).strftime("%H:%M")
    out["end_time_local"] = webinars.london(row["ends_at"]).strftime("%H:%M")
    return out


pages.add("/webinars.ics", webinar_calendar.feed_ics)  # the calendar files: calendar.py


@pages.get("/webinars")
@pages.get("/webinars/past")
async def list_page(request: Request) -> Response:
    """GET /webinars and /webinars/past."""
    past = request.url.path.endswith("/past")
    who = await member_session(request)
    async with runtime(request).pool.acquire() as conn:
        rows = await webinars.list_webinars(conn, past=past)
        items = [view(r, who, await webinars.my_registration(conn, r["id"], who)) for r in rows]
    return await render(
        request,
        "webinars/list.html",
        {"webinars": items, "past": past, "can_schedule": access.is_admin(who)},
    )


pages.add("/webinars/{id:int}.ics", webinar_calendar.webinar_ics)


@pages.get("/webinars/{id:int}")
async def webinar_page(request: Request) -> Response:
    """GET /webinars/{id}."""
    who = await member_session(request)
    webinar_id = path_int(request, "id")
    async with runtime(request).pool.acquire() as conn:
        row = await webinars.fetch_webinar(conn, webinar_id)
        registration = await webinars.my_registration(conn, webinar_id, who)
        position = (
            await webinars.waiting_position(conn, webinar_id, who.user_id)
            if who and registration == "waiting"
            else None
        )
        item = view(row, who, registration, position)
        description_html = await _description_html(row["description"], runtime(request).settings.render_budget_ms)
        speaker_ids = [s["user_id"] for s in row["speakers"] if s.get("user_id")]
        usernames = dict(
            await conn.fetch("SELECT id, username FROM forum.users WHERE id = ANY($1::bigint[])", speaker_ids)
        )
        document = None
        if row["slides_document_id"]:
            document = await conn.fetchrow(
                "SELECT id, title FROM forum.documents WHERE id = $1", row["slides_document_id"]
            )
    return await render(
        request,
        "webinars/webinar.html",
        {
            "webinar": item,
            "description_html": description_html,
            "slides_document": document,
            "speaker_usernames": usernames,
            "notice": request.query_params.get("done", ""),
        },
    )


async def _description_html(description: str | None, budget_ms: int) -> str:
    """A webinar's description as HTML (rendered in a worker process); plain paragraphs when it is
    too complex to render, so the page still shows it."""
    if not description:
        return ""
    try:
        return (await markdown.render_async(description, budget_ms=budget_ms)).cooked
    except markdown.TooComplex:
        return "".join(f"<p>{escape(part)}</p>" for part in description.split("\n\n") if part.strip())


@pages.post("/webinars/{id:int}/register")
@pages.post("/webinars/{id:int}/unregister")
async def register_page(request: Request) -> Response:
    """POST /webinars/{id}/register and /webinars/{id}/unregister."""
    who = await member_session(request)
    webinar_id = path_int(request, "id")
    if who is None:
        return login_redirect(request, webinars.webinar_url(webinar_id))
    await form_data(request)
    if request.url.path.endswith("/unregister"):
        await webinars.give_up_seat(runtime(request), who, webinar_id)
        done = "cancelled"
    else:
        done, _ = await webinars.take_seat(runtime(request), who, webinar_id)
    return RedirectResponse(f"{webinars.webinar_url(webinar_id)}?done={done}", status_code=303)


# --- organiser forms ----------------------------------------------------------------


def form_values(form: FormData | None, row: Any | None, who: Session | None) -> dict[str, str]:
    """The form's values: as submitted, or from the webinar being edited."""
    names = [
        "title",
        "description",
        "date",
        "start_time",
        "end_time",
        "capacity",
        "chair",
        "speakers",
        "themes",
        "join_url",
        "status",
        "attendance",
        "recording_url",
        "slides_url",
        "slides_document_id",
    ]
    if form is not None:
        return {name: form_text(form, name) for name in names}
    if row is None:
        return {name: "" for name in names} | {"capacity": "100"}
    item = view(row, who, None)
    speakers = "\n".join(
        " | ".join(
            [s["name"], s["role"], s["organisation"], "expert by experience" if s["expert_by_experience"] else ""]
        ).rstrip(" |")
        for s in row["speakers"]
    )
    return {
        "title": row["title"],
        "description": row["description"],
        "date": item["date_local"],
        "start_time": item["start_time_local"],
        "end_time": item["end_time_local"],
        "capacity": str(row["capacity"]),
        "chair": row["chair"],
        "speakers": speakers,
        "themes": ", ".join(row["themes"]),
        "join_url": row["join_url"],
        "status": row["status"],
        "attendance": "" if row["attendance"] is None else str(row["attendance"]),
        "recording_url": row["recording_url"] or "",
        "slides_url": row["slides_url"] or "",
        "slides_document_id": "" if row["slides_document_id"] is None else str(row["slides_document_id"]),
    }


def parse_speakers(raw: str) -> list[dict[str, Any]]:
    """One speaker a line: name | role | organisation | "expert by experience" (optional)."""
    speakers = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")] + ["", "", ""]
        expert = any(p.lower() in ("expert by experience", "yes", "expert") for p in parts[3:])
        speakers.append({"name": parts[0], "role": parts[1], "organisation": parts[2], "expert_by_experience": expert})
    return speakers


def _local(day: str, clock: str, field: str) -> str:
    try:
        when = datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=webinars.LONDON)
    except ValueError:
        raise invalid(field, "must be a date like 2026-03-29 and a time like 18:00") from None
    return when.isoformat()


def _whole(value: str, field: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise invalid(field, "must be a whole number")
    return int(value)


def form_to_data(values: dict[str, str], *, editing: bool) -> dict[str, Any]:
    """API-shaped data (WEBINAR_IN / WEBINAR_PATCH) from the form's values."""
    data: dict[str, Any] = {
        "title": values["title"],
        "description": values["description"],
        "starts_at": _local(values["date"], values["start_time"], "date"),
        "ends_at": _local(values["date"], values["end_time"], "end_time"),
        "capacity": _whole(values["capacity"], "capacity"),
        "chair": values["chair"],
        "speakers": parse_speakers(values["speakers"]),
        "themes": [t for t in values["themes"].split(",") if t.strip()],
        "join_url": values["join_url"] or None,
    }
    if editing:
        data["status"] = values["status"] or None
        data["attendance"] = _whole(values["attendance"], "attendance")
        data["recording_url"] = values["recording_url"] or None
        data["slides_url"] = values["slides_url"] or None
        data["slides_document_id"] = _whole(values["slides_document_id"], "slides_document_id")
    schema = webinar_api.WEBINAR_PATCH if editing else webinar_api.WEBINAR_IN
    return schema.validate({k: v for k, v in data.items() if v is not None or k == "slides_document_id"})


def _errors(exc: ApiError) -> dict[str, Any]:
    errors = form_errors(exc, "title")
    fields = {FIELD_IDS.get(k, k): v for k, v in errors["errors"].items()}
    return {"errors": fields, "error_list": [{"text": m, "href": f"#{k}"} for k, m in fields.items()]}


async def _organised(request: Request, who: Session) -> asyncpg.Record:
    """The webinar this page is about, for its organisers and admins (403 for anyone else)."""
    async with runtime(request).pool.acquire() as conn:
        row = await webinars.fetch_webinar(conn, path_int(request, "id"))
    webinars.require_organiser(who, row)
    return row


def _for_organisers(
    page: Callable[[Request, Session, asyncpg.Record], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A page about one webinar for its organisers and admins, given the member and the webinar:
    a visitor is sent to log in first, any other member refused (403).
    """

    @functools.wraps(page)
    async def endpoint(request: Request) -> Response:
        who = await member_session(request)
        if who is None:
            return login_redirect(request)
        return await page(request, who, await _organised(request, who))

    return endpoint


@pages.form("/webinars/new")
@pages.form("/webinars/{id:int}/edit")
@signed_in(member_session)
async def form_page(request: Request, who: Session) -> Response:
    """GET/POST /webinars/new and /webinars/{id}/edit (organisers)."""
    editing = "id" in request.path_params
    row = await _organised(request, who) if editing else None
    if not editing and not access.is_admin(who):
        raise ApiError(403, "forbidden", "Only admins can schedule webinars.")
    form = await form_data(request) if request.method == "POST" else None
    values = form_values(form, row, who)
    context: dict[str, Any] = {"webinar": view(row, who, None) if row else None, "values": values}
    if form is None:
        return await render(request, "webinars/form.html", context)
    try:
        data = form_to_data(values, editing=editing)
        if row is not None:
            saved = await webinars.change(runtime(request), who, row["id"], data)
        else:
            async with runtime(request).pool.acquire() as conn, conn.transaction():
                saved = await webinars.create_webinar(conn, who, data)
    except ApiError as exc:
        if exc.status in (403, 404):
            raise
        context.update(_errors(exc))
        return await render(request, "webinars/form.html", context, status=page_status(exc))
    return RedirectResponse(f"{webinars.webinar_url(saved['id'])}?done=saved", status_code=303)


@pages.form("/webinars/{id:int}/cancel")
@_for_organisers
async def cancel_page(request: Request, who: Session, row: asyncpg.Record) -> Response:
    """GET/POST /webinars/{id}/cancel: confirm, then cancel (organisers)."""
    if request.method == "GET":
        return await render(request, "webinars/cancel.html", {"webinar": view(row, who, None)})
    await form_data(request)
    await webinars.cancel(runtime(request), who, row["id"])
    return RedirectResponse(f"{webinars.webinar_url(row['id'])}?done=webinar_cancelled", status_code=303)


@pages.get("/webinars/{id:int}/registrations")
@_for_organisers
async def registrations_page(request: Request, who: Session, row: asyncpg.Record) -> Response:
    """GET /webinars/{id}/registrations (organisers); ?format=csv downloads them."""
    async with runtime(request).pool.acquire() as conn:
        rows = await webinars.registrations(conn, row["id"])
    if request.query_params.get("format") == "csv":
        return webinar_api.csv_response(rows, row["id"])
    people = [{**dict(r), "registered_at": webinars.format_london(r["created_at"])} for r in rows]
    return await render(
        request, "webinars/registrations.html", {"webinar": view(row, who, None), "registrations": people}
    )


routes = pages.routes
