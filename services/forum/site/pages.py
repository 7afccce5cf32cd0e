"""The site's own pages: the community guidelines (/guidelines), linked from every page's footer and
from the flag form; the API's operations as a readable page (/developers), listed from the OpenAPI
document the site serves at /api/openapi.json; and the site's settings for admins (/admin/settings),
built on the same checks and actions as the API (settings.py).

The OpenAPI document covers the three services and is built above them (services/openapi.py), which
serves it on the forum's app: the page reads it from there and keeps it for the process's life (it
changes only with the code). Where it is not served (a forum app alone), the page still links it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.forum import access
from services.forum.site import settings as site
from shared import site_settings
from shared.pages import Pages, ago, form_data, form_errors, form_member, form_text, login_redirect, render
from shared.sessions import Session
from shared.site_settings import EDITABLE, SECTIONS, Editable
from shared.web import ApiError, invalid, runtime

OPENAPI_PATH = "/api/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
log = logging.getLogger("tica.forum.site")
pages = Pages()


@pages.get("/guidelines")
async def guidelines_page(request: Request) -> Response:
    """How we look after each other here, what moderators do and how to appeal."""
    return await render(request, "site/guidelines.html")


@pages.get("/developers")
async def api_page(request: Request) -> Response:
    """The JSON API's operations, grouped by tag, with the OpenAPI document linked."""
    document = await openapi_document(request)
    return await render(
        request,
        "site/api.html",
        {"openapi_path": OPENAPI_PATH, "groups": operation_groups(document) if document else None},
    )


async def openapi_document(request: Request) -> dict[str, Any] | None:
    """The site's OpenAPI document, as this process serves it at /api/openapi.json (the runner adds
    that route to the forum's app: services/openapi.py serve_on); None where it does not (a forum app
    on its own, in tests)."""
    state = request.app.state
    cached = getattr(state, "openapi_document", None)
    if cached is not None:
        return dict(cached)
    body = await _in_process(request)
    if body is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        log.warning("the OpenAPI document is not JSON")
        return None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return None
    state.openapi_document = document
    return dict(document)


async def _in_process(request: Request) -> bytes | None:
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path == OPENAPI_PATH:
            response = await route.endpoint(request)
            return bytes(response.body) if response.status_code == 200 else None
    return None


def operation_groups(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations by tag, in the document's tag order (then as they first appear): each with its
    method, path, summary and description."""
    described = {tag["name"]: tag for tag in document.get("tags", []) if isinstance(tag, dict) and "name" in tag}
    groups: dict[str, dict[str, Any]] = {
        name: {"name": name, "description": tag.get("description", ""), "operations": []}
        for name, tag in described.items()
    }
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if not isinstance(operation, dict):
                continue
            for tag in operation.get("tags") or ["other"]:
                group = groups.setdefault(tag, {"name": tag, "description": "", "operations": []})
                group["operations"].append(
                    {
                        "id": operation.get("operationId", f"{method}-{path}"),
                        "method": method.upper(),
                        "path": path,
                        "summary": operation.get("summary", ""),
                        "description": operation.get("description", ""),
                        "deprecated": bool(operation.get("deprecated")),
                    }
                )
    return [group for group in groups.values() if group["operations"]]


# --- admins: the site's settings ----------------------------------------------------------------------

SETTINGS_PATH = "/admin/settings"
TEXT_KINDS = ("number", "short_text", "long_text")  # a field (empty: the default); the others are choices


@pages.form(SETTINGS_PATH)
async def settings_page(request: Request) -> Response:
    """The settings admins change here instead of in the server's configuration, by section; saving
    checks every value (each problem listed), stores the changes and says what changed."""
    who = await form_member(request)
    if who is None:
        return login_redirect(request)
    access.require_admin(who, site.ADMINS_ONLY)
    if request.method == "GET":
        return await _settings_render(request, saved=_saved_keys(request))
    submitted = await form_data(request)
    sent, typed = _read_settings(submitted)
    reason = form_text(submitted, "reason")
    try:
        change = await _save(request, who, sent, reason)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        labels = {item.key: item.label for item in EDITABLE} | {"reason": "The reason"}
        problems = form_errors(exc, "site_name", labels=labels)
        return await _settings_render(request, typed=typed, reason=reason, status=422, **problems)
    return RedirectResponse(f"{SETTINGS_PATH}?saved={','.join(change.keys)}", status_code=303)


async def _save(request: Request, who: Session, sent: dict[str, str | None], reason: str) -> site.Change:
    rt = runtime(request)
    if len(reason) > site.REASON_MAX:
        raise invalid("reason", f"must be at most {site.REASON_MAX} characters")
    clean = await site.check_change(who, sent, budget_ms=rt.settings.render_budget_ms)
    async with rt.pool.acquire() as conn, conn.transaction():
        change = await site.change_settings(conn, who, clean, base=rt.base_settings, reason=reason)
    await site.settled(rt, change)
    return change


def _read_settings(form: FormData) -> tuple[dict[str, str | None], dict[str, str]]:
    """What the form asks for each setting (None: the default: an empty field, "Use the default
    instead" ticked, or that choice), and the form as typed, to show again."""
    sent: dict[str, str | None] = {}
    typed: dict[str, str] = {}
    for item in EDITABLE:
        text = form_text(form, item.key, strip=False)
        typed[item.key] = text
        if item.kind in TEXT_KINDS:
            back = form_text(form, f"{item.key}-default") == "yes"
            typed[f"{item.key}-default"] = "yes" if back else ""
            sent[item.key] = None if back or not text.strip() else text
        else:
            sent[item.key] = None if text in ("", "default") else text
    return sent, typed


def _saved_keys(request: Request) -> list[str] | None:
    """The settings the last save changed (?saved=a,b), None when the page is not shown after a save."""
    if "saved" not in request.query_params:
        return None
    return [key for key in request.query_params["saved"].split(",") if key in site_settings.BY_KEY]


async def _settings_render(
    request: Request,
    *,
    typed: dict[str, str] | None = None,
    reason: str = "",
    saved: list[str] | None = None,
    status: int = 200,
    **problems: Any,
) -> Response:
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        listed = await site.current(conn, rt.base_settings)
    values = typed if typed is not None else _form_values(listed)
    sections = [
        {"name": name, "settings": [_setting_view(entry) for entry in listed if entry.item.section == name]}
        for name in SECTIONS
    ]
    context = {"sections": sections, "values": values, "reason": reason, "saved": _saved_words(saved), **problems}
    return await render(request, "site/settings.html", context, status=status)


def _form_values(listed: list[site.Current]) -> dict[str, str]:
    """The form as it stands: a field holds the value an admin set (empty: the default); a choice is
    the value an admin set, or "default"."""
    values: dict[str, str] = {}
    for entry in listed:
        text = site_settings.as_text(entry.value) if entry.set_by_admin else ""
        if entry.item.kind in TEXT_KINDS:
            values[entry.item.key] = text
        else:
            values[entry.item.key] = text or "default"
    return values


def _setting_view(entry: site.Current) -> dict[str, Any]:
    item = entry.item
    return {
        "key": item.key,
        "label": item.label,
        "help": item.help,
        "kind": item.kind,
        "choices": [{"value": value, "text": words} for value, words in _choices(item)],
        "default_words": _words(item, entry.default),
        "set_by_admin": entry.set_by_admin,
        "changed_words": _changed_words(entry),
    }


def _choices(item: Editable) -> tuple[tuple[str, str], ...]:
    if item.kind == "yes_no":
        return (("true", "Yes"), ("false", "No"))
    return item.choices


def _words(item: Editable, value: Any) -> str:
    """A value as the page says it."""
    if item.kind == "yes_no":
        return "yes" if value else "no"
    if item.kind == "choice":
        return f"\u201c{dict(item.choices).get(value, value)}\u201d"
    if item.kind == "long_text":
        return "the text set in the server's configuration" if value else "no text"
    if item.kind == "short_text":
        return f"\u201c{value}\u201d"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _changed_words(entry: site.Current) -> str:
    """Who changed a setting here and when: "ada, 3 days ago" (beside "Changed by an admin")."""
    if not entry.set_by_admin:
        return ""
    words = [entry.updated_by or "", ago(entry.updated_at) if entry.updated_at else ""]
    return ", ".join(word for word in words if word)


def _saved_words(saved: list[str] | None) -> str | None:
    if saved is None:
        return None
    if not saved:
        return "Nothing changed: every setting already had the value you chose."
    names = [site_settings.BY_KEY[key].label for key in saved]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Saved. You changed: {listed}. Every part of the site uses the new values within a few seconds."


routes = pages.routes
