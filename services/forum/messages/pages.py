"""The pages of private messages: the inbox, a conversation (reply, invite, leave, react, report), a new
message, the moderators' inbox (staff), and who may message me with the members I blocked. Built from the
same actions and shapes as the JSON API (conversations.py, consent.py, api.py); they work without JavaScript.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.messages import consent, conversations, outreach
from services.forum.messages.conversations import Conversation
from services.forum.moderation import screening
from services.forum.writings import flags, reactions, writings
from services.forum.writings.targets import FLAG_REASON_HINTS, FLAG_REASON_LABELS, FLAG_REASONS, MESSAGE
from shared.api import path_int
from shared.pages import Pages, form_data, form_errors, form_text, members_only, page_status, render, when
from shared.sessions import Session
from shared.web import ApiError, runtime

pages = Pages()

DONE = {
    "left": "You left the conversation. You can still read what was said while you were in it.",
    "declined": "You declined the invitation.",
    "invited": "Your invitation was sent. They can accept or decline it.",
    "reported": "Thank you. The moderators will look at this message and the few before it, nothing else.",
    "saved": "Your choice is saved.",
    "blocked": "You blocked them. They will not be told.",
    "unblocked": "You unblocked them.",
}


# --- views ---------------------------------------------------------------------------------------------


def _summary_view(row: asyncpg.Record, people: list[asyncpg.Record], who: Session) -> dict[str, Any]:
    item = conversations.summary_json(row, people, who)
    others = [p["display_name"] for p in item["members"] if p["id"] != who.user_id]
    if row["with_moderators"]:
        others = others if who.is_staff else [conversations.MODERATORS_NAME, *others]
    item["with_names"] = ", ".join(others) or "Only you"
    item["when"] = when(row["last_message_at"])
    return item


def _message_view(
    row: asyncpg.Record, who: Session, conversation: Conversation, mine: dict[int, set[str]]
) -> dict[str, Any]:
    item = conversations.message_json(row, who, conversation, mine)
    counts = item["reactions"]
    item["created"] = when(row["created_at"])
    item["can_react"] = row["status"] == "visible" and conversation.state == "active"
    item["can_report"] = access.may_flag(who, row["status"], row["author_id"]) and not conversation.staff_party
    item["reaction_buttons"] = [
        {
            "kind": kind,
            "label": reactions.REACTION_LABELS[kind],
            "emoji": reactions.REACTION_EMOJI_HTML[kind],
            "count": counts.get(kind, 0),
            "given": kind in item["my_reactions"],
        }
        for kind in reactions.REACTION_KINDS
    ]
    item["counted"] = [b for b in item["reaction_buttons"] if b["count"]]
    return item


async def _message_views(
    conn: asyncpg.Connection, who: Session, conversation: Conversation, rows: list[asyncpg.Record]
) -> list[dict[str, Any]]:
    mine = await reactions.my_reactions(conn, who, MESSAGE, [r["id"] for r in rows])
    return [_message_view(r, who, conversation, mine) for r in rows]


# --- the header's count ---------------------------------------------------------------------------------


async def header_context(request: Request, who: Session | None) -> dict[str, Any]:
    """A signed-in member's header shows how many conversations have something new (one indexed count)."""
    if who is None or who.via_token:
        return {}
    async with runtime(request).pool.acquire() as conn:
        return {"unread_messages": await conversations.unread_count(conn, who)}


# --- the inbox -----------------------------------------------------------------------------------------


@pages.get("/messages")
@members_only
async def inbox_page(request: Request, who: Session) -> Response:
    """The viewer's conversations, most recent first, with what is new marked."""
    cursor = request.query_params.get("cursor")
    async with runtime(request).pool.acquire() as conn:
        rows, people, nxt = await conversations.inbox(conn, who, cursor)
    items = [_summary_view(r, people[r["id"]], who) for r in rows]
    return await render(
        request,
        "messages/inbox.html",
        {
            "items": items,
            "unread": sum(1 for i in items if i["unread"]),
            "next_url": "/messages?" + urlencode({"cursor": nxt}) if nxt else None,
            "first_url": "/messages" if cursor else None,
            "done": DONE.get(request.query_params.get("done", "")),
        },
    )


@pages.get("/messages/moderators")
@members_only
async def moderators_inbox_page(request: Request, who: Session) -> Response:
    """The moderators' shared inbox (staff): every conversation with the moderators."""
    if not who.is_staff:
        raise access.not_found("that page")
    cursor = request.query_params.get("cursor")
    async with runtime(request).pool.acquire() as conn:
        rows, people, nxt = await conversations.moderators_inbox(conn, who, cursor)
    items = [_summary_view(r, people[r["id"]], who) for r in rows]
    for item, row in zip(items, rows, strict=True):
        item["unread"] = bool(row["awaiting_moderators"])
    return await render(
        request,
        "messages/moderators.html",
        {
            "items": items,
            "next_url": "/messages/moderators?" + urlencode({"cursor": nxt}) if nxt else None,
            "first_url": "/messages/moderators" if cursor else None,
        },
    )


# --- a new conversation --------------------------------------------------------------------------------

NEW_LABELS = {"recipients": "To", "title": "Subject", "text": "Message"}


def _new_values(request: Request) -> dict[str, Any]:
    return {
        "recipients": request.query_params.get("to", "")[:200],
        "title": "",
        "text": "",
        "to_moderators": request.query_params.get("moderators") == "1",
    }


@pages.route("/messages/new", methods=("GET", "POST"))
@members_only
async def new_page(request: Request, who: Session) -> Response:
    """Start a conversation with members (?to=username), or with the moderators (?moderators=1)."""
    if request.method == "GET":
        return await render(request, "messages/new.html", {"values": _new_values(request)})
    form = await form_data(request)
    values = {
        "recipients": form_text(form, "recipients"),
        "title": form_text(form, "title"),
        "text": form_text(form, "text", strip=False),
        "to_moderators": form_text(form, "to_moderators") == "1",
    }
    names = [n for n in str(values["recipients"]).replace(",", " ").split() if n]
    data = {"title": values["title"], "text": values["text"]}
    data.update({"to_moderators": True} if values["to_moderators"] else {"recipients": names})
    rules = screening.PostingRules.of(runtime(request))
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            sent = await conversations.start(conn, who, data, rules)
    except ApiError as exc:
        errors = form_errors(exc, "text", labels=NEW_LABELS)
        return await render(request, "messages/new.html", {"values": values, **errors}, status=page_status(exc))
    return _to_conversation(sent)


def _to_conversation(sent: conversations.Sent) -> Response:
    query = "?support=1" if sent.crisis else ""
    return RedirectResponse(f"/messages/{sent.conversation_id}{query}#message-{sent.message['id']}", status_code=303)


# --- a conversation ------------------------------------------------------------------------------------


async def _conversation_context(
    conn: asyncpg.Connection, request: Request, who: Session, conversation: Conversation
) -> dict[str, Any]:
    people = await conversations.people(conn, conversation.id)
    context: dict[str, Any] = {"conversation": conversations.conversation_json(conversation, people, who)}
    if conversation.state == "invited":
        return context
    before = _query_id(request, "before")
    rows, more = await conversations.messages(conn, who, conversation, before=before)
    context["messages"] = await _message_views(conn, who, conversation, rows)
    if conversation.state in ("active", "left"):  # the first message they have not read yet is marked
        unread = [m for m in context["messages"] if m["id"] > conversation.last_read_message_id and not m["mine"]]
        if unread:
            unread[0]["first_unread"] = True
    context["older_url"] = f"/messages/{conversation.id}?before={rows[0]['id']}" if more and rows else None
    if rows and before is None and conversation.state in ("active", "left"):
        await conversations.mark_read(conn, who, conversation.id, rows[-1]["id"])
    if request.query_params.get("support") == "1":
        panel = screening.support_panel()
        panel["post_note"] = (
            "Your message has been sent. A moderator may get in touch to see how you are; you choose whether to reply."
        )
        context["support"] = panel
    return context


def _query_id(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and 0 < int(value) < access.MAX_ID else None


async def _conversation_page(
    request: Request, who: Session, conversation_id: int, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    async with runtime(request).pool.acquire() as conn:
        conversation = await conversations.find(conn, who, conversation_id)
        context = await _conversation_context(conn, request, who, conversation)
    context["done"] = DONE.get(request.query_params.get("done", ""))
    context.setdefault("values", {})
    return await render(request, "messages/conversation.html", {**context, **(extra or {})}, status=status)


@pages.get("/messages/{id}")
@members_only
async def conversation_page(request: Request, who: Session) -> Response:
    """A conversation: its messages (what the viewer may see), reply, invite, leave; or an invitation."""
    return await _conversation_page(request, who, path_int(request, "id"))


@pages.get("/messages/{id}/after/{message_id}")
@members_only
async def after_fragment(request: Request, who: Session) -> Response:
    """The messages after one, as the conversation page's list items (the live script appends them)."""
    conversation_id, after = path_int(request, "id"), path_int(request, "message_id")
    async with runtime(request).pool.acquire() as conn:
        conversation = await conversations.readable(conn, who, conversation_id)
        rows, _ = await conversations.messages(conn, who, conversation, after=after)
        views = await _message_views(conn, who, conversation, rows)
    return await render(
        request, "messages/_messages.html", {"messages": views, "conversation": {"id": conversation.id}}
    )


@pages.post("/messages/{id}")
@members_only
async def reply_page(request: Request, who: Session) -> Response:
    """The reply form."""
    conversation_id = path_int(request, "id")
    form = await form_data(request)
    text = form_text(form, "text", strip=False)
    rules = screening.PostingRules.of(runtime(request))
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            sent = await conversations.reply(conn, who, conversation_id, {"text": text}, rules)
    except ApiError as exc:
        if exc.status == 404:
            raise
        errors = form_errors(exc, "text", labels={"text": "Message"})
        return await _conversation_page(
            request, who, conversation_id, {"values": {"text": text}, **errors}, status=page_status(exc)
        )
    return _to_conversation(sent)


@pages.post("/messages/{id}/invite")
@members_only
async def invite_page(request: Request, who: Session) -> Response:
    """Invite a member into the conversation."""
    conversation_id = path_int(request, "id")
    username = form_text(await form_data(request), "username")
    rules = screening.PostingRules.of(runtime(request))
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            await conversations.invite(conn, who, conversation_id, username, rules)
    except ApiError as exc:
        if exc.status == 404 and not exc.fields:
            raise
        errors = form_errors(exc, "username", labels={"username": "Member's username"})
        return await _conversation_page(
            request, who, conversation_id, {"values": {"username": username}, **errors}, status=page_status(exc)
        )
    return RedirectResponse(f"/messages/{conversation_id}?done=invited", status_code=303)


async def _simple(request: Request, who: Session, action: Any, done_url: str) -> Response:
    conversation_id = path_int(request, "id")
    await form_data(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await action(conn, who, conversation_id)
    return RedirectResponse(done_url.format(id=conversation_id), status_code=303)


@pages.post("/messages/{id}/accept")
@members_only
async def accept_page(request: Request, who: Session) -> Response:
    """Accept an invitation."""
    return await _simple(request, who, conversations.accept, "/messages/{id}")


@pages.post("/messages/{id}/decline")
@members_only
async def decline_page(request: Request, who: Session) -> Response:
    """Decline an invitation."""
    return await _simple(request, who, conversations.decline, "/messages?done=declined")


@pages.post("/messages/{id}/leave")
@members_only
async def leave_page(request: Request, who: Session) -> Response:
    """Leave the conversation."""
    return await _simple(request, who, conversations.leave, "/messages?done=left")


@pages.post("/messages/{id}/messages/{message_id}/react")
@members_only
async def react_page(request: Request, who: Session) -> Response:
    """A reaction button: gives the reaction, or takes it back when given already."""
    conversation_id, message_id = path_int(request, "id"), path_int(request, "message_id")
    kind = form_text(await form_data(request), "kind")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        writing = await writings.readable(conn, who, MESSAGE, message_id)
        if writing.container_id != conversation_id:
            raise access.not_found("that message")
        given = await reactions.my_reactions(conn, who, MESSAGE, [message_id])
        if kind in given.get(message_id, set()):
            await writings.unreact(conn, who, MESSAGE, message_id, kind)
        else:
            await writings.react(conn, who, MESSAGE, message_id, kind)
    return RedirectResponse(f"/messages/{conversation_id}#message-{message_id}", status_code=303)


REPORT_LABELS = {"reason": "Reason", "note": "What the moderators should know"}


async def _report_context(request: Request, who: Session) -> tuple[int, dict[str, Any]]:
    conversation_id, message_id = path_int(request, "id"), path_int(request, "message_id")
    async with runtime(request).pool.acquire() as conn:
        row, conversation = await conversations.readable_message(conn, who, message_id)
        if conversation.id != conversation_id:
            raise access.not_found("that message")
        view = (await _message_views(conn, who, conversation, [row]))[0]
    reasons = [
        {"value": r, "text": FLAG_REASON_LABELS[r], "hint": {"text": FLAG_REASON_HINTS[r]}} for r in FLAG_REASONS
    ]
    return message_id, {"message": view, "conversation_id": conversation_id, "reasons": reasons}


@pages.route("/messages/{id}/messages/{message_id}/report", methods=("GET", "POST"))
@members_only
async def report_page(request: Request, who: Session) -> Response:
    """Report a message to the moderators (they see it and the few before it, nothing else)."""
    message_id, context = await _report_context(request, who)
    if request.method == "GET":  # refused at once (as a post's flag page) when it cannot be reported at all
        async with runtime(request).pool.acquire() as conn:
            writing = await writings.readable(conn, who, MESSAGE, message_id)
            await flags.check_flag(conn, who, writing, "off_topic", None)
        return await render(request, "messages/report.html", {**context, "values": {}})
    form = await form_data(request)
    values = {"reason": form_text(form, "reason"), "note": form_text(form, "note")}
    if values["reason"] not in FLAG_REASONS:
        exc = ApiError(422, "invalid", "Some fields need attention.", {"reason": "Choose why you are reporting it"})
        errors = form_errors(exc, "reason")
        return await render(request, "messages/report.html", {**context, "values": values, **errors}, status=422)
    rules = screening.PostingRules.of(runtime(request))
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            await flags.flag(conn, who, MESSAGE, message_id, values, rules)
    except ApiError as exc:
        errors = form_errors(exc, "reason", labels=REPORT_LABELS)
        return await render(
            request, "messages/report.html", {**context, "values": values, **errors}, status=page_status(exc)
        )
    return RedirectResponse(f"/messages/{context['conversation_id']}?done=reported", status_code=303)


# --- who may message me, and blocks ---------------------------------------------------------------------


async def _settings_page(
    request: Request, who: Session, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    async with runtime(request).pool.acquire() as conn:
        chosen = await consent.policy(conn, who)
        blocked = await consent.blocks(conn, who)
    choices = [
        {"value": v, "text": consent.POLICY_LABELS[v], "hint": {"text": consent.POLICY_HINTS[v]}}
        for v in access.WHO_MAY_MESSAGE
    ]
    context = {
        "values": {"who_may_message": chosen},
        "policy_choices": choices,
        "blocked": blocked,
        "done": DONE.get(request.query_params.get("done", "")),
    }
    return await render(request, "messages/settings.html", {**context, **(extra or {})}, status=status)


@pages.get("/account/messages")
@members_only
async def settings_page(request: Request, who: Session) -> Response:
    """Who may start a conversation with me, and the members I blocked (with unblock)."""
    return await _settings_page(request, who)


@pages.post("/account/messages")
@members_only
async def save_settings_page(request: Request, who: Session) -> Response:
    """Save who may start a conversation with me."""
    chosen = form_text(await form_data(request), "who_may_message")
    try:
        async with runtime(request).pool.acquire() as conn:
            await consent.set_policy(conn, who, chosen)
    except ApiError as exc:
        return await _settings_page(request, who, form_errors(exc, "who_may_message"), status=page_status(exc))
    return RedirectResponse("/account/messages?done=saved", status_code=303)


@pages.post("/account/messages/block")
@members_only
async def block_page(request: Request, who: Session) -> Response:
    """Block a member (from their profile)."""
    username = form_text(await form_data(request), "username")
    async with runtime(request).pool.acquire() as conn:
        await consent.block(conn, who, username)
    return RedirectResponse("/account/messages?done=blocked", status_code=303)


@pages.post("/account/messages/unblock")
@members_only
async def unblock_page(request: Request, who: Session) -> Response:
    """Unblock a member."""
    username = form_text(await form_data(request), "username")
    async with runtime(request).pool.acquire() as conn:
        await consent.unblock(conn, who, username)
    return RedirectResponse("/account/messages?done=unblocked", status_code=303)


# --- outreach from a safeguarding item (staff), and its template (admins) ----------------------------------

OUTREACH_LABELS = {"title": "Subject", "text": "Message"}


async def _outreach_form(
    request: Request,
    who: Session,
    values: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    review_id = path_int(request, "id")
    async with runtime(request).pool.acquire() as conn:
        item, filled = await outreach.prefilled(conn, who, review_id)
        sent = await outreach.for_review(conn, review_id)
    context = {
        "review_id": review_id,
        "member": {"username": item["username"], "display_name": item["display_name"]},
        "values": values or {"title": filled.title, "text": filled.body},
        "outreach": sent,
    }
    return await render(request, "messages/outreach.html", {**context, **(extra or {})}, status=status)


@pages.route("/review/{id}/outreach", methods=("GET", "POST"))
@members_only
async def outreach_page(request: Request, who: Session) -> Response:
    """Reach out privately from a safeguarding item, as "the moderators" (staff; prefilled from the template)."""
    review_id = path_int(request, "id")  # a bad id is a 404 whatever the method
    if not who.is_staff:
        raise access.not_found("that page")
    if request.method == "GET":
        return await _outreach_form(request, who)
    form = await form_data(request)
    values = {"title": form_text(form, "title"), "text": form_text(form, "text", strip=False)}
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            sent = await outreach.reach_out(conn, who, review_id, values["title"], values["text"])
    except ApiError as exc:
        if exc.status == 404:
            raise
        errors = form_errors(exc, "text", labels=OUTREACH_LABELS)
        return await _outreach_form(request, who, values, errors, status=page_status(exc))
    return RedirectResponse(f"/messages/{sent.conversation_id}#message-{sent.message['id']}", status_code=303)


@pages.route("/admin/outreach-template", methods=("GET", "POST"))
@members_only
async def outreach_template_page(request: Request, who: Session) -> Response:
    """The words outreach from a safeguarding item starts from (admins)."""
    access.require_admin(who, "Only admins can change the outreach template.")
    async with runtime(request).pool.acquire() as conn:
        found = await outreach.template(conn)
    context: dict[str, Any] = {"values": {"title": found.title, "text": found.body}, "edited": found.edited}
    if request.method == "GET":
        context["done"] = "Saved." if request.query_params.get("done") == "saved" else None
        return await render(request, "messages/outreach_template.html", context)
    form = await form_data(request)
    values = {"title": form_text(form, "title"), "text": form_text(form, "text", strip=False)}
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            await outreach.save_template(conn, who, values["title"], values["text"])
    except ApiError as exc:
        errors = form_errors(exc, "text", labels=OUTREACH_LABELS)
        return await render(
            request, "messages/outreach_template.html", {**context, "values": values, **errors}, status=page_status(exc)
        )
    return RedirectResponse("/admin/outreach-template?done=saved", status_code=303)


routes = pages.routes
