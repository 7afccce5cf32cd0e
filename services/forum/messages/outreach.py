"""Outreach from a safeguarding item: a private conversation between the item's author and the
moderators' shared inbox, started from a template admins can edit (with the support lines), and what was
sent from an item (for the item's page). Staff only; the member's choice of who may message them does not
stop it (access.may_message: outreach always reaches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.forum import access
from services.forum.messages import conversations
from services.forum.moderation import audit, screening
from services.forum.writings import reviews
from shared.sessions import Session
from shared.web import ApiError


def _support_lines() -> str:
    lines = [f"- {s['name']}: {s['action']}. {s['detail']}" for s in screening.SUPPORT["services"]]
    return "\n".join(lines)


DEFAULT_TITLE = "Checking in with you"
DEFAULT_BODY = (
    "Hello {name},\n\n"
    "We are the moderators. We read what you wrote and wanted to check in with you and see how you are. "
    "You do not have to reply, but if you would like to talk, you can answer here: any of us can read it, "
    "and it stays between you and the moderators.\n\n"
    "If things feel too much right now, these services are free and confidential:\n\n"
    f"{_support_lines()}\n\n"
    "Take care,\nThe moderators"
)
BODY_MAX = conversations.TEXT_MAX

TEMPLATE_SQL = "SELECT title, body, updated_at FROM forum.outreach_template WHERE id = 1"
SAVE_TEMPLATE_SQL = """
INSERT INTO forum.outreach_template (id, title, body, updated_by) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO UPDATE SET title = $1, body = $2, updated_by = $3, updated_at = now()
"""
ITEM_SQL = """
SELECT r.id, r.kind, r.author_id, u.username, u.display_name
FROM forum.reviewables r JOIN forum.users u ON u.id = r.author_id
WHERE r.id = $1
"""
# What was sent from an item: each conversation, who started it, and whether the member answered.
FOR_REVIEW_SQL = """
SELECT c.id AS conversation_id, c.created_at AS started_at, u.username AS started_by_username,
       c.message_count, c.last_message_at,
       EXISTS (SELECT 1 FROM forum.messages x WHERE x.conversation_id = c.id AND NOT x.from_moderators) AS replied
FROM forum.conversations c JOIN forum.users u ON u.id = c.started_by
WHERE c.review_id = $1
ORDER BY c.created_at, c.id
"""


@dataclass(frozen=True)
class Template:
    title: str
    body: str
    edited: bool


@dataclass(frozen=True)
class Sent:
    """One outreach conversation started from a review item."""

    conversation_id: int
    started_at: datetime
    started_by_username: str
    message_count: int
    last_message_at: datetime
    replied: bool

    @property
    def url(self) -> str:
        return f"/messages/{self.conversation_id}"


async def template(conn: asyncpg.Connection) -> Template:
    """The outreach template: the admins' version, or the default."""
    row = await conn.fetchrow(TEMPLATE_SQL)
    if row is None:
        return Template(DEFAULT_TITLE, DEFAULT_BODY, edited=False)
    return Template(row["title"], row["body"], edited=True)


async def save_template(conn: asyncpg.Connection, who: Session, title: Any, body: Any) -> Template:
    """Admins change the outreach template (audited); {name} stands for the member's name."""
    access.require_admin(who, "Only admins can change the outreach template.")
    clean_title = conversations.clean_title(title)
    clean_body = conversations.clean_text(body)
    before = await template(conn)
    await conn.execute(SAVE_TEMPLATE_SQL, clean_title, clean_body, who.user_id)
    await audit.record_by(
        conn,
        who,
        "setting.change",
        None,
        before={"title": before.title, "body": before.body},
        after={"title": clean_title, "body": clean_body},
    )
    return Template(clean_title, clean_body, edited=True)


async def safeguarding_item(conn: asyncpg.Connection, who: Session, review_id: int) -> asyncpg.Record:
    """The safeguarding item outreach starts from (staff); 404 when there is none, 422 when it is another kind."""
    access.require_staff(who)
    item = await conn.fetchrow(ITEM_SQL, review_id)
    if item is None:
        raise ApiError(404, "not_found", "There is no such item in the review queue.")
    if item["kind"] not in reviews.SAFEGUARDING_KINDS:
        raise ApiError(422, "not_safeguarding", "Outreach starts from a safeguarding item.")
    return item


async def prefilled(conn: asyncpg.Connection, who: Session, review_id: int) -> tuple[asyncpg.Record, Template]:
    """The item and the template filled in with the member's name."""
    item = await safeguarding_item(conn, who, review_id)
    found = await template(conn)
    name = item["display_name"] or item["username"]
    return item, Template(found.title, found.body.replace("{name}", name), found.edited)


async def reach_out(
    conn: asyncpg.Connection, who: Session, review_id: int, title: Any, text: Any
) -> conversations.Sent:
    """Start the outreach conversation from a safeguarding item (audited)."""
    item = await safeguarding_item(conn, who, review_id)
    sent = await conversations.start_outreach(
        conn, who, member_id=item["author_id"], review_id=review_id, title=str(title or ""), text=str(text or "")
    )
    await audit.record_by(conn, who, "review.outreach", review_id, after={"conversation_id": sent.conversation_id})
    return sent


async def for_review(conn: asyncpg.Connection, review_id: int) -> list[Sent]:
    """The outreach sent from an item, oldest first, and whether the member replied (for its page: staff)."""
    return [Sent(**dict(row)) for row in await conn.fetch(FOR_REVIEW_SQL, review_id)]
