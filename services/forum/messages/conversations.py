"""Private conversations: starting one (with members, or with the moderators' shared inbox), replying,
inviting a member (who accepts or declines), leaving, read state, the inbox, and a message as a writing
(reactions, reports, moderation). Who may see or do what is access.py's "private messages" section.

Every write records its event in the same transaction: ConversationCreated, ConversationMembersChanged,
MessageCreated (told to the members but the author, less any who blocked the author), MessageHidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.forum import access
from services.forum.accounts import accounts
from services.forum.messages import consent
from services.forum.moderation import screening
from services.forum.outbox import write_event
from services.forum.topics import posts
from services.forum.writings import reactions, reviews
from services.forum.writings.targets import MESSAGE, Writing
from shared import audience, markdown
from shared.events import (
    ConversationCreated,
    ConversationMembersChanged,
    ConversationRead,
    MessageCreated,
    MessageHidden,
)
from shared.sessions import Session
from shared.web import ApiError, invalid

TITLE_MAX = 200
TEXT_MAX = 20_000
INBOX_PER_PAGE = 30
MESSAGES_PER_PAGE = 50
MODERATORS_NAME = "The moderators"
EXCERPT_CHARS = 160
AUTO_HIDE_REASON = "This message was reported, so it is hidden until a moderator has looked at it."
NEW_STATUS = {"hide": "hidden", "restore": "visible"}

# --- input ---------------------------------------------------------------------------------------------


def clean_title(value: Any) -> str:
    """A conversation's title as stored; 422 when empty, too long or holding control characters."""
    title = " ".join(str(value or "").split())
    if not title:
        raise invalid("title", "is required: a few words on what this conversation is about")
    if len(title) > TITLE_MAX:
        raise invalid("title", f"must be {TITLE_MAX} characters or fewer")
    if accounts.has_controls(title):
        raise invalid("title", "cannot contain control characters or text-direction marks")
    return title


def clean_text(value: Any) -> str:
    """A message's text as stored; 422 when empty, too long or holding control characters."""
    text = str(value or "").replace("\r\n", "\n").replace("\r", "\n").rstrip().lstrip("\n")
    if not text.strip():
        raise invalid("text", "is required: write your message")
    if len(text) > TEXT_MAX:
        raise invalid("text", f"must be {TEXT_MAX:,} characters or fewer")
    if accounts.has_controls(text, allow_newlines=True):
        raise invalid("text", "cannot contain control characters or text-direction marks")
    return text


# --- reading -------------------------------------------------------------------------------------------

CONVERSATION_SQL = """
SELECT c.id, c.title, c.started_by, c.with_moderators, c.review_id, c.created_at, c.last_message_at,
       c.last_message_id, c.message_count,
       m.state, m.seen_after_message_id, m.left_message_id, m.last_read_message_id, m.invited_by
FROM forum.conversations c
LEFT JOIN forum.conversation_members m ON m.conversation_id = c.id AND m.user_id = $2
WHERE c.id = $1
"""
LOCK_CONVERSATION_SQL = "SELECT id FROM forum.conversations WHERE id = $1 FOR UPDATE"


@dataclass(frozen=True)
class Conversation:
    """A conversation as one viewer stands in it."""

    id: int
    title: str
    started_by: int
    with_moderators: bool
    review_id: int | None
    created_at: datetime
    last_message_at: datetime
    last_message_id: int
    message_count: int
    state: str | None  # the viewer's membership: invited, active, left, declined; None when none
    seen_after_message_id: int
    left_message_id: int | None
    last_read_message_id: int
    staff_party: bool  # the viewer is staff and the moderators are a party: they read it all

    @property
    def audience(self) -> list[str]:
        return access.conversation_audience(self.id, self.with_moderators)

    @classmethod
    def of(cls, row: asyncpg.Record, who: Session | None) -> Conversation:
        return cls(
            id=row["id"],
            title=row["title"],
            started_by=row["started_by"],
            with_moderators=row["with_moderators"],
            review_id=row["review_id"],
            created_at=row["created_at"],
            last_message_at=row["last_message_at"],
            last_message_id=row["last_message_id"],
            message_count=row["message_count"],
            state=row["state"],
            seen_after_message_id=row["seen_after_message_id"] or 0,
            left_message_id=row["left_message_id"],
            last_read_message_id=row["last_read_message_id"] or 0,
            staff_party=bool(row["with_moderators"] and access.is_staff(who)),
        )


async def find(conn: asyncpg.Connection, who: Session, conversation_id: int, *, lock: bool = False) -> Conversation:
    """The conversation if the viewer may read it (or see its invitation); 404 otherwise."""
    if lock:
        await conn.execute(LOCK_CONVERSATION_SQL, conversation_id)
    row = await conn.fetchrow(CONVERSATION_SQL, conversation_id, who.user_id)
    if row is None:
        raise access.not_found("that conversation")
    found = Conversation.of(row, who)
    if not (
        access.may_read_conversation(who, found.state, found.with_moderators)
        or access.may_see_invitation(who, found.state)
    ):
        raise access.not_found("that conversation")
    return found


async def readable(conn: asyncpg.Connection, who: Session, conversation_id: int, *, lock: bool = False) -> Conversation:
    """The conversation if the viewer may read its messages; 404 otherwise (an invitation included)."""
    found = await find(conn, who, conversation_id, lock=lock)
    if not access.may_read_conversation(who, found.state, found.with_moderators):
        raise access.not_found("that conversation")
    return found


_MESSAGE_COLUMNS = """
x.id, x.conversation_id, x.author_id, x.from_moderators, x.raw, x.cooked, x.plain, x.status, x.moderation_reason,
x.sensitive, x.reactions, x.created_at, u.username, u.display_name
"""
_VISIBLE = access.MESSAGE_VISIBLE_SQL.format(user="$2", staff_party="$3")
_MESSAGES_FROM = f"""
FROM forum.messages x
JOIN forum.users u ON u.id = x.author_id
LEFT JOIN forum.conversation_members m ON m.conversation_id = x.conversation_id AND m.user_id = $2
WHERE x.conversation_id = $1 AND {_VISIBLE}
"""
# The newest page before a message ($4, or all), newest first (the caller puts them in order).
MESSAGES_BEFORE_SQL = f"""
SELECT {_MESSAGE_COLUMNS} {_MESSAGES_FROM} AND ($4::bigint IS NULL OR x.id < $4)
ORDER BY x.id DESC LIMIT $5
"""
MESSAGES_AFTER_SQL = f"""
SELECT {_MESSAGE_COLUMNS} {_MESSAGES_FROM} AND x.id > $4
ORDER BY x.id LIMIT $5
"""
MESSAGE_SQL = f"""
SELECT {_MESSAGE_COLUMNS}
FROM forum.messages x JOIN forum.users u ON u.id = x.author_id
WHERE x.id = $1
"""


async def messages(
    conn: asyncpg.Connection,
    who: Session,
    conversation: Conversation,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = MESSAGES_PER_PAGE,
) -> tuple[list[asyncpg.Record], bool]:
    """One page of the messages the viewer may see, oldest first, and whether more follow that way:
    after a message (newer ones), or else the newest before a message (or the newest of all)."""
    args = (conversation.id, who.user_id, conversation.staff_party)
    if after is not None:
        rows = await conn.fetch(MESSAGES_AFTER_SQL, *args, after, limit + 1)
        return list(rows[:limit]), len(rows) > limit
    rows = await conn.fetch(MESSAGES_BEFORE_SQL, *args, before, limit + 1)
    return list(reversed(rows[:limit])), len(rows) > limit


async def readable_message(
    conn: asyncpg.Connection, who: Session | None, message_id: int
) -> tuple[asyncpg.Record, Conversation]:
    """A message the viewer may see in its conversation, with it; 404 otherwise."""
    row = await conn.fetchrow(MESSAGE_SQL, message_id)
    if row is None or who is None:
        raise access.not_found("that message")
    conversation = await readable(conn, who, row["conversation_id"])
    blocked_since = await conn.fetchval(
        "SELECT created_at FROM forum.member_blocks WHERE blocker_id = $1 AND blocked_id = $2",
        who.user_id,
        row["author_id"],
    )
    if not access.message_visible(
        message_id=row["id"],
        seen_after_message_id=conversation.seen_after_message_id,
        left_message_id=conversation.left_message_id,
        blocked_since=blocked_since,
        created_at=row["created_at"],
        staff_party=conversation.staff_party,
    ):
        raise access.not_found("that message")
    return row, conversation


async def readable_writing(conn: asyncpg.Connection, who: Session | None, message_id: int) -> Writing:
    """A message as a writing (reactions and reports), if the viewer may see it; 404 otherwise."""
    row, conversation = await readable_message(conn, who, message_id)
    return Writing(MESSAGE, row["id"], row["author_id"], row["status"], conversation.id, conversation.audience)


# --- writing -------------------------------------------------------------------------------------------

AUTHOR_SQL = posts.AUTHOR_SQL
INSERT_CONVERSATION_SQL = """
INSERT INTO forum.conversations (title, started_by, with_moderators, review_id) VALUES ($1, $2, $3, $4)
RETURNING id
"""
INSERT_MEMBER_SQL = """
INSERT INTO forum.conversation_members (conversation_id, user_id, state, invited_by, joined_at)
VALUES ($1, $2, 'active', $3, now())
"""
INSERT_MESSAGE_SQL = """
INSERT INTO forum.messages (conversation_id, author_id, from_moderators, raw, cooked, plain, sensitive)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, conversation_id, author_id, from_moderators, raw, cooked, plain, status, sensitive, created_at
"""
MESSAGE_COUNTED_SQL = """
UPDATE forum.conversations SET last_message_at = $3, last_message_id = $2, message_count = message_count + 1
WHERE id = $1
"""
# Active members' inbox order and unread marker, but for those who blocked the author ($4: their ids).
MEMBERS_TOLD_SQL = """
UPDATE forum.conversation_members SET last_message_at = $3, last_message_id = $2
WHERE conversation_id = $1 AND state = 'active' AND user_id <> ALL($4::bigint[])
"""
AUTHOR_READ_SQL = """
UPDATE forum.conversation_members SET last_read_message_id = greatest(last_read_message_id, $3)
WHERE conversation_id = $1 AND user_id = $2
"""
ACTIVE_MEMBERS_SQL = """
SELECT user_id FROM forum.conversation_members WHERE conversation_id = $1 AND state = 'active' ORDER BY user_id
"""
CONVERSATIONS_TODAY_LIMIT_SCOPE = "conversations-day"
MESSAGES_MINUTE_LIMIT_SCOPE = "messages-minute"


@dataclass(frozen=True)
class Sent:
    """A message written: its row, and whether it matched a safeguarding phrase (the support panel)."""

    message: asyncpg.Record
    conversation_id: int
    crisis: tuple[str, ...] = ()


def conversation_limit(rules: screening.PostingRules, *, new_member: bool) -> screening.Limit:
    settings = rules.settings
    per_day = settings.new_member_conversations_per_day if new_member else settings.conversations_per_day
    return screening.Limit(
        CONVERSATIONS_TODAY_LIMIT_SCOPE,
        per_day,
        screening.DAY_S,
        f"You have started {per_day} conversations today, which is the most we allow in a day"
        + (" for new members" if new_member else "")
        + ". You can reply in your conversations, or start a new one in {wait}. "
        "You can always write to the moderators.",
    )


def message_limit(rules: screening.PostingRules, *, new_member: bool) -> screening.Limit:
    settings = rules.settings
    per_minute = settings.new_member_posts_per_minute if new_member else settings.posts_per_minute
    return screening.Limit(
        MESSAGES_MINUTE_LIMIT_SCOPE,
        per_minute,
        screening.MINUTE_S,
        "You are sending messages quickly. Please wait {wait} before sending another. What you wrote is still here.",
    )


async def check_writer(conn: asyncpg.Connection, who: Session, *, to_moderators: bool) -> asyncpg.Record:
    """The author's row, if they may write: a confirmed email, and not silenced (unless writing to the
    moderators: a silenced member may always reach them)."""
    author = await conn.fetchrow(AUTHOR_SQL, who.user_id)
    refusal = posts.posting_refusal(
        exists=author is not None,
        verified=author is not None and author["verified"],
        silenced=author is not None and author["silenced"] and not to_moderators,
        silenced_until=author["silenced_until"] if author else None,
        silenced_reason=author["silenced_reason"] if author else None,
    )
    if refusal is not None:
        raise refusal
    assert author is not None
    return author


async def _screened(
    conn: asyncpg.Connection,
    who: Session,
    author: asyncpg.Record,
    text: str,
    rules: screening.PostingRules | None,
    *,
    limits_new: bool,
    title: str = "",
) -> tuple[markdown.Rendered, screening.Screening]:
    """Screen and render a message (validate first: 422 blocked word or too complex, 429 too fast)."""
    found = await screening.screen(conn, f"{title}\n{text}" if title else text)
    screening.check_not_blocked(found, "text")
    if rules is not None and not who.is_staff:
        new_member = screening.is_new_member(rules.settings, author["created_at"])
        limits = [message_limit(rules, new_member=new_member)]
        if limits_new:
            limits.append(conversation_limit(rules, new_member=new_member))
        await screening.enforce_limits(rules, who.user_id, limits)
    rendered = await posts.render_body(conn, text, rules)
    return posts.censored(rendered, found.censored), found


async def start(
    conn: asyncpg.Connection, who: Session, data: dict[str, Any], rules: screening.PostingRules | None
) -> Sent:
    """Start a conversation with members (each must be taking messages from the viewer) or with the
    moderators' inbox, and its first message."""
    title, text = clean_title(data.get("title")), clean_text(data.get("text"))
    to_moderators = bool(data.get("to_moderators"))
    names = _clean_recipients(data.get("recipients"), to_moderators)
    author = await check_writer(conn, who, to_moderators=to_moderators)
    recipients = await _recipients(conn, who, names, rules)
    rendered, found = await _screened(
        conn, who, author, text, rules, limits_new=not to_moderators and not who.is_staff, title=title
    )
    conversation_id = await conn.fetchval(INSERT_CONVERSATION_SQL, title, who.user_id, to_moderators, None)
    member_ids = [who.user_id, *(r["id"] for r in recipients)]
    for user_id in member_ids:
        await conn.execute(INSERT_MEMBER_SQL, conversation_id, user_id, who.user_id)
    event = ConversationCreated(
        conversation_id=conversation_id,
        member_ids=member_ids,
        with_moderators=to_moderators,
        audience=access.conversation_audience(conversation_id, to_moderators),
        started_by=who.user_id,
        title=title,
    )
    await write_event(conn, event, actor_id=who.user_id)
    conversation = await readable(conn, who, conversation_id, lock=True)
    return await _write_message(conn, who, conversation, text, rendered, found, from_moderators=False)


async def start_outreach(
    conn: asyncpg.Connection, who: Session, *, member_id: int, review_id: int, title: str, text: str
) -> Sent:
    """Staff reach out from a safeguarding item: a conversation between the member and the moderators'
    inbox, whatever the member's choice of who may message them (the rule's one exception)."""
    access.require_staff(who)
    title, text = clean_title(title), clean_text(text)
    author = await check_writer(conn, who, to_moderators=True)
    rendered, found = await _screened(conn, who, author, text, None, limits_new=False, title=title)
    conversation_id = await conn.fetchval(INSERT_CONVERSATION_SQL, title, who.user_id, True, review_id)
    await conn.execute(INSERT_MEMBER_SQL, conversation_id, member_id, who.user_id)
    event = ConversationCreated(
        conversation_id=conversation_id,
        member_ids=[member_id],
        with_moderators=True,
        audience=access.conversation_audience(conversation_id, True),
        started_by=who.user_id,
        title=title,
        review_id=review_id,
    )
    await write_event(conn, event, actor_id=who.user_id)
    conversation = await readable(conn, who, conversation_id, lock=True)
    return await _write_message(conn, who, conversation, text, rendered, found, from_moderators=True)


def _clean_recipients(value: Any, to_moderators: bool) -> list[str]:
    names = [] if value is None else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise invalid("recipients", "must be a list of usernames")
    unique = list(dict.fromkeys(n.strip().lstrip("@").lower() for n in names if n.strip()))
    if to_moderators and unique:
        raise invalid("recipients", "leave this empty when writing to the moderators")
    if not to_moderators and not unique:
        raise invalid("recipients", "name at least one member, or write to the moderators")
    return unique


async def _recipients(
    conn: asyncpg.Connection, who: Session, names: list[str], rules: screening.PostingRules | None
) -> list[asyncpg.Record]:
    """The members named, each checked: found, not the viewer, taking messages; the size within the limit."""
    found = [await consent.member_by_name(conn, name, "recipients") for name in names]
    if any(member["id"] == who.user_id for member in found):
        raise invalid("recipients", "You are in the conversation already: name the others.")
    if rules is not None and len(found) + 1 > rules.settings.conversation_max_members:
        most = rules.settings.conversation_max_members
        raise invalid("recipients", f"A conversation can have at most {most} people, you included.")
    for member in found:
        await consent.check_may_message(conn, who, member, "recipients")
    return found


async def reply(
    conn: asyncpg.Connection,
    who: Session,
    conversation_id: int,
    data: dict[str, Any],
    rules: screening.PostingRules | None,
) -> Sent:
    """Write in a conversation the viewer is active in (or, staff, answer one with the moderators)."""
    text = clean_text(data.get("text"))
    conversation = await readable(conn, who, conversation_id, lock=True)
    if not access.may_write_in_conversation(who, conversation.state, conversation.with_moderators):
        raise ApiError(
            403, "not_in_conversation", "You have left this conversation, so you cannot write in it any more."
        )
    author = await check_writer(conn, who, to_moderators=conversation.with_moderators)
    rendered, found = await _screened(conn, who, author, text, rules, limits_new=False)
    as_moderators = access.writes_as_moderators(who, conversation.state, conversation.with_moderators)
    return await _write_message(conn, who, conversation, text, rendered, found, from_moderators=as_moderators)


async def _write_message(
    conn: asyncpg.Connection,
    who: Session,
    conversation: Conversation,
    raw: str,
    rendered: markdown.Rendered,
    found: screening.Screening,
    *,
    from_moderators: bool,
) -> Sent:
    """The message, the counts and read state, its event; a safeguarding item when a phrase matched."""
    crisis = tuple(found.crisis)
    message = await conn.fetchrow(
        INSERT_MESSAGE_SQL,
        conversation.id,
        who.user_id,
        from_moderators,
        raw,
        rendered.cooked,
        rendered.text,
        bool(crisis),
    )
    active = [row["user_id"] for row in await conn.fetch(ACTIVE_MEMBERS_SQL, conversation.id)]
    blockers = await consent.blockers_among(conn, who.user_id, active)
    await conn.execute(MESSAGE_COUNTED_SQL, conversation.id, message["id"], message["created_at"])
    await conn.execute(MEMBERS_TOLD_SQL, conversation.id, message["id"], message["created_at"], list(blockers))
    await conn.execute(AUTHOR_READ_SQL, conversation.id, who.user_id, message["id"])
    event = MessageCreated(
        message_id=message["id"],
        conversation_id=conversation.id,
        author_id=who.user_id,
        author_username=MODERATORS_NAME if from_moderators else who.username,
        title=conversation.title,
        text=message["plain"],
        created_at=message["created_at"].isoformat(),
        recipient_ids=[m for m in active if m != who.user_id and m not in blockers],
        with_moderators=conversation.with_moderators,
        audience=conversation.audience,
        from_moderators=from_moderators,
        sensitive=bool(crisis),
    )
    await write_event(conn, event, actor_id=who.user_id)
    if crisis:
        await reviews.open_review(
            conn,
            kind="safeguarding_message",
            writing=message,
            reasons=[f"Safeguarding phrase \u201c{p}\u201d" for p in crisis],
            priority=reviews.PRIORITY_SAFEGUARDING,
        )
    if found.flagged:
        await reviews.open_review(
            conn,
            kind="flagged_message",
            writing=message,
            reasons=[f"Watched word \u201c{w}\u201d" for w in found.flagged],
        )
    return Sent(message, conversation.id, crisis)


# --- members: invite, accept, decline, leave, read --------------------------------------------------------

COUNT_PEOPLE_SQL = """
SELECT count(*) FROM forum.conversation_members WHERE conversation_id = $1 AND state IN ('active', 'invited')
"""
MEMBER_STATE_SQL = "SELECT state FROM forum.conversation_members WHERE conversation_id = $1 AND user_id = $2"
INVITE_SQL = """
INSERT INTO forum.conversation_members (conversation_id, user_id, state, invited_by, invited_at, last_message_at)
VALUES ($1, $2, 'invited', $3, now(), now())
ON CONFLICT (conversation_id, user_id) DO UPDATE SET
    state = 'invited', invited_by = $3, invited_at = now(), last_message_at = now()
"""
ACCEPT_SQL = """
UPDATE forum.conversation_members
SET state = 'active', joined_at = now(), left_at = NULL, left_message_id = NULL,
    seen_after_message_id = $3, last_read_message_id = $3, last_message_id = $3
WHERE conversation_id = $1 AND user_id = $2
"""
DECLINE_SQL = "UPDATE forum.conversation_members SET state = 'declined' WHERE conversation_id = $1 AND user_id = $2"
LEAVE_SQL = """
UPDATE forum.conversation_members SET state = 'left', left_at = now(), left_message_id = $3
WHERE conversation_id = $1 AND user_id = $2
"""
READ_SQL = """
UPDATE forum.conversation_members SET last_read_message_id = $3
WHERE conversation_id = $1 AND user_id = $2 AND state IN ('active', 'left') AND last_read_message_id < $3
RETURNING last_read_message_id
"""
READ_MARK_SQL = (
    "SELECT last_read_message_id FROM forum.conversation_members WHERE conversation_id = $1 AND user_id = $2"
)


async def invite(
    conn: asyncpg.Connection, who: Session, conversation_id: int, username: Any, rules: screening.PostingRules | None
) -> asyncpg.Record:
    """Invite a member into a conversation (they accept or decline); only active members invite, within the size."""
    conversation = await readable(conn, who, conversation_id, lock=True)
    if not access.may_invite_to_conversation(conversation.state, conversation.with_moderators):
        message = (
            "A conversation with the moderators stays between you and them."
            if conversation.with_moderators
            else "Only people in this conversation can invite others."
        )
        raise ApiError(403, "cannot_invite", message)
    if not isinstance(username, str) or not username.strip():
        raise invalid("username", "is required: the member to invite")
    await check_writer(conn, who, to_moderators=False)
    member = await consent.member_by_name(conn, username)
    state = await conn.fetchval(MEMBER_STATE_SQL, conversation_id, member["id"])
    if state in ("active", "invited"):
        raise ApiError(409, "already_in", f"{member['display_name']} is already in this conversation or invited.")
    if rules is not None and await conn.fetchval(COUNT_PEOPLE_SQL, conversation_id) >= (
        most := rules.settings.conversation_max_members
    ):
        raise ApiError(422, "conversation_full", f"A conversation can have at most {most} people.")
    await consent.check_may_message(conn, who, member, "username")
    await conn.execute(INVITE_SQL, conversation_id, member["id"], who.user_id)
    await _members_changed(conn, who, conversation, invited=[member["id"]])
    return member


async def accept(conn: asyncpg.Connection, who: Session, conversation_id: int) -> Conversation:
    """Join a conversation one was invited to: its messages from now on are theirs to read."""
    conversation = await _invited(conn, who, conversation_id)
    await conn.execute(ACCEPT_SQL, conversation_id, who.user_id, conversation.last_message_id)
    await _members_changed(conn, who, conversation, added=[who.user_id])
    return await readable(conn, who, conversation_id)


async def decline(conn: asyncpg.Connection, who: Session, conversation_id: int) -> None:
    """Say no to an invitation; nobody is told why."""
    conversation = await _invited(conn, who, conversation_id)
    await conn.execute(DECLINE_SQL, conversation_id, who.user_id)
    await _members_changed(conn, who, conversation, removed=[who.user_id])


async def _invited(conn: asyncpg.Connection, who: Session, conversation_id: int) -> Conversation:
    conversation = await find(conn, who, conversation_id, lock=True)
    if conversation.state != "invited":
        raise ApiError(409, "not_invited", "There is no invitation to this conversation waiting for you.")
    return conversation


async def leave(conn: asyncpg.Connection, who: Session, conversation_id: int) -> None:
    """Leave a conversation (or turn down its invitation): what was said while one was in it stays readable."""
    conversation = await find(conn, who, conversation_id, lock=True)
    if conversation.state == "invited":
        await decline(conn, who, conversation_id)
        return
    if conversation.state != "active":
        raise ApiError(409, "not_in_conversation", "You are not in this conversation.")
    await conn.execute(LEAVE_SQL, conversation_id, who.user_id, conversation.last_message_id)
    await _members_changed(conn, who, conversation, removed=[who.user_id])


async def mark_read(conn: asyncpg.Connection, who: Session, conversation_id: int, message_id: Any) -> int:
    """Mark the conversation read up to a message the viewer can see; the read mark never goes back."""
    if isinstance(message_id, bool) or not isinstance(message_id, int) or not 0 < message_id < access.MAX_ID:
        raise invalid("message_id", "must be the id of a message in this conversation")
    conversation = await readable(conn, who, conversation_id)
    row = await conn.fetchrow(MESSAGE_SQL, message_id)
    if row is None or row["conversation_id"] != conversation_id:
        raise invalid("message_id", "must be the id of a message in this conversation")
    if conversation.state not in ("active", "left"):  # staff reading the moderators' inbox keep no read mark
        await _read(conn, who, conversation_id, message_id)
        return message_id
    marked: int | None = await conn.fetchval(READ_SQL, conversation_id, who.user_id, message_id)
    if marked is None:  # read this far already: nothing to tell
        return int(await conn.fetchval(READ_MARK_SQL, conversation_id, who.user_id))
    await _read(conn, who, conversation_id, message_id)
    return marked


async def _read(conn: asyncpg.Connection, who: Session, conversation_id: int, message_id: int) -> None:
    """notify reads the member's notification of the conversation up to this message."""
    event = ConversationRead(
        user_id=who.user_id,
        conversation_id=conversation_id,
        message_id=message_id,
        audience=[audience.user(who.user_id)],
    )
    await write_event(conn, event, actor_id=who.user_id)


async def _members_changed(
    conn: asyncpg.Connection,
    who: Session,
    conversation: Conversation,
    *,
    added: list[int] | None = None,
    removed: list[int] | None = None,
    invited: list[int] | None = None,
) -> None:
    active = [row["user_id"] for row in await conn.fetch(ACTIVE_MEMBERS_SQL, conversation.id)]
    event = ConversationMembersChanged(
        conversation_id=conversation.id,
        member_ids=active,
        with_moderators=conversation.with_moderators,
        audience=conversation.audience,
        added_ids=added or [],
        removed_ids=removed or [],
        invited_ids=invited or [],
    )
    await write_event(conn, event, actor_id=who.user_id)


# --- the inbox -----------------------------------------------------------------------------------------

_INBOX_COLUMNS = """
c.id, c.title, c.with_moderators, c.started_by, c.created_at, c.message_count, c.review_id,
m.state, m.last_message_at, m.last_message_id, m.last_read_message_id, m.invited_by,
lm.author_id AS last_author_id, lm.from_moderators AS last_from_moderators, lm.plain AS last_plain,
lm.status AS last_status, lu.username AS last_username, lu.display_name AS last_display_name
"""
# $1 the member, $2/$3 the cursor (the last row of the page before), $4 the page size + 1.
INBOX_SQL = f"""
SELECT {_INBOX_COLUMNS}
FROM forum.conversation_members m
JOIN forum.conversations c ON c.id = m.conversation_id
LEFT JOIN forum.messages lm ON lm.id = m.last_message_id
LEFT JOIN forum.users lu ON lu.id = lm.author_id
WHERE m.user_id = $1 AND m.state IN ('invited', 'active', 'left')
  AND ($2::timestamptz IS NULL OR (m.last_message_at, m.conversation_id) < ($2, $3))
ORDER BY m.last_message_at DESC, m.conversation_id DESC
LIMIT $4
"""
# The moderators' inbox (staff): conversations with the moderators, newest first; all their messages count.
MODERATORS_INBOX_SQL = """
SELECT c.id, c.title, c.with_moderators, c.started_by, c.created_at, c.message_count, c.review_id,
       NULL::text AS state, c.last_message_at, c.last_message_id, c.last_message_id AS last_read_message_id,
       NULL::bigint AS invited_by,
       lm.author_id AS last_author_id, lm.from_moderators AS last_from_moderators, lm.plain AS last_plain,
       lm.status AS last_status, lu.username AS last_username, lu.display_name AS last_display_name,
       (lm.from_moderators IS FALSE) AS awaiting_moderators
FROM forum.conversations c
LEFT JOIN forum.messages lm ON lm.id = c.last_message_id
LEFT JOIN forum.users lu ON lu.id = lm.author_id
WHERE c.with_moderators AND ($1::timestamptz IS NULL OR (c.last_message_at, c.id) < ($1, $2))
ORDER BY c.last_message_at DESC, c.id DESC
LIMIT $3
"""
PEOPLE_SQL = """
SELECT m.conversation_id, m.state, u.id, u.username, u.display_name
FROM forum.conversation_members m JOIN forum.users u ON u.id = m.user_id
WHERE m.conversation_id = ANY($1::bigint[]) AND m.state IN ('active', 'invited')
ORDER BY m.conversation_id, m.joined_at NULLS LAST, u.id
"""
UNREAD_COUNT_SQL = """
SELECT count(*) FROM forum.conversation_members
WHERE user_id = $1 AND state IN ('invited', 'active') AND (last_message_id > last_read_message_id OR state = 'invited')
"""


def parse_cursor(value: str | None) -> tuple[datetime | None, int]:
    """An inbox cursor ("<ISO time>~<id>", from `next`); 400 when it is not one."""
    if not value:
        return None, 0
    try:
        when, _, ident = value.partition("~")
        parsed, number = datetime.fromisoformat(when), int(ident)
    except ValueError:
        raise ApiError(400, "bad_cursor", "That page link is not valid: please start from the inbox.") from None
    if parsed.tzinfo is None or not 0 < number < access.MAX_ID:
        raise ApiError(400, "bad_cursor", "That page link is not valid: please start from the inbox.")
    return parsed, number


def cursor_of(row: asyncpg.Record) -> str:
    return f"{row['last_message_at'].isoformat()}~{row['id']}"


async def inbox(
    conn: asyncpg.Connection, who: Session, cursor: str | None = None, *, per_page: int = INBOX_PER_PAGE
) -> tuple[list[asyncpg.Record], dict[int, list[asyncpg.Record]], str | None]:
    """One page of the viewer's conversations, most recent first: rows, the people in each, the next cursor."""
    when, ident = parse_cursor(cursor)
    rows = await conn.fetch(INBOX_SQL, who.user_id, when, ident, per_page + 1)
    return await _page(conn, list(rows), per_page)


async def moderators_inbox(
    conn: asyncpg.Connection, who: Session, cursor: str | None = None, *, per_page: int = INBOX_PER_PAGE
) -> tuple[list[asyncpg.Record], dict[int, list[asyncpg.Record]], str | None]:
    """One page of the moderators' shared inbox (staff only)."""
    if not access.is_staff(who):
        raise access.not_found("that page")
    when, ident = parse_cursor(cursor)
    rows = await conn.fetch(MODERATORS_INBOX_SQL, when, ident, per_page + 1)
    return await _page(conn, list(rows), per_page)


async def _page(
    conn: asyncpg.Connection, rows: list[asyncpg.Record], per_page: int
) -> tuple[list[asyncpg.Record], dict[int, list[asyncpg.Record]], str | None]:
    page = rows[:per_page]
    people: dict[int, list[asyncpg.Record]] = {row["id"]: [] for row in page}
    if page:
        for person in await conn.fetch(PEOPLE_SQL, list(people)):
            people[person["conversation_id"]].append(person)
    return page, people, cursor_of(page[-1]) if len(rows) > per_page else None


async def unread_count(conn: asyncpg.Connection, who: Session) -> int:
    """How many of the viewer's conversations have something new (or an invitation) for them."""
    count: int = await conn.fetchval(UNREAD_COUNT_SQL, who.user_id)
    return count


async def people(conn: asyncpg.Connection, conversation_id: int) -> list[asyncpg.Record]:
    """The active and invited people of one conversation."""
    return list(await conn.fetch(PEOPLE_SQL, [conversation_id]))


# --- a message as a writing: moderation ----------------------------------------------------------------

LOCK_MESSAGE_SQL = """
SELECT x.id, x.conversation_id, x.author_id, x.status, x.plain FROM forum.messages x WHERE x.id = $1 FOR UPDATE
"""
SET_STATUS_SQL = "UPDATE forum.messages SET status = $2, moderation_reason = $3 WHERE id = $1"


async def lock(conn: asyncpg.Connection, message_id: int) -> asyncpg.Record:
    """The message, locked for the rest of the transaction (before its review item)."""
    row: asyncpg.Record = await conn.fetchrow(LOCK_MESSAGE_SQL, message_id)
    return row


async def set_status(
    conn: asyncpg.Connection, message: asyncpg.Record, status: str, reason: str | None, *, actor_id: int | None
) -> None:
    """Hide or show a locked message; hiding tells search and notify (MessageHidden)."""
    await conn.execute(SET_STATUS_SQL, message["id"], status, reason if status == "hidden" else None)
    if status == "hidden" and message["status"] != "hidden":
        hidden = MessageHidden(
            message_id=message["id"],
            conversation_id=message["conversation_id"],
            author_id=message["author_id"],
            reason=reason or "",
        )
        await write_event(conn, hidden, actor_id=actor_id)


async def hide_reported(conn: asyncpg.Connection, who: Session, message: asyncpg.Record, reason: str) -> None:
    """Members' reports weigh enough: the message is hidden until a moderator has looked."""
    await set_status(conn, message, "hidden", reason, actor_id=None)


async def reported_context(conn: asyncpg.Connection, who: Session, message_id: int) -> list[asyncpg.Record]:
    """The reported message and the few before it, oldest first (staff, when a review item names it); 404
    otherwise. The one way moderators see a conversation they are not a party to."""
    rows = await conn.fetch(access.REPORTED_CONTEXT_SQL, message_id)
    if not access.reported_context_visible(who, bool(rows)):
        raise access.not_found("that message")
    return list(reversed(rows))


REVIEW_MESSAGES_SQL = """
SELECT x.id, x.conversation_id, x.raw, x.cooked, x.status, x.moderation_reason, x.created_at, c.title
FROM forum.messages x JOIN forum.conversations c ON c.id = x.conversation_id
WHERE x.id = ANY($1::bigint[])
"""


async def review_parts(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> dict[int, dict[str, Any]]:
    """Each message item's own part, by item id, in the shape of a comment's (writings/comments.py): its
    "post" is the message, its "topic" the conversation's title (linking nowhere moderators may not go),
    and "context" the messages before it (access.REPORTED_CONTEXT_SQL)."""
    found = {m["id"]: m for m in await conn.fetch(REVIEW_MESSAGES_SQL, [r["message_id"] for r in rows])}
    parts = {}
    for row in rows:
        message = found[row["message_id"]]
        context = list(reversed(await conn.fetch(access.REPORTED_CONTEXT_SQL, message["id"])))[:-1]
        parts[row["id"]] = _review_part(message, context)
    return parts


def _review_part(message: asyncpg.Record, context: list[asyncpg.Record]) -> dict[str, Any]:
    writing = {
        "id": message["id"],
        "post_number": None,
        "status": message["status"],
        "raw": message["raw"],
        "cooked": message["cooked"],
        "content_note": None,
        "moderation_reason": message["moderation_reason"],
        "anonymous": False,
        "created_at": message["created_at"].isoformat(),
        "url": None,  # moderators see a reported message on its item, not in its conversation
    }
    return {
        "writing": writing,
        "topic": {"id": None, "title": f"Private conversation: {message['title']}", "url": None},
        "message": writing,
        "context": [
            {
                "post_number": None,
                "author": author_json(c),
                "excerpt": markdown.excerpt(c["plain"], 300) if c["plain"] else "",
            }
            for c in context
        ],
        "status": message["status"],
    }


# --- the export (search rebuilds) ------------------------------------------------------------------------

# Every message by id, with its conversation and audience; a hidden one without its text ($1 after, $2 limit).
EXPORT_MESSAGES_SQL = """
SELECT x.id, x.conversation_id, x.author_id, x.from_moderators, x.status, x.sensitive, x.created_at,
       CASE WHEN x.status = 'hidden' THEN '' ELSE x.plain END AS text,
       c.title, c.with_moderators, u.username, u.display_name
FROM forum.messages x
JOIN forum.conversations c ON c.id = x.conversation_id
JOIN forum.users u ON u.id = x.author_id
WHERE x.id > $1
ORDER BY x.id LIMIT $2
"""


def export_message_out(row: asyncpg.Record) -> dict[str, Any]:
    """One message as the export gives it: who wrote it as members read it, its audience."""
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "title": row["title"],
        "author": author_json(row),
        "author_id": row["author_id"],
        "from_moderators": row["from_moderators"],
        "text": row["text"],
        "status": row["status"],
        "sensitive": row["sensitive"],
        "with_moderators": row["with_moderators"],
        "audience": access.conversation_audience(row["conversation_id"], row["with_moderators"]),
        "created_at": row["created_at"].isoformat(),
        "url": f"/messages/{row['conversation_id']}#message-{row['id']}",
    }


# --- shapes --------------------------------------------------------------------------------------------


def author_json(row: asyncpg.Record, who: Session | None = None) -> dict[str, Any]:
    """Who wrote a message as the viewer reads it: "the moderators" for an answer from their inbox (staff
    also see which moderator)."""
    if row["from_moderators"]:
        shown: dict[str, Any] = {"id": None, "username": None, "display_name": MODERATORS_NAME}
        if access.is_staff(who):
            shown["sent_by"] = row["username"]
        return shown
    return {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}


def message_json(
    row: asyncpg.Record, who: Session, conversation: Conversation, mine: dict[int, set[str]]
) -> dict[str, Any]:
    """One message as the viewer sees it (a hidden one's text only to its author and staff in it)."""
    withheld = access.message_text_withheld(who, row["status"], row["author_id"], conversation.staff_party)
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "author": author_json(row, who),
        "from_moderators": row["from_moderators"],
        "raw": None if withheld else row["raw"],
        "cooked": None if withheld else row["cooked"],
        "status": row["status"],
        "moderation_reason": None if withheld or row["status"] != "hidden" else row["moderation_reason"],
        "reactions": reactions.json_dict(row["reactions"]),
        "my_reactions": sorted(mine.get(row["id"], set())),
        "mine": row["author_id"] == who.user_id,
        "created_at": row["created_at"].isoformat(),
        "url": f"/messages/{row['conversation_id']}#message-{row['id']}",
    }


def person_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "username": row["username"], "display_name": row["display_name"]}


def last_message_json(row: asyncpg.Record, who: Session) -> dict[str, Any] | None:
    if row["last_author_id"] is None:
        return None
    staff_party = bool(row["with_moderators"] and who.is_staff)
    withheld = access.message_text_withheld(who, row["last_status"], row["last_author_id"], staff_party)
    author = author_json(
        {
            "from_moderators": row["last_from_moderators"],
            "author_id": row["last_author_id"],
            "username": row["last_username"],
            "display_name": row["last_display_name"],
        },
        who,
    )
    excerpt = "" if withheld else markdown.excerpt(row["last_plain"] or "", EXCERPT_CHARS)
    return {"author": author, "excerpt": excerpt}


def summary_json(row: asyncpg.Record, people_rows: list[asyncpg.Record], who: Session) -> dict[str, Any]:
    """A conversation in an inbox."""
    return {
        "id": row["id"],
        "title": row["title"],
        "with_moderators": row["with_moderators"],
        "my_state": row["state"],
        "unread": row["state"] == "invited" or row["last_message_id"] > row["last_read_message_id"],
        "members": [person_json(p) for p in people_rows if p["state"] == "active"],
        "invited": [person_json(p) for p in people_rows if p["state"] == "invited"],
        "message_count": row["message_count"],
        "last_message_at": row["last_message_at"].isoformat(),
        "last_message": None if row["state"] == "invited" else last_message_json(row, who),
        "created_at": row["created_at"].isoformat(),
        "url": f"/messages/{row['id']}",
    }


def conversation_json(conversation: Conversation, people_rows: list[asyncpg.Record], who: Session) -> dict[str, Any]:
    """A conversation as one of its people (or staff reading the moderators' inbox) sees it."""
    return {
        "id": conversation.id,
        "title": conversation.title,
        "with_moderators": conversation.with_moderators,
        "my_state": conversation.state,
        "members": [person_json(p) for p in people_rows if p["state"] == "active"],
        "invited": [person_json(p) for p in people_rows if p["state"] == "invited"],
        "message_count": conversation.message_count,
        "last_read_message_id": conversation.last_read_message_id,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat(),
        "review_id": conversation.review_id if who.is_staff else None,
        "may_write": access.may_write_in_conversation(who, conversation.state, conversation.with_moderators),
        "may_invite": access.may_invite_to_conversation(conversation.state, conversation.with_moderators),
        "url": f"/messages/{conversation.id}",
    }
