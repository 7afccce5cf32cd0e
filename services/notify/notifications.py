"""Notifications as members read them: `GET /api/notifications`,
`POST /api/notifications/read`, the /notifications page, what each notification says
and where it leads, and unread counts (with notify's live stream of them).

The writer (writer.py) makes notifications from events; the mail job
(notification_mail.py) emails them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.notify import projections, tracking
from shared import audience
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, path_int, query_int, read_json
from shared.pages import Pages, form_data, render, signed_in, when
from shared.sessions import Session
from shared.web import ApiError, Runtime, check_csrf, require_viewer, runtime, viewer

pages = Pages()

api = ApiRouter(tag="notifications")

PAGE_SIZE = 30
LIVE_STREAM_MAXLEN = 10_000


def live_stream_name(prefix: str) -> str:
    """notify's own stream of unread counts, which every replica fans out on `user:N` channels."""
    return f"{prefix}notify:live"


# --- unread counts ---------------------------------------------------------------------------


async def unread_counts(conn: asyncpg.Connection, user_ids: Iterable[int]) -> dict[int, int]:
    """Unread notifications per member (0 for those without any)."""
    ids = sorted(set(user_ids))
    rows = await conn.fetch(
        "SELECT user_id, count(*) AS unread FROM notify.notifications WHERE user_id = ANY($1::bigint[]) "
        "AND read_at IS NULL GROUP BY user_id",
        ids,
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row["user_id"]: row["unread"] for row in rows})
    return counts


async def publish_counts(redis: aioredis.Redis, prefix: str, counts: dict[int, int]) -> None:
    """Put unread counts on notify's live stream, for every replica's `user:N` subscribers."""
    if not counts:
        return
    pipe = redis.pipeline(transaction=False)
    for user_id, unread in counts.items():
        pipe.xadd(
            live_stream_name(prefix), {"u": str(user_id), "n": str(unread)}, maxlen=LIVE_STREAM_MAXLEN, approximate=True
        )
    await pipe.execute()


# --- reading and marking read ---------------------------------------------------------------

LIST_SQL = f"""
SELECT n.id, n.kind, n.topic_id, n.post_id, n.post_number, n.actor_id, n.data, n.read_at, n.created_at,
       n.updated_at, t.title, t.slug
FROM notify.notifications n
LEFT JOIN notify.topics t ON t.id = n.topic_id
WHERE n.user_id = $1 AND (NOT $2::boolean OR n.read_at IS NULL)
  AND (t.id IS NULL OR {audience.MAY_READ_SQL.format(viewer="$3", item=projections.TOPIC_AUDIENCE_SQL.format(t="t"))})
ORDER BY n.updated_at DESC, n.id DESC
LIMIT $4 OFFSET $5
"""


async def list_notifications(
    conn: asyncpg.Connection, who: Session, *, unread_only: bool, page: int, page_size: int | None = None
) -> tuple[list[asyncpg.Record], int | None]:
    """A page of the viewer's notifications, newest first, only about what they may still see."""
    page_size = page_size or PAGE_SIZE
    audiences = audience.for_viewer(who)
    rows = await conn.fetch(LIST_SQL, who.user_id, unread_only, audiences, page_size + 1, (page - 1) * page_size)
    return list(rows[:page_size]), page + 1 if len(rows) > page_size else None


async def mark_read(conn: asyncpg.Connection, user_id: int, ids: Sequence[int] | None) -> int:
    """Mark some (ids) or all (None) of a member's notifications read; returns how many changed."""
    # A message's words kept for its email go once it is read (they are only for that email).
    status = await conn.execute(
        "UPDATE notify.notifications SET read_at = now(), data = data - 'excerpt' WHERE user_id = $1 "
        "AND read_at IS NULL "
        "AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))",
        user_id,
        list(ids) if ids is not None else None,
    )
    return int(status.split()[-1])


async def fetch_notification(conn: asyncpg.Connection, user_id: int, notification_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT n.*, t.title, t.slug FROM notify.notifications n LEFT JOIN notify.topics t ON t.id = n.topic_id "
        "WHERE n.id = $1 AND n.user_id = $2",
        notification_id,
        user_id,
    )


def _names(data: dict[str, Any]) -> str:
    names = list(data.get("usernames") or [])
    others = int(data.get("count") or len(names)) - len(names[:1])
    if not names:
        return "Someone"
    if others <= 0:
        return names[0]
    return f"{names[0]} and {others} other{'s' if others > 1 else ''}"


def _until(data: dict[str, Any]) -> str:
    until = data.get("until")
    if not until:
        return " until a moderator lifts it"
    try:
        return " until " + datetime.fromisoformat(until).strftime("%-d %B %Y, %H:%M UTC")
    except ValueError:
        return ""


def _starts(data: dict[str, Any]) -> str:
    try:
        return " It now starts on " + datetime.fromisoformat(str(data.get("starts_at"))).strftime(
            "%A %-d %B %Y, %H:%M UTC."
        )
    except ValueError:
        return ""


ROLE_WORDS = {"moderator": "a moderator", "admin": "an admin"}
# What of a notification's data its reader gets in `data` (the rest is for its words).
DATA_KEYS = frozenset(
    [
        *("count", "usernames", "kinds", "reason", "until"),
        *("webinar_id", "webinar_title", "starts_at", "role", "previous_role", "duty", "duty_held"),
        *("conversation_id", "conversation_title", "message_id", "review_id", "round"),
    ]
)


def _senders(data: dict[str, Any]) -> str:
    """Who wrote the new messages of a conversation: "sam", "sam and alex", "sam and 2 others"."""
    names = [str(name) for name in data.get("usernames") or []] or ["someone"]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} and {len(names) - 1} others"


def _messages(data: dict[str, Any]) -> str:
    """One notification per conversation, counting its unread messages (as Discourse says it)."""
    count = int(data.get("count") or 1)
    where = f"“{data.get('conversation_title') or 'a conversation'}”"
    inbox = ", to the moderators" if data.get("to_moderators") else ""
    if count == 1:
        return f"{_senders(data)} sent you a message in {where}{inbox}"
    return f"{count} new messages from {_senders(data)} in {where}{inbox}"


def _safeguarding(data: dict[str, Any]) -> str:
    """Calm words, and never the words that matched: the review item holds them."""
    what = "A private message" if data.get("about") == "message" else "A post"
    if int(data.get("round") or 1) > 1:
        return f"Still waiting: {what.lower()} may need a safeguarding response, and nobody has picked it up yet."
    return f"{what} may need a safeguarding response."


def _role_changed(data: dict[str, Any]) -> str:
    """A role given ("You are now a moderator"), or taken back, kindly."""
    role, previous = str(data.get("role") or "member"), str(data.get("previous_role") or "member")
    reason = f" The reason given: {data['reason']}" if data.get("reason") else ""
    if data.get("duty") == "safeguarding_lead":
        if data.get("duty_held"):
            return (
                "You are now a safeguarding lead: you will be told at once, by email too, whenever someone may "
                f"need a safeguarding response. Thank you for taking this on.{reason}"
            )
        return f"You are no longer a safeguarding lead. Thank you for all you did to keep people safe.{reason}"
    if role in ROLE_WORDS and (previous not in ROLE_WORDS or role == "admin"):
        tools = "the review queue and the audit log" if role == "moderator" else "the staff tools"
        return (
            f"You are now {ROLE_WORDS[role]}. Thank you for helping to look after the community: "
            f"{tools} are open to you.{reason}"
        )
    if role == "moderator":
        return (
            "You are now a moderator rather than an admin. You can still use the review queue and the audit log."
            f"{reason}"
        )
    was = ROLE_WORDS.get(previous, "a member of staff")
    return (
        f"You are no longer {was}. Thank you for all you did to look after the community; you are very welcome "
        f"to keep taking part as a member.{reason}"
    )


def describe(kind: str, data: dict[str, Any], title: str | None) -> str:
    """What a notification says, in plain words."""
    actor = data.get("actor_username") or "Someone"
    where = f"“{title or data.get('topic_title') or 'a topic'}”"
    reason = f" The reason given: {data['reason']}" if data.get("reason") else ""
    webinar = f"“{data.get('webinar_title') or 'a webinar'}”"
    texts = {
        "mentioned": f"{actor} mentioned you in {where}",
        "replied": f"{actor} replied to your post in {where}",
        "quoted": f"{actor} quoted your post in {where}",
        "posted": f"{actor} posted in {where}, which you are watching",
        "reacted": f"{_names(data)} reacted to your post in {where}",
        "new_replies": tracking.describe(data, title or data.get("topic_title") or "a topic"),
        "post_hidden": f"Your post in {where} has been hidden for now while moderators look at it. You can edit it "
        f"to ask for another review.{reason}",
        "post_restored": f"Your post in {where} can be seen again.",
        "post_approved": f"Your post in {where} was approved and is now published.",
        "post_rejected": f"Your post in {where} was not published.{reason}",
        "post_deleted": f"A moderator removed your post in {where}.{reason}",
        "appeal_rejected": f"Moderators looked at your appeal about your post in {where} and kept their decision."
        f"{reason}",
        "silenced": f"You cannot post for now{_until(data)}. You can still read.{reason}",
        "suspended": f"Your account was suspended{_until(data)}.{reason}",
        "role_changed": _role_changed(data),
        "webinar_changed": f"The time of the webinar {webinar}, which you registered for, has changed.{_starts(data)}",
        "webinar_cancelled": f"The webinar {webinar}, which you registered for, has been cancelled. We are sorry "
        "for the change of plans.",
        "message": _messages(data),
        "conversation_invited": f"{actor} invited you to a conversation",
        "safeguarding_alert": _safeguarding(data),
    }
    return texts.get(kind, "Something happened")


def target_url(
    kind: str, topic_id: int | None, slug: str | None, post_id: int | None, data: dict[str, Any] | None = None
) -> str | None:
    """Where a notification leads: the post (the forum's `/p/{id}` finds its page), its topic, a webinar, or nowhere."""
    data = data or {}
    if kind in ("webinar_changed", "webinar_cancelled"):
        webinar_id = data.get("webinar_id")
        return f"/webinars/{int(webinar_id)}" if webinar_id is not None else None
    if kind in ("message", "conversation_invited"):
        conversation_id, message_id = data.get("conversation_id"), data.get("message_id")
        if conversation_id is None:
            return None
        return f"/messages/{int(conversation_id)}" + (f"#message-{int(message_id)}" if message_id is not None else "")
    if kind == "safeguarding_alert":
        review_id = data.get("review_id")
        return f"/review/{int(review_id)}" if review_id is not None else "/review"
    if kind in ("post_rejected", "post_deleted", "silenced", "suspended"):
        return None
    if kind == "role_changed":
        return "/review" if data.get("role") in ROLE_WORDS else None
    if post_id is not None:
        return f"/p/{post_id}"
    return f"/t/{slug or 'topic'}/{topic_id}" if topic_id is not None else None


def notification_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public shape of a notification."""
    data = dict(row["data"] or {})
    return {
        "id": row["id"],
        "kind": row["kind"],
        "read": row["read_at"] is not None,
        "text": describe(row["kind"], data, row["title"]),
        "url": target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"], data),
        "topic_id": row["topic_id"],
        "post_id": row["post_id"],
        "post_number": row["post_number"],
        "actor": {"id": row["actor_id"], "username": data.get("actor_username")} if row["actor_id"] else None,
        "data": {k: v for k, v in data.items() if k in DATA_KEYS},
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


# --- API -------------------------------------------------------------------------------------

READ_IN = Schema(
    "NotificationsReadIn",
    {
        "ids": Field(
            "array", items="integer", max_length=1000, minimum=1, maximum=2**63 - 1, description="these notifications"
        ),
        "all": Field("boolean", description="every notification of the viewer"),
    },
)


def unread_flag(request: Request) -> bool:
    """?unread=1 (or true) lists unread ones only; 0, false or nothing lists all."""
    raw = request.query_params.get("unread", "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ApiError(400, "bad_request", "?unread must be 1 or 0.", {"unread": "must be 1 or 0"})


@api.get(
    "/api/notifications",
    answers={
        200: (
            "Notifications, newest first, and how many are unread",
            Shape(
                "NotificationList",
                {
                    "items": [
                        Shape(
                            "Notification",
                            {
                                "id": "integer",
                                "kind": "string",
                                "read": "boolean",
                                "text": "string",
                                "url": "string?",
                                "topic_id": "integer?",
                                "post_id": "integer?",
                                "post_number": "integer?",
                                "actor": Maybe({"id": "integer", "username": "string?"}),
                                "data": "object",
                                "created_at": "datetime",
                                "updated_at": "datetime",
                            },
                        )
                    ],
                    "next": "integer?",
                    "unread": "integer",
                },
            ),
        )
    },
    auth=True,
    query={
        "unread": Field("string", enum=("1", "0", "true", "false"), description="1: unread ones only"),
        "page": Field("integer", minimum=1, maximum=10_000, description="page number, from 1"),
    },
)
async def list_endpoint(request: Request) -> Response:
    """The viewer's notifications, newest first, paginated."""
    who = await require_viewer(request)
    unread_only = unread_flag(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, next_page = await list_notifications(conn, who, unread_only=unread_only, page=page)
        unread = (await unread_counts(conn, [who.user_id]))[who.user_id]
    return JSONResponse({"items": [notification_json(row) for row in rows], "next": next_page, "unread": unread})


@api.post("/api/notifications/read", body=READ_IN, answers={204: "Marked read"}, auth=True)
async def read_endpoint(request: Request) -> Response:
    """Mark some (`ids`) or all (`all: true`) of the viewer's notifications read."""
    who = await require_viewer(request)
    check_csrf(request, who)
    data = await read_json(request, READ_IN)
    if data.get("all") is True and data.get("ids") is None:
        ids = None
    elif data.get("ids") is not None and not data.get("all"):
        ids = data["ids"]
        if any(not 0 < value < 2**63 for value in ids):
            raise ApiError(422, "invalid", "Some fields need attention.", {"ids": "must be notification ids"})
    else:
        raise ApiError(422, "invalid", "Send either ids or all: true.", {"ids": "send ids, or all: true"})
    await mark_read_and_publish(runtime(request), who.user_id, ids)
    return Response(status_code=204)


async def mark_read_and_publish(rt: Runtime, user_id: int, ids: Sequence[int] | None) -> None:
    async with rt.pool.acquire() as conn:
        changed = await mark_read(conn, user_id, ids)
        counts = await unread_counts(conn, [user_id]) if changed else {}
    await publish_counts(rt.redis, rt.settings.redis_prefix, counts)


# --- pages ---------------------------------------------------------------------------------


def login_redirect(request: Request) -> Response:
    """Pages for members send visitors to log in first, and back here afterwards."""
    return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", status_code=303)


@pages.get("/notifications")
@signed_in(viewer, login_redirect)
async def notifications_page(request: Request, who: Session) -> Response:
    """The viewer's notifications, with "mark all as read"; works without JavaScript."""
    unread_only = unread_flag(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        rows, next_page = await list_notifications(conn, who, unread_only=unread_only, page=page)
        unread = (await unread_counts(conn, [who.user_id]))[who.user_id]
    # Times as every other page says them ("just now", "3 days ago", a date), in a <time> element.
    items = [{**notification_json(row), "when": when(row["updated_at"])} for row in rows]
    return await render(
        request,
        "notify/notifications.html",
        {
            "items": items,
            "unread": unread,
            "unread_only": unread_only,
            "page": page,
            "next_page": next_page,
            "marked": request.query_params.get("marked") == "1",
        },
    )


@pages.post("/notifications/read")
async def read_form(request: Request) -> Response:
    """The page's forms: mark one notification (`id`) or all of them (`all`) read."""
    who = await require_viewer(request)
    form = await form_data(request)
    if form.get("all"):
        ids: list[int] | None = None
    else:
        raw = form.getlist("id")
        if not raw or not all(isinstance(v, str) and v.isdigit() and 0 < int(v) < 2**63 for v in raw):
            raise ApiError(400, "bad_request", "Choose which notification to mark as read.")
        ids = [int(str(v)) for v in raw]
    await mark_read_and_publish(runtime(request), who.user_id, ids)
    back = "/notifications?marked=1" + ("&unread=1" if form.get("unread") == "1" else "")
    return RedirectResponse(back, status_code=303)


@pages.get("/notifications/{id}")
async def open_notification(request: Request) -> Response:
    """Follow a notification: mark it read and go where it leads."""
    notification_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return login_redirect(request)
    async with runtime(request).pool.acquire() as conn:
        row = await fetch_notification(conn, who.user_id, notification_id)
    if row is None:
        raise ApiError(404, "not_found", "We could not find that notification.")
    await mark_read_and_publish(runtime(request), who.user_id, [notification_id])
    data = dict(row["data"] or {})
    url = target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"], data) or "/notifications"
    return RedirectResponse(url, status_code=303)


routes = pages.routes
