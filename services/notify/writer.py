"""The notification writer (consumer group "notify-writer"): turns events into
notifications, in the same transaction as notify's projections, then publishes unread
counts and queues the mail.

One row per (member, what it is about): the unique `dedupe_key` makes an event
handled twice write nothing twice, and reactions to a post share one row that is
updated and marked unread again. A post that mentions, replies to and quotes a
member makes one notification (mention first, then reply, quote, watching).
Posting in a topic follows it at the level the member prefers (preferences.py: watching for
topics they start, tracking for topics they reply to, unless they chose otherwise); a level
they chose on the topic itself is never changed by posting. Members tracking a topic are not
told of each reply: tracking.py counts new replies into one notification per topic.
When a webinar moves (webinar.updated changes its times) or is cancelled, the members
registered or waiting for it (from webinar.registered) hear of it in the app, once. A member whose
role an admin changed (user.role_changed) is told, with the admin's reason.

Private messages (issue 15): one notification per member and conversation ("3 new messages from
sam in" its title), updated and marked unread again as messages come, leading to the first one they have
not read; a member writing in it has read it. A member invited to a conversation is told; one who
leaves it is told nothing more about it (their notifications of it go). A message to the
moderators' inbox tells the moderators; one sent from it names "the moderators", never which one.
Safeguarding alerts (safeguarding.alerted) tell the staff the forum names, once per item and
round (a later round marks it unread again), and mail the safeguarding leads whatever their
choices; they never carry the words that matched. Once the item is resolved, its alerts are read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.notify import projections, tracking
from services.notify.notifications import publish_counts, unread_counts
from shared import audience
from shared import events as ev
from shared.jobs import job_id
from shared.web import Runtime

log = logging.getLogger("tica.notify")

GROUP = "notify-writer"
# Kinds about a post that go when the post is deleted (moderation outcomes stay).
POST_KINDS = ("mentioned", "replied", "quoted", "posted", "reacted")


# --- what the writer decides -----------------------------------------------------------------


@dataclass
class Outcome:
    """What a handled event changed, for the work done after commit."""

    counts_changed: set[int] = field(default_factory=set)
    mail_ids: list[int] = field(default_factory=list)
    # (notification id, version): mail about a notification that changes (a new message, a new round)
    mail_versions: list[tuple[int, str]] = field(default_factory=list)


# Members whose level in a topic ($1, in category $2) is $3 (watching or tracking), by the topic's
# own level or its category's.
FOLLOWERS_SQL = """
SELECT c.user_id
FROM (SELECT user_id FROM notify.watches WHERE target_kind = 'topic' AND target_id = $1 AND level = $3
      UNION
      SELECT user_id FROM notify.watches WHERE target_kind = 'category' AND target_id = $2 AND level = $3) c
LEFT JOIN notify.watches tw ON tw.user_id = c.user_id AND tw.target_kind = 'topic' AND tw.target_id = $1
LEFT JOIN notify.watches cw ON cw.user_id = c.user_id AND cw.target_kind = 'category' AND cw.target_id = $2
WHERE notify.effective_level(tw.level, tw.reason, cw.level) = $3
"""

# What notify does not know of a member yet: a visitor's audiences.
_VISITOR = "ARRAY[" + ", ".join(f"'{a}'" for a in audience.for_viewer(None)) + "]"

# Of these members, who may be told about something in this topic by this actor: they can see
# it (unknown members only when it is public), have not muted the topic or category, and have
# not muted or ignored the actor.
ELIGIBLE_SQL = f"""
SELECT c.id
FROM unnest($1::bigint[]) AS c(id)
LEFT JOIN notify.users u ON u.id = c.id
LEFT JOIN notify.watches tw ON tw.user_id = c.id AND tw.target_kind = 'topic' AND tw.target_id = $2
LEFT JOIN notify.watches cw ON cw.user_id = c.id AND cw.target_kind = 'category' AND cw.target_id = $3
WHERE CASE WHEN u.id IS NULL THEN {audience.MAY_READ_SQL.format(viewer=_VISITOR, item="$4::text[]")}
           ELSE {projections.sees_sql("u", "$4::text[]")} END
  AND notify.effective_level(tw.level, tw.reason, cw.level) <> 'muted'
  AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = c.id AND m.muted_user_id = $5 AND m.level <> 'none')
"""

INSERT_NOTIFICATIONS_SQL = """
INSERT INTO notify.notifications (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data)
SELECT r.user_id, r.kind, $3, $4, $5, $6, $7, $8 FROM unnest($1::bigint[], $2::text[]) AS r(user_id, kind)
ON CONFLICT (user_id, dedupe_key) DO NOTHING
RETURNING user_id
"""

# Notifications of one key that may become mail: unread, a mail-able kind, a member with a
# verified address who did not choose "never". The job decides "away" when it runs.
MAIL_CANDIDATES_SQL = """
SELECT n.id
FROM notify.notifications n
JOIN notify.users u ON u.id = n.user_id
LEFT JOIN notify.preferences p ON p.user_id = n.user_id
WHERE n.dedupe_key = $1 AND n.user_id = ANY($2::bigint[]) AND n.read_at IS NULL
  AND u.email IS NOT NULL AND u.email_verified
  AND CASE n.kind WHEN 'mentioned' THEN coalesce(p.email_on_mention, 'away')
                  WHEN 'replied' THEN coalesce(p.email_on_reply, 'away')
                  WHEN 'quoted' THEN coalesce(p.email_on_reply, 'away')
                  WHEN 'posted' THEN coalesce(p.email_on_watched, 'never')
                  WHEN 'message' THEN coalesce(p.email_on_message, 'away')
                  ELSE 'never' END <> 'never'
"""


async def eligible(
    conn: asyncpg.Connection,
    user_ids: Iterable[int],
    *,
    topic_id: int,
    category_id: int,
    audience: Sequence[str],
    actor_id: int | None,
) -> set[int]:
    """The members among `user_ids` who may be notified about this topic and actor."""
    ids = sorted(set(user_ids) - ({actor_id} if actor_id else set()))
    if not ids:
        return set()
    rows = await conn.fetch(ELIGIBLE_SQL, ids, topic_id, category_id, list(audience), actor_id or 0)
    return {row["id"] for row in rows}


async def insert_notifications(
    conn: asyncpg.Connection,
    kinds: dict[int, str],
    *,
    key: str,
    topic_id: int | None,
    post_id: int | None,
    post_number: int | None,
    actor_id: int | None,
    data: dict[str, Any],
) -> list[int]:
    """Insert one notification per member (kind per member) under one key; returns who got a new one."""
    if not kinds:
        return []
    users = list(kinds)
    rows = await conn.fetch(
        INSERT_NOTIFICATIONS_SQL, users, [kinds[u] for u in users], key, topic_id, post_id, post_number, actor_id, data
    )
    return [row["user_id"] for row in rows]


# The level posting sets, as the author prefers: projections.py has already set the topic to
# watching (reason "created", the first post) or filled in tracking (reason "posted", a reply)
# where the member had no level; this puts the member's preferred level on a row set by posting
# for the same reason, never on one they chose ("chosen") or one starting the topic set when
# they reply later.
FOLLOW_ON_POST_SQL = """
WITH preferred AS (
    SELECT coalesce((SELECT CASE WHEN $3 = 'created' THEN p.watch_on_start ELSE p.watch_on_reply END
                     FROM notify.preferences p WHERE p.user_id = $1), $4) AS level
)
UPDATE notify.watches w SET level = preferred.level, updated_at = now()
FROM preferred
WHERE w.user_id = $1 AND w.target_kind = 'topic' AND w.target_id = $2 AND w.reason = $3
  AND w.level <> preferred.level
"""


async def follow_on_post(conn: asyncpg.Connection, event: ev.PostCreated) -> None:
    """Set the author's level on the topic they posted in to the one they prefer for starting or replying."""
    started = event.post_number == 1
    await conn.execute(
        FOLLOW_ON_POST_SQL,
        event.author_id,
        event.topic_id,
        "created" if started else "posted",
        "watching" if started else "tracking",
    )


async def followers(conn: asyncpg.Connection, event: ev.PostCreated, level: str) -> list[int]:
    """Members watching or tracking the topic of a post."""
    rows = await conn.fetch(FOLLOWERS_SQL, event.topic_id, event.category_id, level)
    return [row["user_id"] for row in rows]


async def on_post_created(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostCreated) -> Outcome:
    """The author follows the topic as they prefer (and has read it: their count of its new replies
    is read); then mentions, the replied-to author, quoted authors and watchers are told, one
    notification each, and the reply is counted in for those tracking the topic."""
    await tracking.lock_for_replies(conn, event.topic_id)
    await follow_on_post(conn, event)
    changed = await tracking.read_by_posting(conn, event)
    kinds: dict[int, str] = {}
    for user_id in event.mentioned_user_ids:
        kinds.setdefault(user_id, "mentioned")
    if event.reply_to_user_id:
        kinds.setdefault(event.reply_to_user_id, "replied")
    for user_id in event.quoted_user_ids:
        kinds.setdefault(user_id, "quoted")
    for user_id in await followers(conn, event, "watching"):
        kinds.setdefault(user_id, "posted")
    trackers = set(await followers(conn, event, "tracking")) - set(kinds)
    allowed = await eligible(
        conn,
        set(kinds) | trackers,
        topic_id=event.topic_id,
        category_id=event.category_id,
        audience=event.audience,
        actor_id=event.author_id,
    )
    kinds = {user_id: kind for user_id, kind in kinds.items() if user_id in allowed}
    changed |= await tracking.count_in(conn, trackers & allowed, event)
    key = f"post:{event.post_id}"
    data = {"actor_username": event.author_username, "topic_title": event.topic_title}
    new = await insert_notifications(
        conn,
        kinds,
        key=key,
        topic_id=event.topic_id,
        post_id=event.post_id,
        post_number=event.post_number,
        actor_id=None if event.anonymous else event.author_id,  # an anonymous author's id is never shown
        data=data,
    )
    # Every unread one of this key, not only the new ones: after a crash between commit and
    # enqueueing, the repeat enqueues the mail (job ids keep that to one).
    mail = await conn.fetch(MAIL_CANDIDATES_SQL, key, list(kinds))
    return Outcome(set(new) | changed, [row["id"] for row in mail])


REACTION_SUMMARY_SQL = """
SELECT count(*) AS count,
       coalesce((array_agg(coalesce(u.username, 'a member') ORDER BY r.changed_at DESC))[1:3], '{}') AS usernames,
       coalesce(jsonb_object_agg(r.kind, 1) FILTER (WHERE r.kind IS NOT NULL), '{}'::jsonb) AS kinds
FROM notify.reactions r
LEFT JOIN notify.users u ON u.id = r.user_id
WHERE r.post_id = $1 AND r.active AND r.user_id <> $2
  AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = $2 AND m.muted_user_id = r.user_id
                  AND m.level <> 'none')
"""

UPSERT_REACTED_SQL = """
INSERT INTO notify.notifications (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data)
VALUES ($1, 'reacted', $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, dedupe_key) DO UPDATE SET
    data = EXCLUDED.data, actor_id = EXCLUDED.actor_id, read_at = NULL, updated_at = now()
"""


async def on_reaction(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ReactionAdded | ev.ReactionRemoved
) -> Outcome:
    """Reactions to a post make one notification for its author, updated and marked unread again."""
    changed = await projections.apply_reaction(conn, envelope, event)
    author = event.post_author_id
    if not changed or event.user_id == author:
        return Outcome()
    key = f"reactions:{event.post_id}"
    summary = await conn.fetchrow(REACTION_SUMMARY_SQL, event.post_id, author)
    post = await conn.fetchrow("SELECT post_number, topic_id FROM notify.posts WHERE id = $1", event.post_id)
    topic = await conn.fetchrow("SELECT category_id, title FROM notify.topics WHERE id = $1", event.topic_id)
    if isinstance(event, ev.ReactionRemoved) or summary["count"] == 0:
        return await _reaction_removed(conn, author, key, summary)
    category_id = topic["category_id"] if topic else 0
    if author not in await eligible(
        conn,
        [author],
        topic_id=event.topic_id,
        category_id=category_id,
        audience=event.audience,
        actor_id=event.user_id,
    ):
        return Outcome()
    data = {
        "count": summary["count"],
        "usernames": list(summary["usernames"]),
        "kinds": sorted(summary["kinds"]),
        "topic_title": topic["title"] if topic else None,
    }
    await conn.execute(
        UPSERT_REACTED_SQL,
        author,
        key,
        event.topic_id,
        event.post_id,
        post["post_number"] if post else None,
        event.user_id,
        data,
    )
    return Outcome({author})


async def _reaction_removed(conn: asyncpg.Connection, author: int, key: str, summary: asyncpg.Record) -> Outcome:
    """A removed reaction updates the count quietly; the last one removed takes the notification away."""
    if summary["count"] == 0:
        status = await conn.execute(
            "DELETE FROM notify.notifications WHERE user_id = $1 AND dedupe_key = $2", author, key
        )
        return Outcome({author} if status != "DELETE 0" else set())
    await conn.execute(
        "UPDATE notify.notifications SET data = data || jsonb_build_object('count', $3::int, 'usernames', $4::text[]) "
        "WHERE user_id = $1 AND dedupe_key = $2",
        author,
        key,
        summary["count"],
        list(summary["usernames"]),
    )
    return Outcome()


async def on_post_deleted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostDeleted) -> Outcome:
    """A deleted post takes its notifications with it (its text is gone, so is the reason to look),
    and leaves the unread counts of new replies that held it."""
    rows = await conn.fetch(
        "DELETE FROM notify.notifications WHERE post_id = $1 AND kind = ANY($2::text[]) RETURNING user_id",
        event.post_id,
        list(POST_KINDS),
    )
    return Outcome({row["user_id"] for row in rows} | await tracking.recount_post(conn, event.post_id))


async def _tell(
    conn: asyncpg.Connection,
    user_id: int | None,
    kind: str,
    key: str,
    *,
    topic_id: int | None = None,
    post_id: int | None = None,
    actor_id: int | None = None,
    data: dict[str, Any],
) -> Outcome:
    """One notification for one member (moderation outcomes and sanctions)."""
    if not user_id:
        return Outcome()
    post_number = None
    if post_id is not None:
        post_number = await conn.fetchval("SELECT post_number FROM notify.posts WHERE id = $1", post_id)
    if topic_id is not None and "topic_title" not in data:
        data = {**data, "topic_title": await conn.fetchval("SELECT title FROM notify.topics WHERE id = $1", topic_id)}
    new = await insert_notifications(
        conn,
        {user_id: kind},
        key=key,
        topic_id=topic_id,
        post_id=post_id,
        post_number=post_number,
        actor_id=actor_id,
        data=data,
    )
    return Outcome(set(new))


async def on_post_status(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.PostHidden | ev.PostRestored
) -> Outcome:
    """The author hears that moderators hid their post (and why) or that it can be seen again; the
    unread counts of new replies that hold it leave it out or count it again."""
    if isinstance(event, ev.PostHidden):
        kind, key, data = "post_hidden", f"hidden:{envelope.id}", {"reason": event.reason}
    else:
        kind, key, data = "post_restored", f"restored:{envelope.id}", {}
    told = await _tell(conn, event.author_id, kind, key, topic_id=event.topic_id, post_id=event.post_id, data=data)
    told.counts_changed |= await tracking.recount_post(conn, event.post_id)
    return told


async def on_topic_read(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.TopicRead) -> Outcome:
    """Reading a topic far enough reads the member's count of its new replies (tracking.py)."""
    return Outcome(await tracking.read_to(conn, event))


async def on_user_muted(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserMuted) -> Outcome:
    """Muting, ignoring or unmuting someone changes which replies the member's unread counts hold."""
    return Outcome(await tracking.recount_member(conn, event.user_id))


# Which outcome of a review its author hears about. Hiding and restoring a published post
# are told through post.hidden / post.restored (an upheld appeal restores the post), so
# those reviews add nothing; a queued post never published has no other event.
REVIEW_KINDS = {
    ("queued_post", "approve"): "post_approved",
    ("queued_post", "reject"): "post_rejected",
    ("queued_post", "hide"): "post_rejected",
    ("appeal", "reject"): "appeal_rejected",
    ("appeal", "hide"): "appeal_rejected",
}


async def on_review_resolved(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ReviewResolved) -> Outcome:
    kind = "post_deleted" if event.action == "delete" else REVIEW_KINDS.get((event.kind, event.action))
    if kind is None:
        return Outcome()
    data: dict[str, Any] = {"reason": event.reason}
    if event.topic_title:
        data["topic_title"] = event.topic_title
    key = f"review:{event.review_id}:{event.action}"
    return await _tell(
        conn,
        event.author_id,
        kind,
        key,
        topic_id=event.topic_id,
        post_id=event.post_id,
        actor_id=event.moderator_id,
        data=data,
    )


async def on_sanction(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserSilenced | ev.UserSuspended
) -> Outcome:
    kind = "silenced" if isinstance(event, ev.UserSilenced) else "suspended"
    return await _tell(
        conn,
        event.user_id,
        kind,
        f"{kind}:{envelope.id}",
        actor_id=envelope.actor_id,
        data={"reason": event.reason, "until": event.until},
    )


async def on_role_changed(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.UserRoleChanged) -> Outcome:
    """The member hears that an admin made them a moderator or an admin, or took the role back, or gave
    or took back a duty (a safeguarding lead), and why."""
    role, previous = role_named(event.roles), role_named(event.previous_roles)
    return await _tell(
        conn,
        event.user_id,
        "role_changed",
        f"role:{envelope.id}",
        actor_id=envelope.actor_id,
        data={"role": role, "previous_role": previous, "reason": event.reason}
        | ({"duty": event.duty, "duty_held": event.duty_held} if event.duty else {}),
    )


def role_named(roles: Sequence[str]) -> str:
    """A member's one role from their stored roles (as the forum names it): admin, moderator or member."""
    return "admin" if "admin" in roles else "moderator" if "moderator" in roles else "member"


REGISTERED_SQL = """
SELECT user_id FROM notify.webinar_registrations WHERE webinar_id = $1 AND status IN ('registered', 'waiting')
"""


async def on_webinar_changed(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.WebinarUpdated | ev.WebinarCancelled
) -> Outcome:
    """Tell registered and waiting members that a webinar moved or was cancelled (in the app only).

    A move is an update whose event changed the webinar's times in the projection (the projection
    remembers which event that was, so a title-only change tells no one, and a repeat finds the same
    event and the same key). Giving up a place sends no event: such members are still told.
    """
    if isinstance(event, ev.WebinarUpdated):
        moved_by = await conn.fetchval("SELECT moved_event_id FROM notify.webinars WHERE id = $1", event.webinar_id)
        if moved_by is None or str(moved_by) != str(envelope.id):
            return Outcome()
        kind = "webinar_changed"
    else:
        kind = "webinar_cancelled"
    users = [row["user_id"] for row in await conn.fetch(REGISTERED_SQL, event.webinar_id)]
    data = {"webinar_id": event.webinar_id, "webinar_title": event.title, "starts_at": event.starts_at}
    new = await insert_notifications(
        conn,
        dict.fromkeys(users, kind),
        key=f"{kind}:{event.webinar_id}:{envelope.id}",
        topic_id=None,
        post_id=None,
        post_number=None,
        actor_id=envelope.actor_id,
        data=data,
    )
    return Outcome(set(new))


# --- private messages --------------------------------------------------------------------------


MODERATORS_NAME = "the moderators"  # who sent a message from the moderators' inbox, as members see it


def conversation_key(conversation_id: int) -> str:
    """The key of a member's one notification about a conversation's new messages."""
    return f"conversation:{conversation_id}"


# One notification per member and conversation. Unread, it counts the new message in (the link
# stays on the first unread one); read, it starts again from this message. A message handled
# twice (or older than the newest counted) changes nothing: `last_id` is the newest message in it.
UPSERT_MESSAGE_SQL = """
INSERT INTO notify.notifications AS n (user_id, kind, dedupe_key, actor_id, data)
SELECT r.user_id, 'message', $2, $3, $4::jsonb FROM unnest($1::bigint[]) AS r(user_id)
ON CONFLICT (user_id, dedupe_key) DO UPDATE SET
    data = CASE WHEN n.read_at IS NULL AND n.kind = 'message' THEN n.data || jsonb_build_object(
               'count', coalesce((n.data->>'count')::int, 0) + 1,
               'usernames', CASE WHEN coalesce(n.data->'usernames', '[]') @> (EXCLUDED.data->'usernames')
                                 THEN n.data->'usernames'
                                 ELSE (EXCLUDED.data->'usernames') || coalesce(n.data->'usernames', '[]') END,
               'last_id', EXCLUDED.data->'last_id',
               'actor_username', EXCLUDED.data->'actor_username',
               'conversation_title', EXCLUDED.data->'conversation_title',
               'excerpt', EXCLUDED.data->'excerpt',
               'excerpt_id', EXCLUDED.data->'excerpt_id')
           ELSE EXCLUDED.data END,
    actor_id = EXCLUDED.actor_id, read_at = NULL, updated_at = now()
WHERE coalesce((n.data->>'last_id')::bigint, 0) < (EXCLUDED.data->>'last_id')::bigint
RETURNING user_id
"""

# Staff who read the moderators' inbox, but the author; none who muted or ignored the author.
MODERATORS_SQL = """
SELECT u.id FROM notify.users u
WHERE u.roles && ARRAY['moderator', 'admin']::text[] AND u.id <> $1
  AND (u.suspended_until IS NULL OR u.suspended_until <= now())
"""

# Of these members, those who did not mute or ignore the author (staff outreach always reaches them).
NOT_MUTING_SQL = """
SELECT c.id FROM unnest($1::bigint[]) AS c(id)
WHERE NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = c.id AND m.muted_user_id = $2 AND m.level <> 'none')
"""

READ_BY_WRITING_SQL = """
UPDATE notify.notifications SET read_at = now(), data = data - 'excerpt'
WHERE user_id = $1 AND dedupe_key = $2 AND read_at IS NULL
RETURNING user_id
"""

# The moderators' inbox is shared: once one of them answers, the others' notifications of it are read.
READ_BY_ANSWERING_SQL = """
UPDATE notify.notifications SET read_at = now(), data = data - 'excerpt'
WHERE dedupe_key = $1 AND read_at IS NULL AND data->>'to_moderators' = 'true'
RETURNING user_id
"""


# Reading a conversation up to a message reads the member's notification of it, unless newer messages came.
READ_CONVERSATION_SQL = """
UPDATE notify.notifications SET read_at = now(), data = data - 'excerpt'
WHERE user_id = $1 AND dedupe_key = $2 AND read_at IS NULL AND coalesce((data->>'last_id')::bigint, 0) <= $3
RETURNING user_id
"""


async def on_conversation_read(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ConversationRead) -> Outcome:
    """Opening a conversation (or reading it through the API) reads its notification."""
    key = conversation_key(event.conversation_id)
    rows = await conn.fetch(READ_CONVERSATION_SQL, event.user_id, key, event.message_id)
    return Outcome({row["user_id"] for row in rows})


async def on_message_created(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.MessageCreated) -> Outcome:
    """The conversation's members (and, for a message to the moderators' inbox, the moderators) are
    told, one notification per conversation; the author has read it by writing in it, and an answer
    from the inbox reads it for every moderator."""
    key = conversation_key(event.conversation_id)
    author = event.author_id
    changed = {row["user_id"] for row in await conn.fetch(READ_BY_WRITING_SQL, author, key)}
    if event.from_moderators:
        changed |= {row["user_id"] for row in await conn.fetch(READ_BY_ANSWERING_SQL, key)}
    members = set(event.recipient_ids) - {author}
    inbox: set[int] = set()
    if event.with_moderators and not event.from_moderators:
        inbox = {row["id"] for row in await conn.fetch(MODERATORS_SQL, author)} - members
    if not event.from_moderators:  # a member who muted someone hears nothing from them; outreach always reaches
        allowed = {row["id"] for row in await conn.fetch(NOT_MUTING_SQL, sorted(members | inbox), author)}
        members, inbox = members & allowed, inbox & allowed
    sender = MODERATORS_NAME if event.from_moderators else event.author_username
    data = {
        "conversation_id": event.conversation_id,
        "conversation_title": event.title,
        "message_id": event.message_id,
        "last_id": event.message_id,
        "count": 1,
        "usernames": [sender],
        "actor_username": sender,
        # The words mail may quote: none of a message that matched a safeguarding phrase.
        "excerpt": None if event.sensitive else projections.excerpt(event.text),
        "excerpt_id": event.message_id,
    }
    actor_id = None if event.from_moderators else author
    told: set[int] = set()
    for users, extra in ((members, {}), (inbox, {"to_moderators": True})):
        if users:
            rows = await conn.fetch(UPSERT_MESSAGE_SQL, sorted(users), key, actor_id, {**data, **extra})
            told |= {row["user_id"] for row in rows}
    mail = await conn.fetch(MAIL_CANDIDATES_SQL, key, sorted(members | inbox))
    version = f"message-{event.message_id}"
    return Outcome(changed | told, mail_versions=[(row["id"], version) for row in mail])


async def on_message_hidden(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.MessageHidden) -> Outcome:
    """A hidden message is never quoted in mail (notifications keep its conversation and count)."""
    await conn.execute(
        "UPDATE notify.notifications SET data = data || '{\"excerpt\": null}'::jsonb "
        "WHERE dedupe_key = $1 AND data->>'excerpt_id' = $2",
        conversation_key(event.conversation_id),
        str(event.message_id),
    )
    return Outcome()


# A member who left a conversation hears nothing more of it: their notifications about it go.
FORGET_CONVERSATION_SQL = """
DELETE FROM notify.notifications
WHERE user_id = ANY($1::bigint[]) AND (dedupe_key = $2 OR dedupe_key LIKE $3)
RETURNING user_id, read_at IS NULL AS unread
"""


async def on_members_changed(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.ConversationMembersChanged
) -> Outcome:
    """Those invited are told who invited them; those who left (or were removed) lose what told them of it."""
    cid = event.conversation_id
    rows = await conn.fetch(FORGET_CONVERSATION_SQL, list(event.removed_ids), conversation_key(cid), f"invited:{cid}:%")
    changed = {row["user_id"] for row in rows if row["unread"]}
    invited = set(event.invited_ids) - set(event.member_ids) - set(event.removed_ids)
    invited.discard(envelope.actor_id or 0)
    if invited:
        inviter = None
        if envelope.actor_id:
            inviter = await conn.fetchval("SELECT username FROM notify.users WHERE id = $1", envelope.actor_id)
        new = await insert_notifications(
            conn,
            dict.fromkeys(sorted(invited), "conversation_invited"),
            key=f"invited:{cid}:{envelope.id}",
            topic_id=None,
            post_id=None,
            post_number=None,
            actor_id=envelope.actor_id,
            data={"conversation_id": cid, "actor_username": inviter or "Someone"},
        )
        changed |= set(new)
    return Outcome(changed)


# --- safeguarding --------------------------------------------------------------------------------


def safeguarding_key(review_id: int) -> str:
    return f"safeguarding:{review_id}"


# One alert per member and item; a later round marks it unread again (a round told twice: nothing).
UPSERT_ALERT_SQL = """
INSERT INTO notify.notifications AS n (user_id, kind, dedupe_key, data)
SELECT r.user_id, 'safeguarding_alert', $2, $3::jsonb FROM unnest($1::bigint[]) AS r(user_id)
ON CONFLICT (user_id, dedupe_key) DO UPDATE SET data = EXCLUDED.data, read_at = NULL, updated_at = now()
WHERE coalesce((n.data->>'round')::int, 0) < (EXCLUDED.data->>'round')::int
RETURNING user_id
"""

# The leads to mail about this round: whatever their email choices, when the alert is unread.
ALERT_MAIL_SQL = """
SELECT n.id FROM notify.notifications n JOIN notify.users u ON u.id = n.user_id
WHERE n.dedupe_key = $1 AND n.user_id = ANY($2::bigint[]) AND n.read_at IS NULL
  AND (n.data->>'round')::int = $3 AND u.email IS NOT NULL AND u.email_verified
"""


async def on_safeguarding_alerted(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.SafeguardingAlerted
) -> Outcome:
    """Tell those the forum named that an item needs someone (never what was written), and mail the leads."""
    key = safeguarding_key(event.review_id)
    data = {
        "review_id": event.review_id,
        "round": event.round,
        "about": "message" if event.message_id is not None else "post",
    }
    recipients = sorted(set(event.recipient_ids))
    rows = await conn.fetch(UPSERT_ALERT_SQL, recipients, key, data) if recipients else []
    leads = sorted(set(event.email_ids) & set(recipients))
    mail = await conn.fetch(ALERT_MAIL_SQL, key, leads, event.round) if leads else []
    version = f"round-{event.round}"
    return Outcome({row["user_id"] for row in rows}, mail_versions=[(row["id"], version) for row in mail])


async def on_safeguarding_resolved(
    conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.SafeguardingResolved
) -> Outcome:
    """A resolved item needs no one: its alerts are marked read, so no count keeps asking."""
    rows = await conn.fetch(
        "UPDATE notify.notifications SET read_at = now() WHERE dedupe_key = $1 AND read_at IS NULL RETURNING user_id",
        safeguarding_key(event.review_id),
    )
    return Outcome({row["user_id"] for row in rows})


# Typed like search's indexer: each function takes the event type it is listed under.
Tell = Callable[[asyncpg.Connection, ev.Envelope, Any], Awaitable[Outcome]]

TELL: dict[type[ev.Event], Tell] = {
    ev.PostCreated: on_post_created,
    ev.ReactionAdded: on_reaction,
    ev.ReactionRemoved: on_reaction,
    ev.PostDeleted: on_post_deleted,
    ev.UserMuted: on_user_muted,
    ev.TopicRead: on_topic_read,
    ev.PostHidden: on_post_status,
    ev.PostRestored: on_post_status,
    ev.ReviewResolved: on_review_resolved,
    ev.UserSilenced: on_sanction,
    ev.UserSuspended: on_sanction,
    ev.UserRoleChanged: on_role_changed,
    ev.WebinarUpdated: on_webinar_changed,
    ev.WebinarCancelled: on_webinar_changed,
    ev.MessageCreated: on_message_created,
    ev.ConversationRead: on_conversation_read,
    ev.MessageHidden: on_message_hidden,
    ev.ConversationMembersChanged: on_members_changed,
    ev.SafeguardingAlerted: on_safeguarding_alerted,
    ev.SafeguardingResolved: on_safeguarding_resolved,
}


async def write_notifications(conn: asyncpg.Connection, envelope: ev.Envelope, event: ev.Event) -> Outcome:
    """The notifications one event makes (after the projections took it in)."""
    tell = TELL.get(type(event))
    return await tell(conn, envelope, event) if tell is not None else Outcome()


# --- the writer -----------------------------------------------------------------------------


async def handle_event(rt: Runtime, envelope: ev.Envelope) -> None:
    """Handle one event: projections and notifications in one transaction, then counts and mail."""
    event = envelope.event()
    async with rt.pool.acquire() as conn, conn.transaction():
        await projections.apply(conn, envelope, event)
        outcome = await write_notifications(conn, envelope, event)
    await after_commit(rt, outcome)


async def after_commit(rt: Runtime, outcome: Outcome) -> None:
    """Tell live clients the new unread counts, and queue the mail (both safe to repeat)."""
    if outcome.counts_changed:
        async with rt.pool.acquire() as conn:
            counts = await unread_counts(conn, outcome.counts_changed)
        await publish_counts(rt.redis, rt.settings.redis_prefix, counts)
    jobs = [(notification_id, "") for notification_id in outcome.mail_ids] + outcome.mail_versions
    if jobs:
        queue = rt.extras.get("queue")
        if queue is None:
            log.warning("no job queue: %d notification mail(s) not queued", len(jobs))
            return
        for notification_id, version in jobs:
            name = f"notification-mail:{notification_id}" + (f":{version}" if version else "")
            args = (notification_id, version) if version else (notification_id,)
            await queue.enqueue_job("send_notification_mail", *args, _job_id=job_id(queue, name))


def consumer(rt: Runtime, *, name: str | None = None, **options: Any) -> ev.Consumer:
    """The notification writer: one member of the consumer group "notify-writer"."""
    prefix = rt.settings.redis_prefix

    async def handler(envelope: ev.Envelope) -> None:
        await handle_event(rt, envelope)

    return ev.Consumer(
        rt.redis,
        ev.stream_name(prefix),
        GROUP,
        name or ev.consumer_name(),
        handler,
        ev.dead_letter_stream(prefix, GROUP),
        **{"claim_idle_ms": rt.settings.reclaim_idle_s * 1000, **options},
    )
