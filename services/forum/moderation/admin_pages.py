"""Staff's moderation pages: the audit log (moderators see moderation's entries, admins all), and
admins' watched words and safeguarding phrases (the same check-then-do functions as the JSON API;
401 to visitors and 403 to members before anything else).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.moderation import api as moderation_api
from services.forum.moderation import audit, audit_words, screening
from services.forum.moderation.pages import _admin, _errors, _staff, _status, _text
from shared.api import path_int
from shared.pages import Pages, form_data, render
from shared.sessions import Session
from shared.web import ApiError, runtime

pages = Pages()

# --- staff: the audit log -------------------------------------------------------------------------------------


@pages.get("/admin/audit-log")
async def audit_log_page(request: Request) -> Response:
    """Moderator and admin actions the viewer may see (access.audit_action_visible), newest first,
    filtered by who, what, target and dates."""
    who = await _staff(request)
    try:
        query = audit.parse_audit_query(request)
    except ApiError as exc:
        query = audit.AuditQuery()
        context = await _audit_context(request, who, query)
        return await render(request, "moderation/audit_log.html", {**context, **_errors(exc, "actor")}, status=400)
    return await render(request, "moderation/audit_log.html", await _audit_context(request, who, query))


async def _audit_context(request: Request, who: Session, query: audit.AuditQuery) -> dict[str, Any]:
    async with runtime(request).pool.acquire() as conn:
        rows, has_next = await audit.list_entries(conn, who, query)
        entries = await audit_words.described(conn, who, [audit.entry_json(row) for row in rows])
    params = {k: v for k, v in request.query_params.items() if k != "page" and v}

    def page_url(page: int) -> str:
        return "/admin/audit-log?" + urlencode({**params, **({"page": page} if page > 1 else {})})

    return {
        "entries": [_entry_view(entry) for entry in entries],
        "filters": {
            "actor": query.actor or "",
            "action": query.action or "",
            "target_type": query.target_type or "",
            "target_id": query.target_id or "",
            "since": query.since.isoformat() if query.since else "",
            "until": query.until.isoformat() if query.until else "",
        },
        "actions": [{"value": "", "text": "Any action"}]
        + [{"value": a, "text": audit.ACTION_NAMES[a]} for a in audit.visible_actions(who)],
        "target_types": [{"value": "", "text": "Anything"}]
        + [{"value": t, "text": audit.TARGET_NAMES[t]} for t in audit.visible_target_types(who)],
        "everything": access.is_admin(who),
        "previous_url": page_url(query.page - 1) if query.page > 1 else None,
        "next_url": page_url(query.page + 1) if has_next else None,
    }


def _entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    changes = []
    before, after = entry["before"] or {}, entry["after"] or {}
    for key in dict.fromkeys([*before, *after]):
        changes.append({"key": key, "before": before.get(key), "after": after.get(key)})
    return {**entry, "changes": changes}


# --- admin: watched words and safeguarding phrases --------------------------------------------------------------


async def _words_context(conn: asyncpg.Connection) -> dict[str, Any]:
    return {
        "words": [dict(r) for r in await screening.watched_words(conn)],
        "action_labels": screening.WORD_ACTION_LABELS,
        "action_items": [{"value": a, "text": screening.WORD_ACTION_LABELS[a]} for a in screening.WORD_ACTIONS],
        "form": {},
    }


@pages.form("/admin/watched-words")
async def watched_words_page(request: Request) -> Response:
    """Watched words: add one with its action (block, hold for approval, censor, flag), or remove one."""
    who = await _admin(request)
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            context = await _words_context(conn)
        return await render(request, "moderation/watched_words.html", context)
    submitted = await form_data(request)
    form = {"word": _text(submitted, "word"), "action": _text(submitted, "action")}
    try:
        data = moderation_api.WORD_IN.validate({"word": form["word"] or None, "action": form["action"] or None})
        async with pool.acquire() as conn, conn.transaction():
            await screening.add_watched_word(conn, who, data["word"], data["action"])
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with pool.acquire() as conn:
            context = await _words_context(conn)
        context["form"] = form
        return await render(
            request, "moderation/watched_words.html", {**context, **_errors(exc, "word")}, status=_status(exc)
        )
    return RedirectResponse("/admin/watched-words", status_code=303)


@pages.post("/admin/watched-words/{id}/delete")
async def remove_word_page(request: Request) -> Response:
    """A watched word's Remove button."""
    word_id = path_int(request, "id")
    who = await _admin(request)
    await form_data(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await screening.remove_watched_word(conn, who, word_id)
    return RedirectResponse("/admin/watched-words", status_code=303)


async def _phrases_context(conn: asyncpg.Connection) -> dict[str, Any]:
    phrases = await screening.safeguarding_phrases(conn)
    return {
        "active": [p for p in phrases if p.active],
        "switched_off": [p for p in phrases if not p.active],
        "hold": False,
        "form": {},
    }


@pages.form("/admin/safeguarding")
async def safeguarding_page(request: Request) -> Response:
    """Safeguarding phrases: the built-in ones (switch off or on) and your own (add or remove)."""
    who = await _admin(request)
    rt = runtime(request)
    if request.method == "GET":
        async with rt.pool.acquire() as conn:
            context = await _phrases_context(conn)
        return await render(request, "moderation/safeguarding.html", {**context, "hold": rt.settings.safeguarding_hold})
    submitted = await form_data(request)
    form = {"phrase": _text(submitted, "phrase"), "action": _text(submitted, "action")}
    try:
        data = moderation_api.PHRASE_IN.validate({"phrase": form["phrase"] or None})
        async with rt.pool.acquire() as conn, conn.transaction():
            await screening.set_safeguarding_phrase(conn, who, data["phrase"], active=form["action"] != "remove")
    except ApiError as exc:
        if exc.status not in (404, 409, 422):
            raise
        async with rt.pool.acquire() as conn:
            context = await _phrases_context(conn)
        context.update(form=form, hold=rt.settings.safeguarding_hold)
        return await render(
            request, "moderation/safeguarding.html", {**context, **_errors(exc, "phrase")}, status=_status(exc)
        )
    return RedirectResponse("/admin/safeguarding", status_code=303)


routes = pages.routes
