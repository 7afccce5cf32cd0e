"""The site's JSON API: what anyone may know of the site (its name, welcome, how to join), and the
settings admins change (checked and stored by settings.py, applied by every process within seconds).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.site import settings as site
from shared import site_settings
from shared.api import ApiRouter, Field, Schema, Shape, page_of, read_json
from shared.sessions import Session
from shared.web import require_viewer, require_writer, runtime

api = ApiRouter(tag="site")

SITE = Shape(
    "Site",
    {
        "site_name": "string",
        "welcome_html": "string",
        "registration_mode": "string",
        "signup_question": "string",
    },
)
SETTING = Shape(
    "SiteSetting",
    {
        "key": "string",
        "label": "string",
        "help": "string",
        "section": "string",
        "kind": "string",
        "choices": [{"value": "string", "label": "string"}],
        "maximum": "integer?",
        "value": "any",
        "default": "any",
        "set_by_admin": "boolean",
        "updated_at": "datetime?",
        "updated_by": "string?",
    },
)
SETTINGS_SAVED = Shape("SiteSettingsSaved", {"changed": ["string"], "items": [SETTING]})
SETTINGS_PATCH = Schema(
    "SiteSettingsPatch",
    {
        "values": Field(
            "object",
            required=True,
            description="setting key -> new value (text, a whole number, true or false), or null (or empty "
            "text) to use the environment's default again",
        ),
        "reason": Field("string", nullable=True, max_length=site.REASON_MAX, description="kept in the audit log"),
    },
)


def setting_json(entry: site.Current) -> dict[str, Any]:
    """One editable setting: what it is, its value in force, the environment's default, who set it."""
    item = entry.item
    return {
        "key": item.key,
        "label": item.label,
        "help": item.help,
        "section": item.section,
        "kind": item.kind,
        "choices": [{"value": value, "label": words} for value, words in item.choices],
        "maximum": item.maximum,
        "value": entry.value,
        "default": entry.default,
        "set_by_admin": entry.set_by_admin,
        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
        "updated_by": entry.updated_by,
    }


def _admins(who: Session) -> None:
    access.require_admin(who, site.ADMINS_ONLY)


@api.get("/api/site", answers={200: SITE})
async def get_site(request: Request) -> Response:
    """The site as everyone sees it: its name, welcome text (sanitised HTML), and how people join."""
    rt = runtime(request)
    return JSONResponse(
        {
            "site_name": rt.settings.site_name,
            "welcome_html": await site_settings.welcome_html(rt),
            "registration_mode": rt.settings.registration_mode,
            "signup_question": rt.settings.signup_question,
        }
    )


@api.get("/api/admin/settings", answers={200: page_of(SETTING, "SiteSettingList")}, auth=True)
async def list_settings(request: Request) -> Response:
    """The settings admins can change, each with its value, the environment's default and who set it (admins)."""
    who = await require_viewer(request)
    _admins(who)
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        listed = await site.current(conn, rt.base_settings)
    return JSONResponse({"items": [setting_json(entry) for entry in listed], "next": None})


@api.patch("/api/admin/settings", body=SETTINGS_PATCH, answers={200: SETTINGS_SAVED}, auth=True)
async def patch_settings(request: Request) -> Response:
    """Change site settings, all or none (admins): every process uses the new values within seconds."""
    rt = runtime(request)
    who = await require_writer(request)
    _admins(who)
    data = await read_json(request, SETTINGS_PATCH)
    clean = await site.check_change(who, data["values"], budget_ms=rt.settings.render_budget_ms)
    async with rt.pool.acquire() as conn, conn.transaction():
        change = await site.change_settings(conn, who, clean, base=rt.base_settings, reason=data.get("reason"))
    await site.settled(rt, change)
    async with rt.pool.acquire() as conn:
        listed = await site.current(conn, rt.base_settings)
    return JSONResponse({"changed": change.keys, "items": [setting_json(entry) for entry in listed]})
