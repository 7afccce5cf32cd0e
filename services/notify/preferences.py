"""A member's preferences: the digest (daily, weekly or never), email on replies, mentions,
watched topics and private messages (never, when away, always), and how closely they follow a topic once they
start it or reply to it (watching, tracking or normal; writer.py applies them). `GET/PUT
/api/me/preferences` and the /preferences page, which also lists what they watch.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.notify import watches
from services.notify.notifications import login_redirect
from shared.api import ApiRouter, Field, Schema, Shape, writing
from shared.pages import Pages, form_data, render
from shared.web import require_viewer, runtime, viewer

pages = Pages()

api = ApiRouter(tag="notifications")

DIGEST_CHOICES = ("daily", "weekly", "never")
EMAIL_CHOICES = ("never", "away", "always")
FOLLOW_CHOICES = ("watching", "tracking", "normal")
DEFAULTS: dict[str, str] = {
    "digest": "weekly",
    "email_on_reply": "away",
    "email_on_mention": "away",
    "email_on_watched": "never",
    "email_on_message": "away",
    "watch_on_start": "watching",
    "watch_on_reply": "tracking",
}
# A form without them keeps their values (forms written before they were asked).
OPTIONAL_FIELDS = ("watch_on_start", "watch_on_reply", "email_on_message")

PREFERENCES_IN = Schema(
    "PreferencesIn",
    {
        "digest": Field("string", enum=DIGEST_CHOICES, description="how often the summary email comes"),
        "email_on_reply": Field("string", enum=EMAIL_CHOICES, description="email for replies and quotes"),
        "email_on_mention": Field("string", enum=EMAIL_CHOICES, description="email when someone @mentions you"),
        "email_on_watched": Field("string", enum=EMAIL_CHOICES, description="email for new posts in what you watch"),
        "email_on_message": Field(
            "string", enum=EMAIL_CHOICES, description="email for private messages (default when away)"
        ),
        "watch_on_start": Field(
            "string", enum=FOLLOW_CHOICES, description="the level a topic you start is set to (default watching)"
        ),
        "watch_on_reply": Field(
            "string", enum=FOLLOW_CHOICES, description="the level a topic you reply to is set to (default tracking)"
        ),
    },
)

PREFERENCES = Shape("Preferences", dict.fromkeys(DEFAULTS, "string"))

# What each preference offers on the page, in words.
LABELS: dict[str, dict[str, str]] = {
    "digest": {"weekly": "Weekly", "daily": "Daily", "never": "Never"},
    "email": {"always": "Always", "away": "Only when I have not been on tica for 10 minutes", "never": "Never"},
    "follow": {
        "watching": "Watch it: tell me about every new post",
        "tracking": (
            "Track it: one notification collecting its new replies, and tell me when someone mentions me, "
            "replies to me or quotes me"
        ),
        "normal": "Leave it at normal",
    },
}
PREFERENCE_COLUMNS = ", ".join(DEFAULTS)


UPSERT_PREFERENCES_SQL = (
    f"INSERT INTO notify.preferences (user_id, {PREFERENCE_COLUMNS}) "
    f"VALUES ($1, {', '.join(f'${n + 2}' for n in range(len(DEFAULTS)))}) ON CONFLICT (user_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in DEFAULTS)
    + ", updated_at = now()"
)


async def get_preferences(conn: asyncpg.Connection, user_id: int) -> dict[str, str]:
    """A member's preferences, the defaults filling in what they never chose."""
    row = await conn.fetchrow(f"SELECT {PREFERENCE_COLUMNS} FROM notify.preferences WHERE user_id = $1", user_id)
    return dict(row) if row else dict(DEFAULTS)


async def update_preferences(conn: asyncpg.Connection, user_id: int, changes: dict[str, str]) -> dict[str, str]:
    """Store some preferences (validated names and values); returns them all."""
    current = await get_preferences(conn, user_id)
    merged = {**current, **{k: v for k, v in changes.items() if k in DEFAULTS}}
    await conn.execute(UPSERT_PREFERENCES_SQL, user_id, *(merged[name] for name in DEFAULTS))
    return merged


# --- API -------------------------------------------------------------------------------------


@api.get("/api/me/preferences", answers={200: PREFERENCES}, auth=True)
async def get_preferences_endpoint(request: Request) -> Response:
    """The viewer's email and digest preferences."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        return JSONResponse(await get_preferences(conn, who.user_id))


@api.put("/api/me/preferences", body=PREFERENCES_IN, answers={200: PREFERENCES}, auth=True)
async def put_preferences_endpoint(request: Request) -> Response:
    """Change some of the viewer's preferences; fields left out keep their value."""
    async with writing(request, PREFERENCES_IN) as w:
        return JSONResponse(await update_preferences(w.conn, w.who.user_id, w.data))


# --- page ----------------------------------------------------------------------------------


async def _page(
    request: Request, prefs: dict[str, str], *, errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        watched = await watches.list_watches(conn, who.user_id)
    error_list = [
        {"text": f"{_question(name)}: choose one of the options", "href": f"#{name}"} for name in (errors or {})
    ]
    return await render(
        request,
        "notify/preferences.html",
        {
            "prefs": prefs,
            "labels": LABELS,
            "watched": watched,
            "levels": watches.LEVELS,
            "saved": request.query_params.get("saved") == "1",
            "errors": errors or {},
            "error_list": error_list,
        },
        status=status,
    )


def _question(name: str) -> str:
    return {
        "digest": "Summary email",
        "email_on_reply": "Replies and quotes",
        "email_on_mention": "Mentions",
        "email_on_watched": "New posts in what you watch",
        "email_on_message": "Private messages",
        "watch_on_start": "Topics you start",
        "watch_on_reply": "Topics you reply to",
    }[name]


async def preferences_page(request: Request) -> Response:
    """The preferences form, and the topics and categories the member watches or mutes."""
    who = await viewer(request)
    if who is None:
        return login_redirect(request)
    async with runtime(request).pool.acquire() as conn:
        prefs = await get_preferences(conn, who.user_id)
    return await _page(request, prefs)


async def save_preferences(request: Request) -> Response:
    """Save the preferences form; re-show it with the NHS.UK error summary when a choice is missing."""
    who = await require_viewer(request)
    form = await form_data(request)
    submitted: dict[str, Any] = {
        name: form.get(name) for name in DEFAULTS if name not in OPTIONAL_FIELDS or form.get(name) is not None
    }
    errors = {
        name: "choose one"
        for name, value in submitted.items()
        if not isinstance(value, str) or PREFERENCES_IN.fields[name].check(name, value)[1]
    }
    if errors:
        async with runtime(request).pool.acquire() as conn:
            prefs = {
                **await get_preferences(conn, who.user_id),
                **{k: v for k, v in submitted.items() if k not in errors},
            }
        return await _page(request, prefs, errors=errors, status=400)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await update_preferences(conn, who.user_id, submitted)
    return RedirectResponse("/preferences?saved=1", status_code=303)


@pages.form("/preferences")
async def preferences_route(request: Request) -> Response:
    if request.method == "POST":
        return await save_preferences(request)
    return await preferences_page(request)


routes = pages.routes
