"""notify's projections of the forum's events: members, categories, topics, posts,
reactions and mutes, library folders and documents, webinars and who registered for
them, built from the stream (notify never reads forum tables).

Every apply function is idempotent and tolerates order: two notify replicas may
handle neighbouring events out of order, so a row remembers the id of the last
event applied (UUIDv7 ids sort by time) and an older event never overwrites it.
Also here: the one visibility rule as notify applies it to members it knows (their
audiences, from shared/audience.py, in Python and in SQL).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared import audience
from shared import events as ev

EXCERPT_CHARS = 280
AWAY_AFTER_S = 10 * 60

# --- visibility --------------------------------------------------------------------


STAFF_ROLES = ("moderator", "admin")


def is_staff(roles: Sequence[str]) -> bool:
    """Whether projected roles make a member staff (as Session.is_staff)."""
    return any(role in roles for role in STAFF_ROLES)


def sees_sql(u: str, item: str) -> str:
    """SQL: may the member row `u` (notify.users) read a thing whose audience is `item`? The rule
    of audience.may_read, over the audiences audience.for_member gives the member."""
    staff = " OR ".join(f"'{role}' = ANY({u}.roles)" for role in STAFF_ROLES)
    viewer = audience.member_sql(f"{u}.id", f"{u}.group_ids", f"({staff})")
    return audience.MAY_READ_SQL.format(viewer=viewer, item=item)


# A topic's audience: its category's when notify knows the category (so a category made
# private hides its old topics at once), else what the topic's own events said.
TOPIC_AUDIENCE_SQL = "coalesce((SELECT c.audience FROM notify.categories c WHERE c.id = {t}.category_id), {t}.audience)"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a post's plain text, on one line, cut at a word."""
    flat = re.sub(r"[\s\x00]+", " ", text or "").strip()
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut.rstrip(" ,.;:") + "…"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _occurred(envelope: ev.Envelope) -> datetime:
    return _time(envelope.occurred_at) or datetime.now(UTC)


# --- members -------------------------------------------------------------------------

UPSERT_USER_SQL = """
INSERT INTO notify.users AS u (id, username, display_name, email, email_verified, roles, group_ids,
                               suspended_until, registered_at, event_id)
VALUES ($1, $2, $3, $4, $5, coalesce($6, '{member}'::text[]), coalesce($7, '{}'::bigint[]), $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET
    username = EXCLUDED.username,
    display_name = EXCLUDED.display_name,
    email = coalesce($4, u.email),
    email_verified = EXCLUDED.email_verified,
    roles = coalesce($6, u.roles),
    group_ids = coalesce($7, u.group_ids),
    suspended_until = CASE WHEN $11 THEN EXCLUDED.suspended_until ELSE u.suspended_until END,
    registered_at = least(u.registered_at, EXCLUDED.registered_at),
    event_id = EXCLUDED.event_id
WHERE u.event_id IS NULL OR u.event_id < EXCLUDED.event_id
"""


async def apply_user(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserRegistered | ev.UserUpdated
) -> None:
    """A member registered or changed; only an update says their roles, groups and suspension."""
    if isinstance(event, ev.UserUpdated):
        roles, group_ids, suspended_until = event.roles, event.group_ids, _time(event.suspended_until)
    else:
        roles, group_ids, suspended_until = None, None, None
    await conn.execute(
        UPSERT_USER_SQL,
        event.user_id,
        event.username,
        event.display_name,
        event.email,
        event.email_verified,
        roles,
        group_ids,
        suspended_until,
        _occurred(envelope),
        envelope.id,
        isinstance(event, ev.UserUpdated),
    )


async def apply_user_seen(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserSeen) -> None:
    await mark_seen(conn, [event.user_id], _time(event.seen_at) or _occurred(envelope))


async def mark_seen(conn: asyncpg.Connection, user_ids: Sequence[int], seen_at: datetime | None = None) -> None:
    """Members were active (a forum visit, or a live connection to notify): they are not away."""
    await conn.execute(
        "UPDATE notify.users SET last_seen_at = greatest(last_seen_at, coalesce($2, now())) WHERE id = ANY($1)",
        list(user_ids),
        seen_at,
    )


async def _apply_sanction(
    conn: asyncpg.Connection, envelope: ev.Envelope, column: str, user_id: int, until: str | None
) -> None:
    # No end means until a moderator lifts it.
    await conn.execute(
        f"UPDATE notify.users SET {column} = coalesce($2, 'infinity'::timestamptz), "
        "event_id = greatest(event_id, $3::uuid) WHERE id = $1 AND (event_id IS NULL OR event_id < $3::uuid)",
        user_id,
        _time(until),
        envelope.id,
    )


async def apply_user_suspended(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserSuspended) -> None:
    await _apply_sanction(conn, envelope, "suspended_until", event.user_id, event.until)


async def apply_user_silenced(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserSilenced) -> None:
    await _apply_sanction(conn, envelope, "silenced_until", event.user_id, event.until)


async def apply_user_muted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserMuted) -> None:
    level = event.level if event.level in ("muted", "ignored") else "none"
    await conn.execute(
        "INSERT INTO notify.mutes AS m (user_id, muted_user_id, level, event_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (user_id, muted_user_id) DO UPDATE SET level = EXCLUDED.level, event_id = EXCLUDED.event_id "
        "WHERE m.event_id < EXCLUDED.event_id",
        event.user_id,
        event.muted_user_id,
        level,
        envelope.id,
    )


async def apply_group_member(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.GroupMemberAdded | ev.GroupMemberRemoved
) -> None:
    """Group membership decides what a member may see (private categories)."""
    if isinstance(event, ev.GroupMemberAdded):
        sql = "UPDATE notify.users SET group_ids = array_append(array_remove(group_ids, $2), $2) WHERE id = $1"
    else:
        sql = "UPDATE notify.users SET group_ids = array_remove(group_ids, $2) WHERE id = $1"
    await conn.execute(sql, event.user_id, event.group_id)


# --- categories and topics ----------------------------------------------------------------


async def apply_category(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.CategoryCreated | ev.CategoryUpdated
) -> None:
    await conn.execute(
        "INSERT INTO notify.categories AS c (id, slug, name, audience, event_id) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name, audience = EXCLUDED.audience, "
        "event_id = EXCLUDED.event_id WHERE c.event_id IS NULL OR c.event_id < EXCLUDED.event_id",
        event.category_id,
        event.slug,
        event.name,
        list(event.audience),
        envelope.id,
    )


UPSERT_TOPIC_SQL = """
INSERT INTO notify.topics AS t (id, category_id, title, slug, kind, author_id, audience, content_note, created_at,
                                event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET
    category_id = EXCLUDED.category_id, title = EXCLUDED.title, slug = EXCLUDED.slug, kind = EXCLUDED.kind,
    author_id = EXCLUDED.author_id, audience = EXCLUDED.audience, content_note = EXCLUDED.content_note,
    created_at = least(t.created_at, EXCLUDED.created_at), event_id = EXCLUDED.event_id
WHERE t.event_id IS NULL OR t.event_id < EXCLUDED.event_id
"""


async def _upsert_topic(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.TopicCreated | ev.TopicUpdated, created_at: datetime
) -> None:
    await conn.execute(
        UPSERT_TOPIC_SQL,
        event.topic_id,
        event.category_id,
        event.title,
        event.slug,
        event.kind,
        event.author_id,
        list(event.audience),
        event.content_note,
        created_at,
        envelope.id,
    )


async def apply_topic_created(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.TopicCreated) -> None:
    await _upsert_topic(conn, envelope, event, _time(event.created_at) or _occurred(envelope))
    # The creator watches their topic (Discourse's default), unless they chose otherwise.
    await set_watch(conn, event.author_id, "topic", event.topic_id, "watching", reason="created", overwrite="posted")


async def apply_topic_updated(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.TopicUpdated) -> None:
    # An update's time only stands in until the creation is seen (created_at keeps the least).
    await _upsert_topic(conn, envelope, event, _occurred(envelope))


# --- posts and reactions --------------------------------------------------------------------


async def apply_post_created(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostCreated) -> None:
    created = _time(event.created_at) or _occurred(envelope)
    # A post whose topic.created was not handled yet (another replica has it): a stand-in topic
    # row, which topic.created then fills in (its event id is newer than none).
    await conn.execute(
        "INSERT INTO notify.topics (id, category_id, title, slug, author_id, audience, created_at) "
        "VALUES ($1, $2, $3, 'topic', CASE WHEN $6 = 1 THEN $7::bigint END, $4, $5) ON CONFLICT (id) DO NOTHING",
        event.topic_id,
        event.category_id,
        event.topic_title,
        list(event.audience),
        created,
        event.post_number,
        event.author_id,
    )
    await conn.execute(
        "INSERT INTO notify.posts AS p (id, topic_id, post_number, author_id, author_username, excerpt, content_note, "
        "reply_to_user_id, created_at, content_event_id, sensitive) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11) ON CONFLICT (id) DO NOTHING",
        event.post_id,
        event.topic_id,
        event.post_number,
        event.author_id,
        event.author_username,
        excerpt(event.text),
        event.content_note,
        event.reply_to_user_id,
        created,
        envelope.id,
        event.sensitive,
    )
    if event.post_number == 1:
        await set_watch(
            conn, event.author_id, "topic", event.topic_id, "watching", reason="created", overwrite="posted"
        )
    else:
        # Posting in a topic tracks it, unless the member set a level for it themselves.
        await set_watch(conn, event.author_id, "topic", event.topic_id, "tracking", reason="posted", overwrite="")


async def apply_post_edited(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostEdited) -> None:
    # Once sensitive, always: an edit that took the words out does not make mail quote the post.
    await conn.execute(
        "UPDATE notify.posts SET excerpt = $2, content_note = $3, content_event_id = $4, sensitive = sensitive OR $5 "
        "WHERE id = $1 AND (content_event_id IS NULL OR content_event_id < $4)",
        event.post_id,
        excerpt(event.text),
        event.content_note,
        envelope.id,
        event.sensitive,
    )


async def apply_post_flagged(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostFlagged) -> None:
    """A post flagged for safeguarding (by a member, or by a phrase it matched) is never quoted in mail."""
    if event.review_kind == "safeguarding":
        await conn.execute("UPDATE notify.posts SET sensitive = true WHERE id = $1 AND NOT sensitive", event.post_id)


async def _set_status(conn: asyncpg.Connection, envelope: ev.Envelope, post_id: int, status: str) -> None:
    # Deleted is final: a late "restored" never brings a deleted post back.
    await conn.execute(
        "UPDATE notify.posts SET status = $2, status_event_id = $3 WHERE id = $1 AND status <> 'deleted' "
        "AND (status_event_id IS NULL OR status_event_id < $3 OR $2 = 'deleted')",
        post_id,
        status,
        envelope.id,
    )


async def apply_post_deleted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostDeleted) -> None:
    await _set_status(conn, envelope, event.post_id, "deleted")


async def apply_post_hidden(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostHidden) -> None:
    await _set_status(conn, envelope, event.post_id, "hidden")


async def apply_post_restored(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostRestored) -> None:
    await _set_status(conn, envelope, event.post_id, "visible")


async def apply_reaction(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ReactionAdded | ev.ReactionRemoved
) -> bool:
    """Record a reaction added or removed; True when this changed the projection (not a repeat)."""
    active = isinstance(event, ev.ReactionAdded)
    changed = await conn.fetchval(
        "INSERT INTO notify.reactions AS r (post_id, user_id, kind, active, changed_at, event_id) "
        "VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (post_id, user_id, kind) DO UPDATE SET active = EXCLUDED.active, "
        "changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id "
        "WHERE r.event_id < EXCLUDED.event_id AND r.active <> EXCLUDED.active "
        "RETURNING true",
        event.post_id,
        event.user_id,
        event.kind,
        active,
        _occurred(envelope),
        envelope.id,
    )
    return bool(changed)


# --- the document library and webinars ------------------------------------------------------


UPSERT_FOLDER_SQL = """
INSERT INTO notify.folders AS f (id, name, audience, event_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, audience = EXCLUDED.audience, event_id = EXCLUDED.event_id
WHERE f.event_id IS NULL OR f.event_id < EXCLUDED.event_id
"""


async def apply_folder(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.FolderUpdated) -> None:
    await conn.execute(UPSERT_FOLDER_SQL, event.folder_id, event.name, list(event.audience), envelope.id)


# A deleted document stays deleted: a late upload or update never brings it back. The first
# upload's time is kept (a new version is not a new document).
UPSERT_DOCUMENT_SQL = """
INSERT INTO notify.documents AS d (id, folder_id, title, audience, uploaded_at, event_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    folder_id = EXCLUDED.folder_id, title = EXCLUDED.title, audience = EXCLUDED.audience,
    uploaded_at = least(d.uploaded_at, EXCLUDED.uploaded_at), event_id = EXCLUDED.event_id
WHERE NOT d.deleted AND (d.event_id IS NULL OR d.event_id < EXCLUDED.event_id)
"""


async def apply_document(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.DocumentUploaded | ev.DocumentUpdated
) -> None:
    uploaded = _time(event.created_at) if isinstance(event, ev.DocumentUploaded) else None
    await conn.execute(
        UPSERT_DOCUMENT_SQL,
        event.document_id,
        event.folder_id,
        event.title,
        list(event.audience),
        uploaded or _occurred(envelope),
        envelope.id,
    )


async def apply_document_deleted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.DocumentDeleted) -> None:
    # Deleted before notify saw it uploaded: a deleted stand-in, so the upload is never shown.
    await conn.execute(
        "INSERT INTO notify.documents AS d (id, folder_id, title, audience, uploaded_at, deleted, event_id) "
        "VALUES ($1, $2, '', '{}', $3, true, $4) "
        "ON CONFLICT (id) DO UPDATE SET deleted = true, event_id = greatest(d.event_id, EXCLUDED.event_id)",
        event.document_id,
        event.folder_id,
        _occurred(envelope),
        envelope.id,
    )


# A document's audience: its folder's when notify knows the folder, else what its own events said.
DOCUMENT_AUDIENCE_SQL = "coalesce((SELECT f.audience FROM notify.folders f WHERE f.id = {d}.folder_id), {d}.audience)"

# `moved_event_id` names the event that changed the webinar's times (not a first scheduling), so
# the writer can tell registered members once: a repeated event finds the same id, and its key.
UPSERT_WEBINAR_SQL = """
INSERT INTO notify.webinars AS w (id, title, starts_at, ends_at, status, audience, announced_at, event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE SET
    title = EXCLUDED.title, starts_at = EXCLUDED.starts_at, ends_at = coalesce(EXCLUDED.ends_at, w.ends_at),
    status = EXCLUDED.status, audience = EXCLUDED.audience,
    announced_at = CASE WHEN $9 AND (w.starts_at IS DISTINCT FROM EXCLUDED.starts_at
                                     OR w.ends_at IS DISTINCT FROM EXCLUDED.ends_at)
                        THEN EXCLUDED.announced_at ELSE w.announced_at END,
    moved_event_id = CASE WHEN $9 AND (w.starts_at IS DISTINCT FROM EXCLUDED.starts_at
                                       OR w.ends_at IS DISTINCT FROM EXCLUDED.ends_at)
                          THEN EXCLUDED.event_id ELSE w.moved_event_id END,
    event_id = EXCLUDED.event_id
WHERE w.event_id IS NULL OR w.event_id < EXCLUDED.event_id
"""


async def apply_webinar(
    conn: asyncpg.Connection,
    envelope: ev.Envelope,
    event: ev.WebinarScheduled | ev.WebinarUpdated | ev.WebinarCancelled,
) -> None:
    if isinstance(event, ev.WebinarCancelled):
        status, ends_at, moves = "cancelled", None, False
    elif isinstance(event, ev.WebinarUpdated):
        status, ends_at, moves = event.status, _time(event.ends_at), True
    else:
        status, ends_at, moves = "scheduled", _time(event.ends_at), False
    await conn.execute(
        UPSERT_WEBINAR_SQL,
        event.webinar_id,
        event.title,
        _time(event.starts_at) or _occurred(envelope),
        ends_at,
        status,
        list(event.audience),
        _occurred(envelope),
        envelope.id,
        moves,
    )


async def apply_webinar_registered(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.WebinarRegistered
) -> None:
    """A seat, a waiting place, or a place given up (staff-only event: it feeds webinar notifications,
    never live channels); a later event always wins."""
    if event.status not in ("registered", "waiting", "cancelled"):
        return
    await conn.execute(
        "INSERT INTO notify.webinar_registrations AS r (webinar_id, user_id, status, event_id) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (webinar_id, user_id) DO UPDATE SET status = EXCLUDED.status, "
        "event_id = EXCLUDED.event_id WHERE r.event_id IS NULL OR r.event_id < EXCLUDED.event_id",
        event.webinar_id,
        event.user_id,
        event.status,
        envelope.id,
    )


# --- watch levels ------------------------------------------------------------------------


async def set_watch(
    conn: asyncpg.Connection,
    user_id: int,
    target_kind: str,
    target_id: int,
    level: str,
    *,
    reason: str = "chosen",
    overwrite: str = "*",
) -> None:
    """Set a watch level. `overwrite`: "*" replaces any level, a reason ("posted") replaces only a
    level set for that reason, "" never replaces (fills in a missing level only)."""
    await conn.execute(
        "INSERT INTO notify.watches AS w (user_id, target_kind, target_id, level, reason) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (user_id, target_kind, target_id) DO UPDATE SET level = EXCLUDED.level, reason = EXCLUDED.reason, "
        "updated_at = now() WHERE $6::text = '*' OR w.reason = $6::text",
        user_id,
        target_kind,
        target_id,
        level,
        reason,
        overwrite,
    )


# --- private conversations: who is in each (for /live's conversation:<id> channels) ---------------

UPSERT_CONVERSATION_SQL = """
INSERT INTO notify.conversations AS c (id, member_ids, with_moderators, audience, event_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET
    member_ids = EXCLUDED.member_ids, with_moderators = EXCLUDED.with_moderators, audience = EXCLUDED.audience,
    event_id = EXCLUDED.event_id
WHERE c.event_id IS NULL OR c.event_id < EXCLUDED.event_id
"""


async def apply_conversation(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ConversationCreated | ev.ConversationMembersChanged
) -> None:
    """Who is in a conversation now: each event carries the whole list, so the newest one wins."""
    await conn.execute(
        UPSERT_CONVERSATION_SQL,
        event.conversation_id,
        sorted(set(event.member_ids)),
        event.with_moderators,
        list(event.audience),
        envelope.id,
    )


@dataclass(frozen=True)
class Conversation:
    """Who may follow a conversation: its members now, and staff when the moderators' inbox is in it.
    `event_id` is the event that said so (UUIDv7: a newer one orders after)."""

    id: int
    member_ids: frozenset[int]
    with_moderators: bool
    event_id: str

    def admits(self, user_id: int, *, staff: bool) -> bool:
        return user_id in self.member_ids or (staff and self.with_moderators)


async def fetch_conversation(conn: asyncpg.Connection, conversation_id: int) -> Conversation | None:
    row = await conn.fetchrow(
        "SELECT id, member_ids, with_moderators, event_id FROM notify.conversations WHERE id = $1", conversation_id
    )
    if row is None:
        return None
    return Conversation(row["id"], frozenset(row["member_ids"]), row["with_moderators"], str(row["event_id"] or ""))


# --- dispatch ---------------------------------------------------------------------------

# Typed like search's indexer: each function takes the event type it is listed under.
Apply = Callable[[asyncpg.Connection, ev.Envelope, Any], Awaitable[object]]

APPLY: dict[type[ev.Event], Apply] = {
    ev.UserRegistered: apply_user,
    ev.UserUpdated: apply_user,
    ev.UserSeen: apply_user_seen,
    ev.UserSuspended: apply_user_suspended,
    ev.UserSilenced: apply_user_silenced,
    ev.UserMuted: apply_user_muted,
    ev.GroupMemberAdded: apply_group_member,
    ev.GroupMemberRemoved: apply_group_member,
    ev.CategoryCreated: apply_category,
    ev.CategoryUpdated: apply_category,
    ev.TopicCreated: apply_topic_created,
    ev.TopicUpdated: apply_topic_updated,
    ev.PostCreated: apply_post_created,
    ev.PostEdited: apply_post_edited,
    ev.PostDeleted: apply_post_deleted,
    ev.PostHidden: apply_post_hidden,
    ev.PostFlagged: apply_post_flagged,
    ev.PostRestored: apply_post_restored,
    ev.FolderUpdated: apply_folder,
    ev.DocumentUploaded: apply_document,
    ev.DocumentUpdated: apply_document,
    ev.DocumentDeleted: apply_document_deleted,
    ev.WebinarScheduled: apply_webinar,
    ev.WebinarUpdated: apply_webinar,
    ev.WebinarCancelled: apply_webinar,
    ev.WebinarRegistered: apply_webinar_registered,
    ev.ConversationCreated: apply_conversation,
    ev.ConversationMembersChanged: apply_conversation,
}


async def apply(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.Event) -> None:
    """Bring the projections up to date with one event (reactions are applied by the writer)."""
    func = APPLY.get(type(event))
    if func is not None:
        await func(conn, envelope, event)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """What notify knows of a member."""

    id: int
    username: str
    display_name: str
    email: str | None
    email_verified: bool
    roles: list[str]
    group_ids: list[int]
    suspended_until: datetime | None
    last_seen_at: datetime | None

    @property
    def user_id(self) -> int:
        return self.id

    @property
    def is_staff(self) -> bool:
        return is_staff(self.roles)

    @property
    def audiences(self) -> list[str]:
        """Every audience the member belongs to (shared/audience.py)."""
        return audience.for_viewer(self)

    def is_suspended(self, now: datetime) -> bool:
        return self.suspended_until is not None and self.suspended_until > now

    def is_away(self, now: datetime) -> bool:
        """Not seen for ten minutes (by the forum's user.seen or a live connection)."""
        return self.last_seen_at is None or (now - self.last_seen_at).total_seconds() >= AWAY_AFTER_S


MEMBER_COLUMNS = "id, username, display_name, email, email_verified, roles, group_ids, suspended_until, last_seen_at"


def member_from(row: Mapping[str, Any]) -> Member:
    return Member(
        row["id"],
        row["username"],
        row["display_name"],
        row["email"],
        row["email_verified"],
        list(row["roles"]),
        list(row["group_ids"]),
        row["suspended_until"],
        row["last_seen_at"],
    )


async def fetch_member(conn: asyncpg.Connection, user_id: int) -> Member | None:
    row = await conn.fetchrow(f"SELECT {MEMBER_COLUMNS} FROM notify.users WHERE id = $1", user_id)
    return member_from(row) if row else None


async def find_member(conn: asyncpg.Connection, login: str) -> Member | None:
    """A member by id ("42") or username."""
    if login.isdigit():
        return await fetch_member(conn, int(login))
    row = await conn.fetchrow(f"SELECT {MEMBER_COLUMNS} FROM notify.users WHERE lower(username) = lower($1)", login)
    return member_from(row) if row else None


async def topic_audience(conn: asyncpg.Connection, topic_id: int) -> list[str] | None:
    """Who may see a topic, or None when notify does not know it."""
    value = await conn.fetchval(
        f"SELECT {TOPIC_AUDIENCE_SQL.format(t='t')} FROM notify.topics t WHERE t.id = $1", topic_id
    )
    return list(value) if value is not None else None


async def category_audience(conn: asyncpg.Connection, category_id: int) -> list[str] | None:
    value = await conn.fetchval("SELECT audience FROM notify.categories WHERE id = $1", category_id)
    return list(value) if value is not None else None


NEWEST_SQL = {
    "topic": "SELECT max(id) FROM notify.topics",
    "category": "SELECT max(id) FROM notify.categories",
    "conversation": "SELECT max(id) FROM notify.conversations",
}


async def newest_id(conn: asyncpg.Connection, kind: str) -> int | None:
    """The newest topic, category or conversation id notify knows (None before the first): an unknown id above it
    may be one being created, not yet projected."""
    value = await conn.fetchval(NEWEST_SQL[kind])
    return int(value) if value is not None else None
