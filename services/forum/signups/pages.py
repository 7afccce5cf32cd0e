"""The sign-up pages for moderators and admins: the queue of accounts waiting for approval
(/admin/signups), where each is approved or declined with an optional note, and invitations to
join (/admin/invitations: the list and the form to send one; resend and withdraw buttons). They
call the same actions as the JSON API (api.py) and show its shapes. Visitors are sent to log in;
members get 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.accounts import accounts
from services.forum.accounts.pages import paragraphs
from services.forum.signups import api as signup_api
from services.forum.signups import invitations, signups
from shared.api import path_int, query_choice, query_int
from shared.pages import Pages, form_data, form_errors, form_text, members_only, page_status, render, when
from shared.sessions import Session
from shared.web import ApiError, runtime

pages = Pages()

MODE_NOW = {
    "open": "Sign-up is open to everyone now",
    "invite": "Joining is by invitation now",
}
INVITATION_DONE = {
    "sent": "The invitation is on its way. Its link works for 28 days.",
    "resent": "The invitation is on its way again, with a new link. The earlier link no longer works.",
    "withdrawn": "The invitation was withdrawn: its link no longer works.",
}


# --- the queue -------------------------------------------------------------------------------------------


def _waiting_view(waiting: signups.Waiting, who: Session) -> dict[str, Any]:
    return {
        **signup_api.signup_json(waiting, who),
        "answer_paragraphs": paragraphs(waiting.answer),
        "when": when(waiting.created_at),
    }


async def _queue_context(request: Request, who: Session) -> dict[str, Any]:
    rt = runtime(request)
    page = query_int(request, "page", 1)
    async with rt.pool.acquire() as conn:
        waiting, more = await signups.list_waiting(conn, page=page)
        pending = await invitations.count_pending_invitations(conn)
    return {
        "waiting": [_waiting_view(w, who) for w in waiting],
        "mode_now": MODE_NOW.get(rt.settings.registration_mode),
        "pending_invitations": pending,
        "note_max": signups.NOTE_MAX,
        "previous_url": f"/admin/signups?page={page - 1}" if page > 1 else None,
        "next_url": f"/admin/signups?page={page + 1}" if more else None,
        "values": {},
    }


async def _done_message(request: Request) -> str | None:
    """The confirmation after a decision, from the redirect's query."""
    done = request.query_params.get("done")
    if done == "declined":
        return "You declined the request. We have emailed the person to let them know, with your note if you wrote one."
    if done != "approved":
        return None
    user_id = query_int(request, "id", 0, minimum=0, maximum=access.MAX_ID)
    async with runtime(request).pool.acquire() as conn:
        user = await accounts.user_by_id(conn, user_id) if user_id else None
    if user is None:
        name = "the person"
    elif user.display_name == user.username:
        name = user.username
    else:
        name = f"{user.display_name} ({user.username})"
    return f"You welcomed {name}. We have emailed them to say they can now log in."


@pages.get("/admin/signups")
@members_only
async def queue_page(request: Request, who: Session) -> Response:
    """Accounts waiting for approval, oldest first, with their answers; approve or decline each."""
    access.require_staff(who, signups.REFUSAL)
    context = await _queue_context(request, who)
    return await render(request, "signups/queue.html", {**context, "done": await _done_message(request)})


@pages.post("/admin/signups/{id}")
@members_only
async def decide_page(request: Request, who: Session) -> Response:
    """A waiting account's Approve or Decline button (with the optional note)."""
    access.require_staff(who, signups.REFUSAL)
    signup_id = path_int(request, "id")
    form = await form_data(request)
    decision, note = form_text(form, "decision"), form_text(form, "note")
    try:
        done = await signups.decide(runtime(request), who, signup_id, decision, note)
    except ApiError as exc:
        context = await _queue_context(request, who)
        anchor = f"note-{signup_id}" if exc.status in (409, 422) else "waiting"
        errors = form_errors(exc, "note", anchors={"note": anchor, "decision": anchor})
        context["values"] = {signup_id: note}
        context["failed_id"] = signup_id
        return await render(request, "signups/queue.html", {**context, **errors}, status=page_status(exc))
    query = {"done": "approved", "id": done.id} if done.approved else {"done": "declined"}
    return RedirectResponse("/admin/signups?" + urlencode(query), status_code=303)


# --- invitations --------------------------------------------------------------------------------------------


def _invitation_view(row: Any) -> dict[str, Any]:
    item = signup_api.invitation_json(row)
    return {
        **item,
        "status_label": invitations.STATUS_LABELS[item["status"]],
        "sent": when(row["sent_at"]),
        "expires": when(row["expires_at"]),
        "open": item["status"] in ("pending", "expired"),
    }


async def _invitations_context(request: Request) -> dict[str, Any]:
    status = query_choice(request, "status", invitations.STATUSES)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, more = await invitations.list_invitations(conn, status=status, page=page)
    params = {"status": status} if status else {}

    def page_url(number: int) -> str:
        return "/admin/invitations?" + urlencode({**params, **({"page": number} if number > 1 else {})})

    return {
        "invitations": [_invitation_view(row) for row in rows],
        "status": status or "",
        "statuses": [{"value": "", "text": "All"}]
        + [{"value": s, "text": invitations.STATUS_LABELS[s]} for s in invitations.STATUSES],
        "note_max": invitations.NOTE_MAX,
        "days": invitations.INVITE_TTL.days,
        "mode": runtime(request).settings.registration_mode,
        "previous_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if more else None,
        "values": {},
    }


@pages.form("/admin/invitations")
@members_only
async def invitations_page(request: Request, who: Session) -> Response:
    """Invitations to join: send one by email (with an optional note); every invitation with its
    status, to resend or withdraw."""
    access.require_staff(who, invitations.REFUSAL)
    if request.method == "GET":
        context = await _invitations_context(request)
        done = INVITATION_DONE.get(request.query_params.get("done", ""))
        return await render(request, "signups/invitations.html", {**context, "done": done})
    form = await form_data(request)
    values = {"email": form_text(form, "email"), "note": form_text(form, "note")}
    try:
        await invitations.invite(runtime(request), who, values["email"], values["note"])
    except ApiError as exc:
        context = {**await _invitations_context(request), "values": values}
        return await render(
            request, "signups/invitations.html", {**context, **form_errors(exc, "email")}, status=page_status(exc)
        )
    return RedirectResponse("/admin/invitations?done=sent", status_code=303)


async def _invitation_action(request: Request, who: Session, action: str) -> Response:
    invitation_id = path_int(request, "id")
    await form_data(request)
    rt = runtime(request)
    try:
        if action == "resend":
            await invitations.resend(rt, who, invitation_id)
        else:
            async with rt.pool.acquire() as conn, conn.transaction():
                await invitations.withdraw(conn, who, invitation_id)
    except ApiError as exc:
        if exc.status == 404:
            raise
        context = await _invitations_context(request)
        errors = form_errors(exc, "invitations")
        return await render(request, "signups/invitations.html", {**context, **errors}, status=page_status(exc))
    done = "resent" if action == "resend" else "withdrawn"
    return RedirectResponse(f"/admin/invitations?done={done}", status_code=303)


@pages.post("/admin/invitations/{id}/resend")
@members_only
async def resend_page(request: Request, who: Session) -> Response:
    """An invitation's "Send again" button: a new link; the earlier one stops working."""
    access.require_staff(who, invitations.REFUSAL)
    return await _invitation_action(request, who, "resend")


@pages.post("/admin/invitations/{id}/withdraw")
@members_only
async def withdraw_page(request: Request, who: Session) -> Response:
    """An invitation's "Withdraw" button: its link stops working."""
    access.require_staff(who, invitations.REFUSAL)
    return await _invitation_action(request, who, "withdraw")


routes = pages.routes
