"""The mail job for notifications (replies, mentions, quotes, watched topics, private messages,
safeguarding alerts): one email per notification and version, if it is still unread and the
member wants it, now or when away.

A post's words are quoted only when mail.quotable allows (no content note, no safeguarding
phrase, visible); a message's only when it matched no safeguarding phrase and is not hidden.
A safeguarding alert goes to the safeguarding leads whatever their usual choice (it is a duty)
and never says what was written: the review item holds that, behind a login.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.notify import mail, preferences, projections, unsubscribe
from services.notify.notifications import describe, target_url
from shared.web import Runtime

# Kinds a member may get by email, and the preference that decides it (None: always, a duty).
MAIL_PREFERENCE: dict[str, str | None] = {
    "mentioned": "email_on_mention",
    "replied": "email_on_reply",
    "quoted": "email_on_reply",
    "posted": "email_on_watched",
    "message": "email_on_message",
    "safeguarding_alert": None,
}
POST_MAIL_KINDS = ("mentioned", "replied", "quoted", "posted")

MAIL_LIST = {"mentioned": "mention", "replied": "reply", "quoted": "reply", "posted": "watched", "message": "message"}
MAIL_WHY = {
    "mention": "you chose to get an email when someone mentions you",
    "reply": "you chose to get an email when someone replies to you or quotes you",
    "watched": "you chose to get an email about new posts in what you watch",
    "message": "you chose to get an email when someone sends you a private message",
}
SAFEGUARDING_WHY = (
    "you are asked to look after safeguarding on {site_name}. These emails come whatever your other email "
    "choices, and never include what was written: please log in to read it"
)

MAIL_SQL = f"""
SELECT n.id, n.user_id, n.kind, n.topic_id, n.post_id, n.post_number, n.data, n.read_at, t.title, t.slug,
       p.excerpt, p.content_note, p.sensitive, p.status AS post_status, t.content_note AS topic_note, {
    ", ".join("u." + c for c in projections.MEMBER_COLUMNS.split(", ") if c != "id")
}
FROM notify.notifications n
JOIN notify.users u ON u.id = n.user_id
LEFT JOIN notify.topics t ON t.id = n.topic_id
LEFT JOIN notify.posts p ON p.id = n.post_id
WHERE n.id = $1
"""


def current_version(kind: str, data: dict[str, Any]) -> str:
    """The version of a notification a mail is about: the newest message of a conversation's
    notification, the round of a safeguarding alert; "" for a notification that never changes."""
    if kind == "message":
        return f"message-{data.get('last_id')}"
    if kind == "safeguarding_alert":
        return f"round-{data.get('round')}"
    return ""


async def send_notification_mail(ctx: dict[str, Any], notification_id: int, version: str = "") -> bool:
    """Job: email one notification, if it is still unread and the member wants it (now, or when away).

    `version` names what changed (a new message, a new round): a job for an older version sends
    nothing, as the newer one's job tells it all.
    """
    rt: Runtime = ctx["runtime"]
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(MAIL_SQL, notification_id)
        if row is None or row["read_at"] is not None or row["kind"] not in MAIL_PREFERENCE:
            return False
        prefs = await preferences.get_preferences(conn, row["user_id"])
    kind, data = row["kind"], dict(row["data"] or {})
    if version != current_version(kind, data):
        return False
    member = projections.member_from({**dict(row), "id": row["user_id"]})
    now = datetime.now(UTC)
    preference = MAIL_PREFERENCE[kind]
    choice = prefs[preference] if preference else "always"
    if choice == "never" or (choice == "away" and not member.is_away(now)):
        return False
    if not member.email or not member.email_verified or member.is_suspended(now):
        return False
    if kind in POST_MAIL_KINDS and row["post_status"] != "visible":
        return False
    headline = describe(kind, data, row["title"])
    base_url = rt.settings.public_url
    path = target_url(kind, row["topic_id"], row["slug"], row["post_id"], data) or "/notifications"
    context: dict[str, Any] = {
        "subject": headline,
        "headline": headline,
        "url": base_url + path,
        "base_url": base_url,
        "site_name": rt.settings.site_name,
        "post": _quoted(row, data),
        "safeguarding": kind == "safeguarding_alert",
        "why": SAFEGUARDING_WHY.format(site_name=rt.settings.site_name),
        "list_words": None,
        "unsubscribe_url": None,
    }
    headers: dict[str, str] = {}
    if kind in MAIL_LIST:
        list_name = MAIL_LIST[kind]
        context |= {
            "why": MAIL_WHY[list_name],
            "list_words": unsubscribe.LISTS[list_name][1],
            "unsubscribe_url": unsubscribe.unsubscribe_url(rt.settings, member.id, list_name),
        }
        headers = unsubscribe.headers(rt.settings, member.id, list_name)
    text, html = mail.render_mail("notification", context)
    sent = await mail.send_mail(
        ctx,
        to=member.email,
        subject=_subject(headline),
        text=text,
        html=html,
        key=f"notification:{notification_id}" + (f":{version}" if version else ""),
        headers=headers,
    )
    if sent and data.get("excerpt") is not None:
        await _forget_excerpt(rt, notification_id, data.get("excerpt_id"))
    return sent


async def _forget_excerpt(rt: Runtime, notification_id: int, excerpt_id: object) -> None:
    """A message's words are kept only for its email: once it is sent, they go (a newer message's stay)."""
    async with rt.pool.acquire() as conn:
        await conn.execute(
            "UPDATE notify.notifications SET data = data - 'excerpt' WHERE id = $1 AND data->>'excerpt_id' = $2",
            notification_id,
            str(excerpt_id),
        )


def _quoted(row: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """What the mail shows of the writing: its words when they may be quoted, else its content note,
    else nothing (the headline and the link)."""
    if row["kind"] == "message":
        excerpt = data.get("excerpt")
        return {"excerpt": excerpt, "content_note": None} if excerpt else None
    if row["kind"] not in POST_MAIL_KINDS or row["post_status"] is None:
        return None
    note = row["content_note"] or row["topic_note"]
    words = mail.quotable(row["excerpt"], note=note, sensitive=row["sensitive"], status=row["post_status"])
    if words is None and not note:
        return None
    return {"excerpt": words, "content_note": note}


def _subject(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
