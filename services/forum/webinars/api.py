"""The webinars JSON API: its endpoints, request schemas, the webinar's JSON shape (which the
pages build on) and the registration list as CSV. Rules and actions are in webinars.py.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.webinars import webinars
from shared.api import ApiRouter, Field, Schema, Shape, page_of, path_int, query_choice, query_int, read_json, writing
from shared.sessions import Session
from shared.web import require_viewer, require_writer, runtime, viewer

api = ApiRouter(tag="webinars")


_COMMON_FIELDS: dict[str, Field] = {
    "description": Field(
        "string", max_length=webinars.DESCRIPTION_MAX, nullable=True, strip=False, description="Markdown"
    ),
    "chair": Field("string", max_length=200, nullable=True),
    "speakers": Field(
        "array",
        items="object",
        max_length=webinars.SPEAKERS_MAX,
        nullable=True,
        description="{name, role, organisation, expert_by_experience, user_id}",
    ),
    "themes": Field("array", items="string", max_length=webinars.THEMES_MAX, nullable=True),
    "join_url": Field(
        "string", max_length=webinars.URL_MAX, pattern=webinars.HTTPS_URL, nullable=True, description="https link"
    ),
    "organiser_ids": Field(
        "array",
        items="integer",
        max_length=20,
        minimum=1,
        maximum=access.MAX_ID,
        nullable=True,
        description="member ids",
    ),
}
WEBINAR_IN = Schema(
    "WebinarIn",
    {
        "title": Field("string", required=True, min_length=webinars.TITLE_MIN, max_length=webinars.TITLE_MAX),
        "starts_at": Field("string", required=True, max_length=40, description="ISO 8601 with an offset"),
        "ends_at": Field("string", required=True, max_length=40, description="ISO 8601 with an offset"),
        "capacity": Field("integer", required=True, minimum=1, maximum=webinars.CAPACITY_MAX),
        **_COMMON_FIELDS,
    },
)
WEBINAR_PATCH = Schema(
    "WebinarPatch",
    {
        "title": Field("string", min_length=webinars.TITLE_MIN, max_length=webinars.TITLE_MAX, nullable=True),
        "starts_at": Field("string", max_length=40, nullable=True),
        "ends_at": Field("string", max_length=40, nullable=True),
        "capacity": Field("integer", minimum=1, maximum=webinars.CAPACITY_MAX, nullable=True),
        "status": Field("string", enum=("scheduled", "live", "finished"), nullable=True, description="cancel: POST"),
        "attendance": Field("integer", minimum=0, maximum=1_000_000, nullable=True),
        "recording_url": Field("string", max_length=webinars.URL_MAX, pattern=webinars.HTTPS_URL, nullable=True),
        "slides_url": Field("string", max_length=webinars.URL_MAX, pattern=webinars.HTTPS_URL, nullable=True),
        "slides_document_id": Field("integer", minimum=1, maximum=access.MAX_ID, nullable=True),
        **_COMMON_FIELDS,
    },
)
CANCEL_IN = Schema("WebinarCancel", {"reason": Field("string", max_length=500, nullable=True)})


# --- JSON shape ---------------------------------------------------------------------

WEBINAR = Shape(
    "Webinar",
    {
        "id": "integer",
        "title": "string",
        "description": "string?",
        "starts_at": "datetime",
        "ends_at": "datetime",
        "starts_at_local": "string",
        "ends_at_local": "string",
        "time_zone": "string",
        "chair": "string?",
        "speakers": ["object"],
        "themes": ["string"],
        "capacity": "integer",
        "registered_count": "integer",
        "waiting_count": "integer",
        "seats_left": "integer",
        "status": "string",
        "topic_id": "integer?",
        "topic_url": "string?",
        "url": "string",
        "calendar_url": "string",
        "attendance": "integer?",
        "recording_url": "string?",
        "slides_url": "string?",
        "slides_document_id": "integer?",
        "sequence": "integer",
        "my_registration": "string?",
        "waiting_position?": "integer",
        "join_url?": "string?",
        "organiser_ids?": ["integer"],
    },
)
REGISTRATION = Shape(
    "WebinarRegistration",
    {
        "user_id": "integer",
        "username": "string",
        "display_name": "string",
        "email": "string",
        "status": "string",
        "registered_at": "datetime",
    },
)


def webinar_json(row: asyncpg.Record, who: Session | None, registration: str | None = None) -> dict[str, Any]:
    """The public shape of a webinar; `join_url` only for registered members and organisers."""
    out: dict[str, Any] = {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "starts_at": webinars.iso(row["starts_at"]),
        "ends_at": webinars.iso(row["ends_at"]),
        "starts_at_local": webinars.format_london(row["starts_at"]),
        "ends_at_local": webinars.format_london(row["ends_at"]),
        "time_zone": "Europe/London",
        "chair": row["chair"],
        "speakers": row["speakers"],
        "themes": list(row["themes"]),
        "capacity": row["capacity"],
        "registered_count": row["registered_count"],
        "waiting_count": row["waiting_count"],
        "seats_left": max(0, row["capacity"] - row["registered_count"]),
        "status": row["status"],
        "topic_id": row["topic_id"],
        "topic_url": f"/t/{row['topic_id']}" if row["topic_id"] else None,
        "url": webinars.webinar_url(row["id"]),
        "calendar_url": f"{webinars.webinar_url(row['id'])}.ics",
        "attendance": row["attendance"],
        "recording_url": row["recording_url"],
        "slides_url": row["slides_url"],
        "slides_document_id": row["slides_document_id"],
        "sequence": row["sequence"],
        "my_registration": registration,
    }
    if webinars.may_join(who, row, registration):
        out["join_url"] = row["join_url"]
    if webinars.is_organiser(who, row):
        out["organiser_ids"] = list(row["organiser_ids"])
    return out


def registration_json(row: asyncpg.Record) -> dict[str, Any]:
    """A registration or waiting place, for the webinar's organisers."""
    return {
        "user_id": row["user_id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "email": row["email"],
        "status": row["status"],
        "registered_at": webinars.iso(row["created_at"]),
    }


# --- endpoints ---------------------------------------------------------------------


async def _json_for(conn: asyncpg.Connection, row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A webinar's JSON for `who`, with their registration and, when waiting, their place in the queue."""
    registration = await webinars.my_registration(conn, row["id"], who)
    out = webinar_json(row, who, registration)
    if registration == "waiting" and who is not None:
        out["waiting_position"] = await webinars.waiting_position(conn, row["id"], who.user_id)
    return out


async def _webinar_out(request: Request, row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """The webinar's JSON for `who` (_json_for), read on a connection of its own."""
    async with runtime(request).pool.acquire() as conn:
        return await _json_for(conn, row, who)


WEBINARS_PER_PAGE = 30


@api.get(
    "/api/webinars",
    answers={200: page_of(WEBINAR)},
    query={
        "when": Field("string", enum=("upcoming", "past"), description="upcoming (default) or past"),
        "page": Field("integer", minimum=1, maximum=10_000, description="1-based"),
    },
)
async def list_webinars_endpoint(request: Request) -> Response:
    """Upcoming (or past) webinars."""
    when = query_choice(
        request, "when", ("upcoming", "past"), default="upcoming", field_error="must be upcoming or past"
    )
    page = query_int(request, "page", 1)
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        rows = await webinars.list_webinars(
            conn, past=when == "past", limit=WEBINARS_PER_PAGE + 1, offset=(page - 1) * WEBINARS_PER_PAGE
        )
        items = [await _json_for(conn, r, who) for r in rows[:WEBINARS_PER_PAGE]]
    return JSONResponse({"items": items, "next": page + 1 if len(rows) > WEBINARS_PER_PAGE else None})


@api.post("/api/webinars", body=WEBINAR_IN, answers={201: WEBINAR}, auth=True)
async def create_webinar_endpoint(request: Request) -> Response:
    """Schedule a webinar (admins), with its discussion topic."""
    async with writing(request, WEBINAR_IN) as w:
        row = await webinars.create_webinar(w.conn, w.who, w.data)
    return JSONResponse(await _webinar_out(request, row, w.who), status_code=201)


@api.get("/api/webinars/{id:int}", answers={200: WEBINAR})
async def get_webinar_endpoint(request: Request) -> Response:
    """One webinar; the join link only for registered members and organisers."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        row = await webinars.fetch_webinar(conn, path_int(request, "id"))
        return JSONResponse(await _json_for(conn, row, who))


@api.patch("/api/webinars/{id:int}", body=WEBINAR_PATCH, answers={200: WEBINAR}, auth=True)
async def update_webinar_endpoint(request: Request) -> Response:
    """Change a webinar, or record attendance, recording and slides (organisers)."""
    who = await require_writer(request)
    webinar_id = path_int(request, "id")
    data = await read_json(request, WEBINAR_PATCH)
    row = await webinars.change(runtime(request), who, webinar_id, data)
    return JSONResponse(await _webinar_out(request, row, who))


@api.post("/api/webinars/{id:int}/cancel", body=CANCEL_IN, answers={200: WEBINAR}, auth=True)
async def cancel_webinar_endpoint(request: Request) -> Response:
    """Cancel a webinar (organisers); registrants get a cancellation mail instead of reminders."""
    who = await require_writer(request)
    webinar_id = path_int(request, "id")
    await read_json(request, CANCEL_IN)
    row = await webinars.cancel(runtime(request), who, webinar_id)
    return JSONResponse(await _webinar_out(request, row, who))


@api.post(
    "/api/webinars/{id:int}/registration",
    answers={201: ("A seat or a waiting place", Shape("WebinarSeat", {"status": "string", "webinar": WEBINAR}))},
    auth=True,
)
async def register_endpoint(request: Request) -> Response:
    """Register: a seat, or a place on the waiting list when it is full."""
    who = await require_writer(request)
    status, row = await webinars.take_seat(runtime(request), who, path_int(request, "id"))
    return JSONResponse({"status": status, "webinar": await _webinar_out(request, row, who)}, status_code=201)


@api.delete("/api/webinars/{id:int}/registration", answers={204: "Cancelled"}, auth=True)
async def unregister_endpoint(request: Request) -> Response:
    """Cancel your registration or waiting place; the first on the waiting list gets the seat."""
    who = await require_writer(request)
    await webinars.give_up_seat(runtime(request), who, path_int(request, "id"))
    return Response(status_code=204)


@api.get(
    "/api/webinars/{id:int}/registrations",
    answers={
        200: (
            "Registrations (JSON, or CSV with ?format=csv)",
            Shape("WebinarRegistrations", {"registrations": [REGISTRATION]}),
            "text/csv",
        )
    },
    auth=True,
    query={"format": Field("string", enum=("json", "csv"), description="json (default) or csv")},
)
async def registrations_endpoint(request: Request) -> Response:
    """The registration list and waiting list (organisers)."""
    who = await require_viewer(request)
    fmt = query_choice(request, "format", ("json", "csv"), default="json", field_error="must be json or csv")
    webinar_id = path_int(request, "id")
    async with runtime(request).pool.acquire() as conn:
        row = await webinars.fetch_webinar(conn, webinar_id)
        webinars.require_organiser(who, row)
        rows = await webinars.registrations(conn, webinar_id)
    if fmt == "csv":
        return csv_response(rows, webinar_id)
    return JSONResponse({"registrations": [registration_json(r) for r in rows]})


def csv_response(rows: list[asyncpg.Record], webinar_id: int) -> Response:
    """The registration list as a CSV download (never cached: it holds email addresses)."""
    return Response(
        webinars.registrations_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="webinar-{webinar_id}-registrations.csv"',
            "cache-control": "no-store",
        },
    )
