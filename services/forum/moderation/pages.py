"""Moderation and safety pages.

For everyone: "Get support" (/support). For members: the flag dialog, appealing about a
hidden or rejected post, muting or ignoring a member, and their safety settings (/me/controls).
For moderators: the review queue (priority order, context, one-click actions), hiding and
restoring a post, revealing a pseudonymous author, closing, pinning and moving a topic, and a
member's moderation page (silence, suspend). Admins' pages: admin_pages.py.

Pages call the same check-then-do functions as the JSON API. Moderator and admin pages answer
401 to visitors and 403 to members, before anything else (CSRF included) is looked at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.accounts import accounts
from services.forum.accounts import controls as member_controls
from services.forum.messages import outreach
from services.forum.moderation import api as moderation_api
from services.forum.moderation import audit, audit_words, moderation, safeguarding, screening
from services.forum.topics import categories, posts, topics
from services.forum.topics.api import TOPIC_MODERATION_IN
from services.forum.topics.pages import FIELD_LABELS
from services.forum.writings import api as writings_api
from services.forum.writings import flags, reviews, writings
from services.forum.writings.targets import FLAG_REASON_HINTS, FLAG_REASON_LABELS, FLAG_REASONS, POST
from shared.api import path_int
from shared.pages import Pages, ago, form_data, form_errors, login_redirect, render, signed_in, when
from shared.sessions import Session
from shared.web import ApiError, Runtime, require_viewer, runtime, viewer

pages = Pages()

DURATIONS = {
    "1d": ("1 day", timedelta(days=1)),
    "3d": ("3 days", timedelta(days=3)),
    "1w": ("1 week", timedelta(weeks=1)),
    "2w": ("2 weeks", timedelta(weeks=2)),
    "1m": ("1 month", timedelta(days=30)),
    "3m": ("3 months", timedelta(days=91)),
    "1y": ("1 year", timedelta(days=365)),
}
ACTION_LABELS = {
    "approve": "Approve",
    "restore": "Restore",
    "reject": "Reject",
    "hide": "Hide",
    "delete": "Delete",
    "ignore": "Ignore",
}
STATUS_LABELS = {
    "pending": "Waiting",
    "approved": "Approved",
    "rejected": "Rejected or hidden",
    "ignored": "Ignored",
    "deleted": "Deleted",
    "all": "All",
}


# --- who may see a page ------------------------------------------------------------------------------


SIGN_IN_FIRST = "Please log in to see this page."


async def _staff(request: Request) -> Session:
    """Moderators only: 401 for visitors, 403 for members (before the form and its CSRF token)."""
    who = await require_viewer(request, SIGN_IN_FIRST)
    access.require_staff(who)
    return who


async def _admin(request: Request) -> Session:
    who = await require_viewer(request, SIGN_IN_FIRST)
    access.require_admin(who)
    return who


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\x00", "") if isinstance(value, str) else ""


def _status(exc: ApiError) -> int:
    return exc.status if exc.status in (403, 404, 409, 429) else 422


def _errors(exc: ApiError, default_field: str) -> dict[str, Any]:
    return form_errors(exc, default_field, labels=FIELD_LABELS)


# --- Get support -------------------------------------------------------------------------------------


@pages.get("/support")
async def support_page(request: Request) -> Response:
    """Where to find support now: the same place on every page ("Get support")."""
    return await render(request, "safety/support.html", {"panel": screening.SUPPORT})


# --- flags -------------------------------------------------------------------------------------------


async def _post_context(conn: asyncpg.Connection, who: Session, post_id: int) -> dict[str, Any]:
    post, topic = await posts.readable_post(conn, who, post_id)
    return {
        "post": {"id": post["id"], "number": post["post_number"]},
        "topic": {"title": topic.title, "url": topics.topic_url(topic.id, topic.slug)},
        "back": f"{topics.topic_url(topic.id, topic.slug)}#post-{post['post_number']}",
    }


def _flag_reasons(selected: str) -> list[dict[str, Any]]:
    return [
        {
            "value": reason,
            "text": FLAG_REASON_LABELS[reason],
            "hint": {"text": FLAG_REASON_HINTS[reason]},
            "checked": reason == selected,
        }
        for reason in FLAG_REASONS
    ]


@pages.form("/posts/{id}/flag")
async def flag_page(request: Request) -> Response:
    """The flag dialog: why a post needs a moderator, with an optional note."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return login_redirect(request)
    rt = runtime(request)
    if request.method == "GET":
        async with rt.pool.acquire() as conn:
            context = await _post_context(conn, who, post_id)
            await flags.check_flag(conn, who, await writings.readable_post(conn, who, post_id), "off_topic", None)
        return await render(request, "moderation/flag.html", {**context, "reasons": _flag_reasons(""), "form": {}})
    submitted = await form_data(request)
    form = {"reason": _text(submitted, "reason"), "note": _text(submitted, "note")}
    try:
        data = writings_api.FLAG_IN.validate({"reason": form["reason"] or None, "note": form["note"] or None})
        async with rt.pool.acquire() as conn, conn.transaction():
            await flags.flag(conn, who, POST, post_id, data, screening.PostingRules.of(rt))
            context = await _post_context(conn, who, post_id)
    except ApiError as exc:
        if exc.status not in (409, 422, 429):
            raise
        async with rt.pool.acquire() as conn:
            context = await _post_context(conn, who, post_id)
        return await render(
            request,
            "moderation/flag.html",
            {**context, "reasons": _flag_reasons(form["reason"]), "form": form, **_errors(exc, "reason")},
            status=_status(exc),
            headers=exc.headers,
        )
    return await render(
        request, "moderation/flag_done.html", {**context, "safeguarding": form["reason"] == "safeguarding"}
    )


# --- appeals -----------------------------------------------------------------------------------------


@pages.form("/posts/{id}/appeal")
async def appeal_page(request: Request) -> Response:
    """Appeal about your hidden or rejected post, once, in your own words."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return login_redirect(request)
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            post = await moderation.appealable_post(conn, who, post_id)
            context = await _post_context(conn, who, post_id)
        return await render(
            request, "moderation/appeal.html", {**context, "reason": post["moderation_reason"], "form": {}}
        )
    submitted = await form_data(request)
    form = {"text": _text(submitted, "text")}
    try:
        data = moderation_api.APPEAL_IN.validate(form)
        async with pool.acquire() as conn, conn.transaction():
            await moderation.appeal(conn, who, post_id, data["text"])
            context = await _post_context(conn, who, post_id)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with pool.acquire() as conn:
            post, _ = await posts.readable_post(conn, who, post_id)
            context = await _post_context(conn, who, post_id)
        return await render(
            request,
            "moderation/appeal.html",
            {**context, "reason": post["moderation_reason"], "form": form, **_errors(exc, "text")},
            status=_status(exc),
        )
    return RedirectResponse(context["back"], status_code=303)


# --- a post, directly -----------------------------------------------------------------------------------


@pages.form("/posts/{id}/moderate")
async def post_action_page(request: Request) -> Response:
    """Hide a post (with a reason its author sees) or restore a hidden one."""
    post_id = path_int(request, "id")
    who = await _staff(request)
    pool = runtime(request).pool
    async with pool.acquire() as conn:
        post, _ = await posts.readable_post(conn, who, post_id)
        context = await _post_context(conn, who, post_id)
    action = "hide" if post["status"] == "visible" else "restore"
    if post["status"] not in ("visible", "hidden"):
        raise ApiError(409, "conflict", "Only a visible post can be hidden, and only a hidden one restored.")
    context.update(action=action, form={})
    if request.method == "GET":
        return await render(request, "moderation/post_action.html", context)
    submitted = await form_data(request)
    reason = _text(submitted, "reason")
    try:
        data = moderation_api.POST_ACTION_IN.validate({"reason": reason or None})
        async with pool.acquire() as conn, conn.transaction():
            await moderation.moderate_post(conn, who, post_id, action, data.get("reason"))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        context["form"] = {"reason": reason}
        return await render(
            request, "moderation/post_action.html", {**context, **_errors(exc, "reason")}, status=_status(exc)
        )
    return RedirectResponse(context["back"], status_code=303)


@pages.post("/posts/{id}/reveal-author")
async def reveal_page(request: Request) -> Response:
    """Reveal who wrote a pseudonymous post (recorded in the audit log)."""
    post_id = path_int(request, "id")
    who = await _staff(request)
    await form_data(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        revealed = await moderation.reveal_author(conn, who, post_id)
        context = await _post_context(conn, who, post_id)
    author = revealed["author"]
    return await render(
        request,
        "moderation/reveal.html",
        {**context, "author": author, "member_url": f"/review/members/{quote(author['username'])}"},
    )


# --- topics -------------------------------------------------------------------------------------------


@pages.form("/topics/{id}/moderate")
async def topic_moderation_page(request: Request) -> Response:
    """Close or open, pin or unpin, or move a topic, with a reason for the audit log."""
    topic_id = path_int(request, "id")
    who = await _staff(request)
    pool = runtime(request).pool
    async with pool.acquire() as conn:
        row = await topics.topic_row(conn, who, topic_id)
        choices = await categories.list_readable(conn, who)
    form: dict[str, Any] = {"closed": row["closed"], "pinned": row["pinned"], "category_id": str(row["category_id"])}
    context: dict[str, Any] = {
        "topic": {"id": row["id"], "title": row["title"], "url": topics.topic_url(row["id"], row["slug"])},
        # Where it may move: categories that take posts, and the one it is in (archived or not).
        "categories": [
            {"value": str(c["id"]), "text": c["name"]}
            for c in choices
            if categories.takes_posts(c) or c["id"] == row["category_id"]
        ],
    }
    if request.method == "GET":
        return await render(request, "moderation/topic.html", {**context, "form": form})
    submitted = await form_data(request)
    category = _text(submitted, "category_id")
    form = {
        "closed": _text(submitted, "closed") == "1",
        "pinned": _text(submitted, "pinned") == "1",
        "category_id": category,
        "reason": _text(submitted, "reason"),
    }
    try:
        data = TOPIC_MODERATION_IN.validate(
            {
                "closed": form["closed"],
                "pinned": form["pinned"],
                "category_id": int(category) if category.isdigit() and len(category) < 19 else None,
                "reason": form["reason"] or None,
            }
        )
        async with pool.acquire() as conn, conn.transaction():
            await topics.moderate_topic(conn, who, topic_id, data)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await render(
            request, "moderation/topic.html", {**context, "form": form, **_errors(exc, "reason")}, status=_status(exc)
        )
    return RedirectResponse(context["topic"]["url"], status_code=303)


# --- the header's count (every staff page) -----------------------------------------------------------------


async def header_context(request: Request, who: Session | None) -> dict[str, Any]:
    """For staff, every page's header shows how many items wait in the review queue (one indexed count);
    the live script refreshes it from /api/review/counts. The forum app's page_context."""
    if not access.may_see_review_counts(who):
        return {}
    assert who is not None
    async with runtime(request).pool.acquire() as conn:
        found = await safeguarding.counts(conn, who)
    return {"review_counts": {**found, "label": safeguarding.count_label(found)}}


# --- the review queue ------------------------------------------------------------------------------------


def _queue_links(query: moderation.ReviewQuery) -> dict[str, Any]:
    def url(**changes: Any) -> str:
        values = {"status": query.status or "all", "kind": query.kind, "page": query.page, **changes}
        params = {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}
        return "/review" + ("?" + urlencode(params) if params else "")

    current_status = query.status or "all"
    return {
        "statuses": [
            {"label": label, "href": url(status=value, page=1), "current": value == current_status}
            for value, label in STATUS_LABELS.items()
        ],
        "kinds": [
            {"label": "Everything", "href": url(kind=None, page=1), "current": query.kind is None},
            *(
                {"label": label, "href": url(kind=value, page=1), "current": value == query.kind}
                for value, label in reviews.KIND_LABELS.items()
            ),
        ],
        "previous_url": url(page=query.page - 1) if query.page > 1 else None,
        "next_page": url(page=query.page + 1),
    }


def _item_view(item: dict[str, Any], who: Session | None = None) -> dict[str, Any]:
    """A queue item with what the page needs: labels for its buttons, times people read, and for a
    safeguarding item who is looking at it (and whether that is the viewer)."""
    post = item["post"]
    created = datetime.fromisoformat(item["created_at"])
    return {
        **item,
        "safeguarding": _safeguarding_view(item.get("safeguarding"), who),
        "created": {"text": ago(created), "iso": item["created_at"]},
        "buttons": [
            {"action": a, "label": _button_label(a, post["status"]), "warning": a in ("delete", "hide", "reject")}
            for a in item["actions"]
            if a not in _SAME_AS.get(post["status"], ())
        ],
        "member_url": f"/review/members/{quote(item['author']['username'])}" if not post["anonymous"] else None,
    }


def _safeguarding_view(part: dict[str, Any] | None, who: Session | None) -> dict[str, Any] | None:
    if part is None:
        return None
    picked = part["picked_up"]
    view = {**part, "outcomes": _outcome_items(""), "picked_up": None, "alerted": None}
    if picked is not None:
        view["picked_up"] = {
            **picked,
            "when": when(datetime.fromisoformat(picked["at"])),
            "mine": who is not None and picked["by"]["id"] == who.user_id,
        }
    if part["alerted_at"]:
        view["alerted"] = when(datetime.fromisoformat(part["alerted_at"]))
    return view


def _outcome_items(selected: str) -> list[dict[str, Any]]:
    return [
        {
            "value": value,
            "text": label,
            "hint": {"text": safeguarding.OUTCOME_HINTS[value]},
            "checked": value == selected,
        }
        for value, label in safeguarding.OUTCOMES.items()
    ]


# Actions the API accepts as another's synonym: the page shows one button for each outcome.
_SAME_AS = {
    "visible": ("reject",),
    "hidden": ("approve", "reject"),
    "pending": ("restore", "hide"),
    "rejected": ("restore", "hide"),
}


def _button_label(action: str, post_status: str) -> str:
    if action == "approve" and post_status == "visible":
        return "Keep visible"
    if action == "approve" and post_status in ("pending", "rejected"):
        return "Approve and publish"
    if action in ("hide", "reject") and post_status in ("hidden", "rejected"):
        return "Keep hidden" if action == "hide" else "Keep rejected"
    return ACTION_LABELS[action]


async def _queue_context(conn: asyncpg.Connection, who: Session, query: moderation.ReviewQuery) -> dict[str, Any]:
    items, has_next = await moderation.list_reviews(conn, who, query)
    links = _queue_links(query)
    return {
        "items": [_item_view(i, who) for i in items],
        "review_query": query,  # not "query": the layout's search box shows that
        **links,
        "next_url": links["next_page"] if has_next else None,
        "item_errors": {},
    }


@pages.get("/review")
async def queue_page(request: Request) -> Response:
    """The review queue: safeguarding first, then by priority, score and age; one click per action."""
    who = await _staff(request)
    query = moderation.parse_review_query(request)
    async with runtime(request).pool.acquire() as conn:
        context = await _queue_context(conn, who, query)
        context["done"] = await _done(conn, who, request.query_params.get("done") or "")
    return await render(request, "moderation/queue.html", context)


async def _done(conn: asyncpg.Connection, who: Session, action: str) -> list[audit_words.Piece] | None:
    """What the viewer just did in the queue, in words ("You kept a reply by Sam ... visible.")."""
    if action not in ACTION_LABELS:
        return None
    row = await audit.latest_by(conn, who.user_id, f"review.{action}")
    if row is None:
        return None
    [entry] = await audit_words.described(conn, who, [audit.entry_json(row)], you=True)
    words: list[audit_words.Piece] = entry["words"]
    return words


@pages.get("/review/{id}")
async def item_page(request: Request) -> Response:
    """One item of the review queue on its own page (where staff notifications lead): for a safeguarding
    item, who is looking at it, "I'm looking at this", and what was done once it is closed."""
    review_id = path_int(request, "id")
    who = await _staff(request)
    async with runtime(request).pool.acquire() as conn:
        context = await _item_context(conn, who, review_id)
    context["done"] = ITEM_DONE.get(request.query_params.get("done") or "")
    return await render(request, "moderation/item.html", context)


ITEM_DONE = {
    "pick_up": "You are looking at this item. The other staff can see that, and it will not alert them again.",
    "take_over": "You have taken this item over. The other staff can see that you are looking at it now.",
    "put_down": "You are no longer looking at this item. If nobody picks it up, staff will be alerted again.",
    "closed": "The item is closed, and what was done is recorded below.",
}


async def _item_context(conn: asyncpg.Connection, who: Session, review_id: int) -> dict[str, Any]:
    item = await moderation.get_review(conn, who, review_id)
    context: dict[str, Any] = {"item": _item_view(item, who), "item_errors": {}}
    if item["safeguarding"] is not None:  # what was sent privately from it, and "Message them privately"
        context["outreach"] = await outreach.for_review(conn, review_id)
    return context


@pages.post("/review/{id}")
async def review_action_page(request: Request) -> Response:
    """A queue item's action buttons: act, then back to the queue, or to the item from its own page (409 when
    someone else acted first). A safeguarding item needs what was done (outcome and note)."""
    review_id = path_int(request, "id")
    who = await _staff(request)
    submitted = await form_data(request)
    action, reason = _text(submitted, "action"), _text(submitted, "reason")
    outcome, note = _text(submitted, "outcome"), _text(submitted, "note")
    from_item = _text(submitted, "back") == "item"
    pool = runtime(request).pool
    try:
        data = moderation_api.REVIEW_ACTION_IN.validate(
            {"action": action or None, "reason": reason or None, "outcome": outcome or None, "note": note or None}
        )
        async with pool.acquire() as conn, conn.transaction():
            await moderation.act(
                conn,
                who,
                review_id,
                data["action"],
                data.get("reason"),
                outcome=data.get("outcome"),
                note=data.get("note"),
            )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with pool.acquire() as conn:
            if from_item:
                context = await _item_context(conn, who, review_id)
            else:
                context = await _queue_context(conn, who, moderation.ReviewQuery())
        fields = exc.fields or {}
        field_name = next((f for f in ("outcome", "note", "reason") if f in fields), "action")
        label = {"outcome": "What was done", "note": "Note", "reason": "Reason"}.get(field_name)
        message = f"{label} {fields[field_name]}" if label else exc.message
        context.update(
            errors={"queue": message},
            error_list=[{"text": message, "href": f"#{field_name}-{review_id}"}],
            item_errors={review_id: message},
            draft={review_id: reason},
            draft_outcome={review_id: {"outcome": outcome, "note": note, "field": field_name}},
        )
        template = "moderation/item.html" if from_item else "moderation/queue.html"
        return await render(request, template, context, status=exc.status)
    if from_item:
        return RedirectResponse(f"/review/{review_id}?done=closed", status_code=303)
    return RedirectResponse(f"/review?done={action}", status_code=303)


PICKUP_ACTIONS = ("pick_up", "take_over", "put_down")


@pages.form("/review/{id}/pickup")
async def pickup_page(request: Request) -> Response:
    """ "I'm looking at this" on a safeguarding item, stopping, or taking it over from another moderator
    (GET asks to confirm a take-over)."""
    review_id = path_int(request, "id")
    who = await _staff(request)
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            context = await _item_context(conn, who, review_id)
        if context["item"]["kind"] not in reviews.SAFEGUARDING_KINDS:
            raise ApiError(409, "not_safeguarding", "Only safeguarding items are picked up.")
        return await render(request, "moderation/take_over.html", context)
    submitted = await form_data(request)
    action = _text(submitted, "action")
    try:
        if action not in PICKUP_ACTIONS:
            raise ApiError(
                422, "invalid", "Some fields need attention.", {"action": "must be pick_up, take_over or put_down"}
            )
        async with pool.acquire() as conn, conn.transaction():
            if action == "put_down":
                await safeguarding.put_down(conn, who, review_id)
            else:
                await safeguarding.pick_up(conn, who, review_id, take_over=action == "take_over")
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with pool.acquire() as conn:
            context = await _item_context(conn, who, review_id)
        context.update(
            errors={"pickup": exc.message}, error_list=[{"text": exc.message, "href": f"#pickup-{review_id}"}]
        )
        return await render(request, "moderation/item.html", context, status=exc.status)
    return RedirectResponse(f"/review/{review_id}?done={action}", status_code=303)


# --- members ---------------------------------------------------------------------------------------------


async def _member_by_name(conn: asyncpg.Connection, username: str) -> asyncpg.Record:
    if len(username) > 100 or not accounts.USERNAME_RE.fullmatch(username):
        raise ApiError(404, "not_found", "There is no member with that username.")
    row = await conn.fetchrow("SELECT id, username FROM forum.users WHERE lower(username) = lower($1)", username)
    if row is None:
        raise ApiError(404, "not_found", "There is no member with that username.")
    return row


def _standing_view(standing: dict[str, Any]) -> dict[str, Any]:
    def moment(value: str | None) -> dict[str, str] | None:
        return when(datetime.fromisoformat(value)) if value else None

    return {
        **standing,
        "suspended": moment(standing["suspended_until"]),
        "silenced": moment(standing["silenced_until"]),
    }


async def _member_context(conn: asyncpg.Connection, who: Session, username: str) -> dict[str, Any]:
    target = await _member_by_name(conn, username)
    record = await moderation.member_record(conn, who, target["id"])
    return {
        **record,
        "audit": await audit_words.described(conn, who, record["audit"]),
        "standing": _standing_view(record["standing"]),
        "reviews": [_item_view(i) for i in record["reviews"]],
        "durations": [{"value": k, "text": label} for k, (label, _) in DURATIONS.items()],
        "staff_member": access.member_is_staff(record["user"]["roles"]),
        "form": {},
    }


@pages.get("/review/members/{username}")
async def member_page(request: Request) -> Response:
    """A member as moderators see them: standing, counts, review items, audit entries; silence or suspend."""
    who = await _staff(request)
    async with runtime(request).pool.acquire() as conn:
        context = await _member_context(conn, who, str(request.path_params["username"]))
    context["done"] = request.query_params.get("done")
    return await render(request, "moderation/member.html", context)


@pages.post("/review/members/{username}/sanction")
async def sanction_page(request: Request) -> Response:
    """The member page's forms: silence or suspend for a duration with a reason, or lift either."""
    who = await _staff(request)
    username = str(request.path_params["username"])
    submitted = await form_data(request)
    action = _text(submitted, "action")
    form = {"action": action, "duration": _text(submitted, "duration"), "reason": _text(submitted, "reason")}
    rt = runtime(request)
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            target = await _member_by_name(conn, username)
            await _sanction(rt, conn, who, target["id"], form)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with rt.pool.acquire() as conn:
            context = await _member_context(conn, who, username)
        context["form"] = form
        return await render(
            request, "moderation/member.html", {**context, **_errors(exc, "reason")}, status=_status(exc)
        )
    if action == "suspend":
        await rt.sessions.delete_all(target["id"])
    return RedirectResponse(f"/review/members/{quote(username)}?done={action}", status_code=303)


async def _sanction(rt: Runtime, conn: asyncpg.Connection, who: Session, user_id: int, form: dict[str, str]) -> None:
    action = form["action"]
    if action in ("unsilence", "unsuspend"):
        await moderation.lift(conn, who, user_id, "silenced" if action == "unsilence" else "suspended")
        return
    if action not in ("silence", "suspend"):
        raise ApiError(422, "invalid", "Some fields need attention.", {"action": "must be silence or suspend"})
    if form["duration"] not in DURATIONS:
        raise ApiError(422, "invalid", "Some fields need attention.", {"duration": "must be one of the choices"})
    until = datetime.now(UTC) + DURATIONS[form["duration"]][1]
    data = moderation_api.SANCTION_IN.validate({"until": until.isoformat(), "reason": form["reason"] or None})
    await moderation.sanction(rt, conn, who, user_id, "silenced" if action == "silence" else "suspended", data)


# --- members' own controls --------------------------------------------------------------------------------------


@pages.form("/me/controls")
@signed_in(viewer)
async def controls_page(request: Request, who: Session) -> Response:
    """Your safety settings: content notes folded or open, and the members you mute or ignore."""
    pool = runtime(request).pool
    if request.method == "POST":
        submitted = await form_data(request)
        async with pool.acquire() as conn, conn.transaction():
            if _text(submitted, "member"):
                member = _text(submitted, "member")
                member_id = int(member) if member.isdigit() and len(member) < 19 else 0
                await member_controls.set_level(conn, who, member_id, _text(submitted, "level") or "none")
            else:
                await member_controls.set_content_notes(conn, who, _text(submitted, "content_notes"))
        return RedirectResponse("/me/controls?saved=1", status_code=303)
    async with pool.acquire() as conn:
        current = await member_controls.controls(conn, who)
    return await render(
        request,
        "safety/controls.html",
        {
            **current,
            "saved": bool(request.query_params.get("saved")),
            "note_items": [
                {"value": v, "text": member_controls.CONTENT_NOTE_LABELS[v], "checked": v == current["content_notes"]}
                for v in member_controls.CONTENT_NOTES
            ],
            "level_labels": member_controls.LEVEL_LABELS,
        },
    )


@pages.form("/u/{username}/mute")
@signed_in(viewer)
async def mute_page(request: Request, who: Session) -> Response:
    """Mute or ignore a member, or stop: a choice only you know about."""
    pool = runtime(request).pool
    async with pool.acquire() as conn:
        target = await _member_by_name(conn, str(request.path_params["username"]))
        levels = await member_controls.levels_for(conn, who)
    current = levels.get(target["id"], "none")
    context: dict[str, Any] = {
        "member": {"id": target["id"], "username": target["username"]},
        "items": [
            {"value": v, "text": member_controls.LEVEL_LABELS[v], "checked": v == current}
            for v in ("none", "muted", "ignored")
        ],
    }
    if request.method == "GET":
        return await render(request, "safety/mute.html", context)
    submitted = await form_data(request)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await member_controls.set_level(conn, who, target["id"], _text(submitted, "level"))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await render(request, "safety/mute.html", {**context, **_errors(exc, "level")}, status=_status(exc))
    return RedirectResponse("/me/controls?saved=1", status_code=303)


routes = pages.routes
