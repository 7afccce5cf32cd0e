"""Watch levels on topics and categories, as Discourse means them: watching (told of
every new post), tracking and normal (told of mentions, replies and quotes), muted
(told of nothing). A topic's own level overrides its category's; creating a topic
watches it and posting in one tracks it (projections.py sets those).

`GET/PUT /api/watch` for scripts and live.js, and `POST /notifications/watch` for
the form on topic and category pages (works without JavaScript).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.notify import projections
from shared.api import ApiRouter, Field, Schema, Shape, writing
from shared.audience import for_viewer, may_read
from shared.pages import form_data
from shared.sessions import Session
from shared.web import ApiError, require_viewer, runtime

api = ApiRouter(tag="notifications")

LEVELS = ("watching", "tracking", "normal", "muted")
TARGET_PATTERN = r"(topic|category):[1-9][0-9]{0,17}"

WATCH_IN = Schema(
    "WatchIn",
    {
        "target": Field("string", required=True, pattern=TARGET_PATTERN, description='"topic:N" or "category:N"'),
        "level": Field("string", required=True, enum=LEVELS),
    },
)

WATCH = Shape("Watch", {"target": "string", "level": "string", "effective_level": "string"})
WATCHED = Shape(
    "Watched", {"target": "string", "level": "string", "title": "string?", "url": "string?", "updated_at": "datetime"}
)

EFFECTIVE_LEVEL_SQL = """
SELECT notify.effective_level(tw.level, tw.reason, cw.level)
FROM notify.topics t
LEFT JOIN notify.watches tw ON tw.user_id = $1 AND tw.target_kind = 'topic' AND tw.target_id = t.id
LEFT JOIN notify.watches cw ON cw.user_id = $1 AND cw.target_kind = 'category' AND cw.target_id = t.category_id
WHERE t.id = $2
"""

LIST_WATCHES_SQL = """
SELECT w.target_kind, w.target_id, w.level, w.reason, w.updated_at,
       coalesce(t.title, c.name) AS title, coalesce(t.slug, c.slug) AS slug
FROM notify.watches w
LEFT JOIN notify.topics t ON w.target_kind = 'topic' AND t.id = w.target_id
LEFT JOIN notify.categories c ON w.target_kind = 'category' AND c.id = w.target_id
WHERE w.user_id = $1 AND (w.level IN ('watching', 'muted') OR w.reason = 'chosen')
ORDER BY w.updated_at DESC, w.target_kind, w.target_id
LIMIT 200
"""


def parse_target(target: str) -> tuple[str, int]:
    kind, _, number = target.partition(":")
    return kind, int(number)


async def own_level(conn: asyncpg.Connection, user_id: int, kind: str, target_id: int) -> str | None:
    """The level the member set (or that posting set) on exactly this target."""
    value: str | None = await conn.fetchval(
        "SELECT level FROM notify.watches WHERE user_id = $1 AND target_kind = $2 AND target_id = $3",
        user_id,
        kind,
        target_id,
    )
    return value


async def effective_level(conn: asyncpg.Connection, user_id: int, kind: str, target_id: int) -> str:
    """What applies: the topic's own level, else its category's, else normal."""
    if kind == "category":
        return await own_level(conn, user_id, kind, target_id) or "normal"
    value: str | None = await conn.fetchval(EFFECTIVE_LEVEL_SQL, user_id, target_id)
    return value or "normal"


async def check_target(conn: asyncpg.Connection, who: Session, kind: str, target_id: int) -> None:
    """404 unless notify knows the target and the viewer may see it (outsiders never learn it exists)."""
    if kind == "topic":
        audience = await projections.topic_audience(conn, target_id)
    else:
        audience = await projections.category_audience(conn, target_id)
    if audience is None or not may_read(for_viewer(who), audience):
        raise ApiError(404, "not_found", f"We could not find that {kind}.")


async def change_level(conn: asyncpg.Connection, who: Session, target: str, level: str) -> dict[str, Any]:
    """Check and set the viewer's level on a target; returns the watch as JSON."""
    kind, target_id = parse_target(target)
    await check_target(conn, who, kind, target_id)
    await projections.set_watch(conn, who.user_id, kind, target_id, level, reason="chosen")
    return {
        "target": target,
        "level": level,
        "effective_level": await effective_level(conn, who.user_id, kind, target_id),
    }


def watch_json(row: asyncpg.Record) -> dict[str, Any]:
    kind = row["target_kind"]
    url = f"/t/{row['slug']}/{row['target_id']}" if kind == "topic" else f"/c/{row['slug']}"
    return {
        "target": f"{kind}:{row['target_id']}",
        "level": row["level"],
        "title": row["title"],
        "url": url if row["slug"] else None,
        "updated_at": row["updated_at"].isoformat(),
    }


async def list_watches(conn: asyncpg.Connection, user_id: int) -> list[dict[str, Any]]:
    """The targets a member watches, mutes or chose a level for (the latest 200)."""
    return [watch_json(row) for row in await conn.fetch(LIST_WATCHES_SQL, user_id)]


# --- endpoints -----------------------------------------------------------------------------


@api.get(
    "/api/watch",
    answers={
        200: (
            "A watch level, or (without ?target) the viewer's watches",
            Shape(
                "WatchOrWatches",
                {
                    "target?": "string",
                    "level?": "string?",
                    "effective_level?": "string",
                    "items?": [WATCHED],
                    "next?": "integer?",
                },
            ),
        )
    },
    auth=True,
    query={
        "target": Field(
            "string",
            min_length=1,
            pattern=TARGET_PATTERN,
            description='"topic:N" or "category:N"; without it, the list of what the viewer watches or mutes',
        )
    },
)
async def get_watch(request: Request) -> Response:
    """The viewer's watch level on a topic or category, or every target they set one for."""
    who = await require_viewer(request)
    target = request.query_params.get("target")
    async with runtime(request).pool.acquire() as conn:
        if target is None:
            return JSONResponse({"items": await list_watches(conn, who.user_id), "next": None})
        value, error = WATCH_IN.fields["target"].check("target", target)
        if error:
            raise ApiError(400, "bad_request", f"?target {error}.", {"target": error})
        kind, target_id = parse_target(value)
        await check_target(conn, who, kind, target_id)
        own = await own_level(conn, who.user_id, kind, target_id)
        effective = await effective_level(conn, who.user_id, kind, target_id)
    return JSONResponse({"target": value, "level": own, "effective_level": effective})


@api.put("/api/watch", body=WATCH_IN, answers={200: WATCH}, auth=True)
async def put_watch(request: Request) -> Response:
    """Watch, track, keep normal or mute a topic or category."""
    async with writing(request, WATCH_IN) as w:
        watch = await change_level(w.conn, w.who, w.data["target"], w.data["level"])
    return JSONResponse(watch)


def safe_return(path: object, fallback: str) -> str:
    """A local path to go back to; anything else (other sites, `//host`) goes to the fallback."""
    if isinstance(path, str) and path.startswith("/") and not path.startswith(("//", "/\\")) and len(path) < 500:
        return path
    return fallback


async def watch_form(request: Request) -> Response:
    """The watch-level form on topic and category pages: set the level, go back."""
    who = await require_viewer(request)
    form = await form_data(request)
    data = {"target": form.get("target"), "level": form.get("level")}
    try:
        clean = WATCH_IN.validate(data)
    except ApiError as exc:
        raise ApiError(400, "bad_request", "Choose how closely to follow this, then try again.", exc.fields) from None
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await change_level(conn, who, clean["target"], clean["level"])
    back = safe_return(form.get("return_to"), "/preferences#watching")
    return RedirectResponse(back, status_code=303)


routes = [Route("/notifications/watch", watch_form, methods=["POST"])]
