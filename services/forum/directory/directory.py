"""The member directory and badges: members who are logged in find each other by name,
organisation and interests; members choose whether they are listed (PATCH /api/me
`in_directory`); admins give badges such as "Expert by experience", "Core Action Group"
or an organisation's name. The JSON API and the pages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.forum.accounts import accounts
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
from shared.pages import form_data, login_redirect, render
from shared.sessions import Session
from shared.web import ApiError, check_csrf, require_viewer, runtime, viewer

api = ApiRouter(tag="directory")

PER_PAGE = 30
QUERY_MAX, QUERY_WORDS = 100, 8
BADGE_NAME_MAX, BADGE_DESCRIPTION_MAX = 60, 300

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
GRANT_IN = Schema("BadgeGrant", {"badge_id": Field("integer", required=True, minimum=1, maximum=2**62)})
SEARCH_QUERY = {
    "q": "words to find in the name, username, organisation or interests (every word must match)",
    "organisation": "words to find in the organisation",
    "interest": "words to find in the interests",
    "badge": "a badge id: only members with it",
    "page": "page number, from 1",
}


# --- SQL ----------------------------------------------------------------------------------------------

_BADGES_OF = """(SELECT coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'name', b.name) ORDER BY lower(b.name)), '[]')
    FROM forum.user_badges ub JOIN forum.badges b ON b.id = ub.badge_id WHERE ub.user_id = u.id)"""

# Each array holds ILIKE patterns that must all match; an empty array matches everyone.
DIRECTORY_SQL = f"""
SELECT u.id, u.username, u.display_name, u.pronouns, u.organisation, u.interests, {_BADGES_OF} AS badges
FROM forum.users u
WHERE u.in_directory AND u.email_verified_at IS NOT NULL
  AND (u.suspended_until IS NULL OR u.suspended_until <= now())
  AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) w WHERE NOT (
        u.display_name ILIKE w OR u.username ILIKE w OR u.organisation ILIKE w OR u.interests ILIKE w))
  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) w WHERE NOT u.organisation ILIKE w)
  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) w WHERE NOT u.interests ILIKE w)
  AND ($4::bigint IS NULL OR EXISTS (SELECT 1 FROM forum.user_badges ub WHERE ub.user_id = u.id AND ub.badge_id = $4))
ORDER BY lower(u.display_name), u.id
LIMIT $5 OFFSET $6
"""

BADGES_SQL = """
SELECT b.id, b.name, b.description, b.created_at,
       (SELECT count(*) FROM forum.user_badges ub WHERE ub.badge_id = b.id) AS members_count
FROM forum.badges b ORDER BY lower(b.name), b.id
"""


def like_patterns(text: str) -> list[str]:
    """ILIKE patterns for the words of a search, wildcards in the words taken literally."""
    words = text[:QUERY_MAX].replace("\x00", "").split()[:QUERY_WORDS]
    return ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]


async def search(
    conn: asyncpg.Connection,
    *,
    q: str = "",
    organisation: str = "",
    interest: str = "",
    badge_id: int | None = None,
    page: int = 1,
) -> tuple[list[asyncpg.Record], bool]:
    """A page of listed members matching every given word; and whether there is another page."""
    rows = await conn.fetch(
        DIRECTORY_SQL,
        like_patterns(q),
        like_patterns(organisation),
        like_patterns(interest),
        badge_id,
        PER_PAGE + 1,
        (page - 1) * PER_PAGE,
    )
    return list(rows[:PER_PAGE]), len(rows) > PER_PAGE


async def list_badges(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(BADGES_SQL))


async def badge_holders(conn: asyncpg.Connection, badge_id: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT u.id, u.username, u.display_name FROM forum.user_badges ub JOIN forum.users u ON u.id = ub.user_id "
            "WHERE ub.badge_id = $1 ORDER BY lower(u.display_name), u.id",
            badge_id,
        )
    )


# --- actions ------------------------------------------------------------------------------------------------


def _require_admin(who: Session) -> None:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "Only admins can manage badges.")


async def create_badge(conn: asyncpg.Connection, who: Session, name: str, description: str | None) -> asyncpg.Record:
    """A new badge (admins); 409 when one has that name."""
    _require_admin(who)
    name, description = name.strip(), (description or "").strip()
    problems = {}
    if not name or len(name) > BADGE_NAME_MAX or accounts.has_controls(name):
        problems["name"] = f"Give the badge a name of 1 to {BADGE_NAME_MAX} characters, on one line"
    if len(description) > BADGE_DESCRIPTION_MAX or accounts.has_controls(description):
        problems["description"] = f"The description must be {BADGE_DESCRIPTION_MAX} characters or fewer, on one line"
    if problems:
        raise accounts.invalid(problems)
    try:
        async with conn.transaction():
            badge_id = await conn.fetchval(
                "INSERT INTO forum.badges (name, description) VALUES ($1, $2) RETURNING id", name, description
            )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "conflict", "A badge already has that name.", {"name": "A badge already has that name"}
        ) from None
    return await _badge(conn, badge_id)


async def _badge(conn: asyncpg.Connection, badge_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT b.id, b.name, b.description, b.created_at, 0::bigint AS members_count FROM forum.badges b "
        "WHERE b.id = $1",
        badge_id,
    )
    if row is None:
        raise ApiError(404, "not_found", "There is no such badge.")
    return row


async def _member(conn: asyncpg.Connection, username: str) -> accounts.User:
    user = await accounts.user_by_username(conn, username) if len(username) <= 100 else None
    if user is None:
        raise ApiError(404, "not_found", "There is no member with that username.")
    return user


async def grant_badge(conn: asyncpg.Connection, who: Session, username: str, badge_id: int) -> accounts.User:
    """Give a member a badge (admins); giving it again changes nothing."""
    _require_admin(who)
    user = await _member(conn, username)
    await _badge(conn, badge_id)
    await conn.execute(
        "INSERT INTO forum.user_badges (user_id, badge_id, granted_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user.id,
        badge_id,
        who.user_id,
    )
    return await _member(conn, username)


async def revoke_badge(conn: asyncpg.Connection, who: Session, username: str, badge_id: int) -> None:
    """Take a badge back (admins); 404 when the member does not have it."""
    _require_admin(who)
    user = await _member(conn, username)
    removed = await conn.fetchval(
        "DELETE FROM forum.user_badges WHERE user_id = $1 AND badge_id = $2 RETURNING badge_id", user.id, badge_id
    )
    if removed is None:
        raise ApiError(404, "not_found", "That member does not have that badge.")


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
        "avatar": {
            "initials": accounts.initials(row["display_name"], row["username"]),
            "colour": accounts.AVATAR_PALETTE[accounts.avatar_index(row["id"])],
        },
    }


def badge_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "members_count": row["members_count"],
    }


# --- endpoints --------------------------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    badge = query_int(request, "badge", 0, minimum=0, maximum=2**62)
    return {
        "q": params.get("q", ""),
        "organisation": params.get("organisation", ""),
        "interest": params.get("interest", ""),
        "badge_id": badge or None,
        "page": query_int(request, "page", 1),
    }


@api.get("/api/directory", answers={200: "{items: [member], next}"}, auth=True, query=SEARCH_QUERY)
async def directory_endpoint(request: Request) -> Response:
    """Find members by name, organisation and interests (members who are logged in; only those listed)."""
    await require_viewer(request)
    filters = _filters(request)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await search(conn, **filters)
    return JSONResponse({"items": [card_json(r) for r in rows], "next": filters["page"] + 1 if more else None})


@api.get("/api/badges", answers={200: "{items: [badge], next}"})
async def badges_endpoint(request: Request) -> Response:
    """Every badge, with how many members have it."""
    async with runtime(request).pool.acquire() as conn:
        rows = await list_badges(conn)
    return JSONResponse({"items": [badge_json(r) for r in rows], "next": None})


async def _writer(request: Request) -> Session:
    who = await require_viewer(request)
    check_csrf(request, who)
    return who


@api.post("/api/badges", body=BADGE_IN, answers={201: "Badge"}, auth=True)
async def create_badge_endpoint(request: Request) -> Response:
    """Create a badge (admins)."""
    who = await _writer(request)
    data = await read_json(request, BADGE_IN)
    async with runtime(request).pool.acquire() as conn:
        row = await create_badge(conn, who, data["name"], data.get("description"))
    return JSONResponse(badge_json(row), status_code=201)


@api.post(
    "/api/users/{username}/badges", body=GRANT_IN, answers={201: "User (public profile) with the badge"}, auth=True
)
async def grant_badge_endpoint(request: Request) -> Response:
    """Give a member a badge (admins)."""
    who = await _writer(request)
    data = await read_json(request, GRANT_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        user = await grant_badge(conn, who, request.path_params["username"], data["badge_id"])
    return JSONResponse(accounts.public_json(user), status_code=201)


@api.delete("/api/users/{username}/badges/{badge_id}", answers={204: "Badge taken back"}, auth=True)
async def revoke_badge_endpoint(request: Request) -> Response:
    """Take a badge back from a member (admins)."""
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await revoke_badge(conn, who, request.path_params["username"], path_int(request, "badge_id"))
    return Response(status_code=204)


# --- pages ---------------------------------------------------------------------------------------------------------


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


async def directory_page(request: Request) -> Response:
    """The member directory: search by name, organisation, interests and badge."""
    who = await viewer(request)
    if who is None:
        return login_redirect(request)
    filters = _filters(request)
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


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


async def _badges_context(conn: asyncpg.Connection) -> dict[str, Any]:
    badges = [
        {**badge_json(b), "holders": [dict(h) for h in await badge_holders(conn, b["id"])]}
        for b in await list_badges(conn)
    ]
    return {"badges": badges}


async def _badge_action(conn: asyncpg.Connection, who: Session, form: Any) -> str:
    action = _text(form, "action")
    if action == "create":
        row = await create_badge(conn, who, _text(form, "name"), _text(form, "description"))
        return f"The badge \u201c{row['name']}\u201d was created."
    badge = _text(form, "badge_id")
    if not badge.isdigit() or len(badge) > 18:
        raise accounts.invalid({"badge_id": "Choose a badge"})
    username = _text(form, "username").lstrip("@")
    if action == "grant":
        user = await grant_badge(conn, who, username, int(badge))
        return f"{user.display_name} has the badge now."
    await revoke_badge(conn, who, username, int(badge))
    return "The badge was taken back."


async def badges_page(request: Request) -> Response:
    """Admins: create badges, give them to members and take them back."""
    who = await viewer(request)
    if who is None or who.via_token:
        if request.method == "POST":
            await form_data(request)
        return login_redirect(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "Only admins can manage badges.")
    rt = runtime(request)
    context: dict[str, Any] = {"values": {}}
    if request.method == "POST":
        form = await form_data(request)
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                context["done"] = await _badge_action(conn, who, form)
        except ApiError as exc:
            fields = dict(exc.fields) if exc.fields else {"username": exc.message}
            context.update(
                values={k: _text(form, k) for k in ("name", "description", "username", "badge_id")},
                errors=fields,
                error_list=[{"text": t, "href": f"#{k}"} for k, t in fields.items()],
            )
            async with rt.pool.acquire() as conn:
                context.update(await _badges_context(conn))
            return await render(request, "directory/badges.html", context, status=422 if exc.status != 403 else 403)
    async with rt.pool.acquire() as conn:
        context.update(await _badges_context(conn))
    return await render(request, "directory/badges.html", context)


routes: list[BaseRoute] = [
    Route("/members", directory_page, methods=["GET"]),
    Route("/members/badges", badges_page, methods=["GET", "POST"]),
]
