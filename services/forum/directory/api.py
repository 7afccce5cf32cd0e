"""The member directory's JSON API: searching the directory, and badges (admins create, give
and take them back); the member card and badge shapes the pages use too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.accounts import accounts
from services.forum.accounts.api import AVATAR, PUBLIC_USER, avatar_json, public_json
from services.forum.directory.directory import (
    BADGE_DESCRIPTION_MAX,
    BADGE_NAME_MAX,
    MAX_SHOWN_CHOICE,
    choose_shown_badges,
    create_badge,
    grant_badge,
    list_badges,
    my_badges,
    revoke_badge,
    search,
)
from shared.api import ApiRouter, Field, Schema, Shape, page_of, path_int, query_int, writing
from shared.web import require_viewer, runtime

api = ApiRouter(tag="directory")

BADGE_IN = Schema(
    "BadgeIn",
    {
        "name": Field(
            "string",
            required=True,
            min_length=1,
            max_length=BADGE_NAME_MAX,
            description='for example "Expert by experience", "Core Action Group" or an organisation',
        ),
        "description": Field("string", nullable=True, max_length=BADGE_DESCRIPTION_MAX),
    },
)
GRANT_IN = Schema("BadgeGrant", {"badge_id": Field("integer", required=True, minimum=1, maximum=access.MAX_ID)})
SEARCH_QUERY: dict[str, str | Field] = {
    "q": "words to find in the name, username, organisation or interests (every word must match)",
    "organisation": "words to find in the organisation",
    "interest": "words to find in the interests",
    "badge": Field("integer", minimum=0, maximum=access.MAX_ID, description="a badge id: only members with it"),
    "page": Field("integer", minimum=1, maximum=10_000, description="page number, from 1"),
}
CARD = Shape(
    "MemberCard",
    {
        "id": "integer",
        "username": "string",
        "display_name": "string",
        "pronouns": "string?",
        "organisation": "string?",
        "interests": "string?",
        "badges": ["object"],
        "url": "string",
        "avatar": AVATAR,
    },
)
SHOWN_IN = Schema(
    "ShownBadges",
    {
        "shown": Field(
            "array",
            required=True,
            items="integer",
            max_length=MAX_SHOWN_CHOICE,
            minimum=1,
            maximum=access.MAX_ID,
            description="ids of your badges to show beside your name on your posts (empty: show none)",
        )
    },
)
MY_BADGE = Shape("MyBadge", {"id": "integer", "name": "string", "description": "string?", "shown": "boolean"})
BADGE = Shape("Badge", {"id": "integer", "name": "string", "description": "string?", "members_count": "integer"})


# --- JSON shapes -----------------------------------------------------------------------------------------------


def card_json(row: asyncpg.Record) -> dict[str, Any]:
    """One member as the directory lists them."""
    badges = accounts.json_list(row["badges"])
    return {
        "id": row["id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "pronouns": row["pronouns"],
        "organisation": row["organisation"],
        "interests": row["interests"],
        "badges": badges,
        "url": f"/u/{quote(row['username'])}",
        "avatar": avatar_json(row["id"], row["display_name"], row["username"]),
    }


def badge_json(row: asyncpg.Record) -> dict[str, Any]:
    """A badge, with how many members have it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "members_count": row["members_count"],
    }


def my_badge_json(row: asyncpg.Record) -> dict[str, Any]:
    """One of the member's own badges, and whether they show it on their posts."""
    return {"id": row["id"], "name": row["name"], "description": row["description"], "shown": row["shown"]}


# --- endpoints --------------------------------------------------------------------------------------------------


def search_filters(request: Request) -> dict[str, Any]:
    """A directory search from the query string (the page's form uses the same names)."""
    params = request.query_params
    badge = query_int(request, "badge", 0, minimum=0, maximum=access.MAX_ID)
    return {
        "q": params.get("q", ""),
        "organisation": params.get("organisation", ""),
        "interest": params.get("interest", ""),
        "badge_id": badge or None,
        "page": query_int(request, "page", 1),
    }


@api.get("/api/directory", answers={200: page_of(CARD)}, auth=True, query=SEARCH_QUERY)
async def directory_endpoint(request: Request) -> Response:
    """Find members by name, organisation and interests (members who are logged in; only those listed)."""
    await require_viewer(request)
    filters = search_filters(request)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await search(conn, **filters)
    return JSONResponse({"items": [card_json(r) for r in rows], "next": filters["page"] + 1 if more else None})


@api.get("/api/badges", answers={200: page_of(BADGE)})
async def badges_endpoint(request: Request) -> Response:
    """Every badge, with how many members have it."""
    async with runtime(request).pool.acquire() as conn:
        rows = await list_badges(conn)
    return JSONResponse({"items": [badge_json(r) for r in rows], "next": None})


@api.post("/api/badges", body=BADGE_IN, answers={201: BADGE}, auth=True)
async def create_badge_endpoint(request: Request) -> Response:
    """Create a badge (admins)."""
    async with writing(request, BADGE_IN) as w:
        row = await create_badge(w.conn, w.who, w.data["name"], w.data.get("description"))
    return JSONResponse(badge_json(row), status_code=201)


@api.post(
    "/api/users/{username}/badges",
    body=GRANT_IN,
    answers={201: ("User (public profile) with the badge", PUBLIC_USER)},
    auth=True,
)
async def grant_badge_endpoint(request: Request) -> Response:
    """Give a member a badge (admins)."""
    async with writing(request, GRANT_IN) as w:
        user = await grant_badge(w.conn, w.who, request.path_params["username"], w.data["badge_id"])
    return JSONResponse(public_json(user), status_code=201)


@api.delete("/api/users/{username}/badges/{badge_id}", answers={204: "Badge taken back"}, auth=True)
async def revoke_badge_endpoint(request: Request) -> Response:
    """Take a badge back from a member (admins)."""
    async with writing(request) as w:
        await revoke_badge(w.conn, w.who, request.path_params["username"], path_int(request, "badge_id"))
    return Response(status_code=204)


@api.get("/api/me/badges", answers={200: page_of(MY_BADGE)}, auth=True)
async def my_badges_endpoint(request: Request) -> Response:
    """Your badges, and which of them show beside your name on your posts (none until you choose)."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        rows = await my_badges(conn, who.user_id)
    return JSONResponse({"items": [my_badge_json(r) for r in rows], "next": None})


@api.put("/api/me/badges", body=SHOWN_IN, answers={200: page_of(MY_BADGE)}, auth=True)
async def choose_badges_endpoint(request: Request) -> Response:
    """Choose which of your badges show beside your name on your posts (422 for a badge you do not have)."""
    async with writing(request, SHOWN_IN) as w:
        rows = await choose_shown_badges(w.conn, w.who, w.data["shown"])
    return JSONResponse({"items": [my_badge_json(r) for r in rows], "next": None})
