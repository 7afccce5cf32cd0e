"""The mail job for notifications (replies, mentions, quotes, watched topics): one email
per notification, if it is still unread and the member wants it, now or when away.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.notify import mail, preferences, projections, unsubscribe
from services.notify.notifications import describe, target_url
from shared.web import Runtime

# Kinds a member may get by email, and the preference that decides it.
MAIL_PREFERENCE = {
    "mentioned": "email_on_mention",
    "replied": "email_on_reply",
    "quoted": "email_on_reply",
    "posted": "email_on_watched",
}

MAIL_LIST = {"mentioned": "mention", "replied": "reply", "quoted": "reply", "posted": "watched"}
MAIL_WHY = {
    "mention": "you chose to get an email when someone mentions you",
    "reply": "you chose to get an email when someone replies to you or quotes you",
    "watched": "you chose to get an email about new posts in what you watch",
}

MAIL_SQL = f"""
SELECT n.id, n.user_id, n.kind, n.topic_id, n.post_id, n.post_number, n.data, n.read_at, t.title, t.slug,
       p.excerpt, p.content_note, p.status AS post_status, {
    ", ".join("u." + c for c in projections.MEMBER_COLUMNS.split(", ") if c != "id")
}
FROM notify.notifications n
JOIN notify.users u ON u.id = n.user_id
LEFT JOIN notify.topics t ON t.id = n.topic_id
LEFT JOIN notify.posts p ON p.id = n.post_id
WHERE n.id = $1
"""


async def send_notification_mail(ctx: dict[str, Any], notification_id: int) -> bool:
    """Job: email one notification, if it is still unread and the member wants it (now, or when away)."""
    rt: Runtime = ctx["runtime"]
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(MAIL_SQL, notification_id)
        if row is None or row["read_at"] is not None or row["kind"] not in MAIL_LIST:
            return False
        prefs = await preferences.get_preferences(conn, row["user_id"])
    member = projections.member_from({**dict(row), "id": row["user_id"]})
    now = datetime.now(UTC)
    choice = prefs[MAIL_PREFERENCE[row["kind"]]]
    if choice == "never" or (choice == "away" and not member.is_away(now)):
        return False
    if not member.email or not member.email_verified or member.is_suspended(now) or row["post_status"] != "visible":
        return False
    list_name = MAIL_LIST[row["kind"]]
    headline = describe(row["kind"], dict(row["data"] or {}), row["title"])
    base_url = rt.settings.public_url
    path = target_url(row["kind"], row["topic_id"], row["slug"], row["post_id"]) or "/notifications"
    post = {"excerpt": row["excerpt"], "content_note": row["content_note"]} if row["excerpt"] is not None else None
    context = {
        "subject": headline,
        "headline": headline,
        "url": base_url + path,
        "base_url": base_url,
        "site_name": rt.settings.site_name,
        "post": post,
        "why": MAIL_WHY[list_name],
        "list_words": unsubscribe.LISTS[list_name][1],
        "unsubscribe_url": unsubscribe.unsubscribe_url(rt.settings, member.id, list_name),
    }
    text, html = mail.render_mail("notification", context)
    return await mail.send_mail(
        ctx,
        to=member.email,
        subject=_subject(headline),
        text=text,
        html=html,
        key=f"notification:{notification_id}",
        headers=unsubscribe.headers(rt.settings, member.id, list_name),
    )


def _subject(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
