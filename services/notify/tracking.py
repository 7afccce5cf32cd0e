"""Tracking a topic, as Discourse means it, kept calm: new replies by others collect into one
unread notification per member and topic (kind "new_replies": "3 new replies in 'the title'", in curly quotes), linked
to the first unread reply and updated in place (its count, its time) as more come. Once it is
read (followed, marked read, or the member posts in the topic) the next reply starts a new one.
It is never emailed; the digest gives it one line.

Who is counted in: members whose level on the topic is tracking (their own, or their category's),
who may read the topic, did not mute or ignore the replier, and are not told of the reply
otherwise (a mention, a reply to them or a quote is its own notification). The count is the
notification's replies that are still visible: a reply hidden, deleted or withdrawn while the
notification is unread is taken out when that event arrives (restored, it counts again); the
last one gone takes the notification away. A read notification keeps what it said.

Reading the topic reads it too (topic.read, which the forum writes when a member reads further than
before): once the member has read up to, or past, the first reply it counts, as Discourse clears it
once the first new reply was seen. How far each member read is kept (notify.topic_reads), so a
reply handled after a read that covers it (events out of order) is not counted in again.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from shared import events as ev

KIND = "new_replies"

# One statement, so a repeat changes nothing: a reply the member was already counted for (in
# any of their notifications, read or not), or has read already, is skipped; otherwise the
# member's unread one for the topic is found by its unique index and touched (its time, the
# latest replier), or made.
COUNT_IN_SQL = """
WITH told AS (
    INSERT INTO notify.notifications AS n (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data)
    SELECT r.user_id, 'new_replies', 'replies:' || $3::bigint || ':' || $2::bigint, $3, $2, $4, $5, $6::jsonb
    FROM unnest($1::bigint[]) AS r(user_id)
    WHERE NOT EXISTS (SELECT 1 FROM notify.tracked_replies tr WHERE tr.user_id = r.user_id AND tr.post_id = $2)
      AND NOT EXISTS (SELECT 1 FROM notify.topic_reads rd
                      WHERE rd.user_id = r.user_id AND rd.topic_id = $3 AND rd.last_read_post_number >= $4)
    ON CONFLICT (user_id, topic_id) WHERE kind = 'new_replies' AND read_at IS NULL
    DO UPDATE SET actor_id = EXCLUDED.actor_id, data = n.data || EXCLUDED.data, updated_at = now()
    RETURNING n.id, n.user_id
)
INSERT INTO notify.tracked_replies (user_id, post_id, notification_id)
SELECT user_id, $2, id FROM told
ON CONFLICT (user_id, post_id) DO NOTHING
RETURNING user_id, notification_id
"""

# The count and the first unread reply of some notifications, from their replies still visible
# and not by members the reader has muted or ignored since.
RECOUNT_SQL = """
WITH counted AS (
    SELECT tr.notification_id, count(*) AS count,
           (array_agg(p.id ORDER BY p.post_number, p.id))[1] AS first_post_id, min(p.post_number) AS first_number
    FROM notify.tracked_replies tr
    JOIN notify.notifications n ON n.id = tr.notification_id
    JOIN notify.posts p ON p.id = tr.post_id
    WHERE tr.notification_id = ANY($1::bigint[]) AND p.status = 'visible'
      AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = n.user_id AND m.muted_user_id = p.author_id
                      AND m.level <> 'none')
    GROUP BY tr.notification_id
)
UPDATE notify.notifications n
SET data = n.data || jsonb_build_object('count', c.count), post_id = c.first_post_id, post_number = c.first_number
FROM counted c
WHERE n.id = c.notification_id
RETURNING n.id, n.user_id
"""

DROP_EMPTY_SQL = """
DELETE FROM notify.notifications
WHERE id = ANY($1::bigint[]) AND kind = 'new_replies' AND read_at IS NULL
RETURNING user_id
"""

# Unread notifications of this kind that count a post, or that a member has.
HOLDING_POST_SQL = """
SELECT DISTINCT tr.notification_id
FROM notify.tracked_replies tr
JOIN notify.notifications n ON n.id = tr.notification_id
WHERE tr.post_id = $1 AND n.read_at IS NULL
"""
UNREAD_OF_MEMBER_SQL = (
    "SELECT id FROM notify.notifications WHERE user_id = $1 AND kind = 'new_replies' AND read_at IS NULL"
)

# Posting in a topic means the member has read it up to there: their unread count for the topic
# is read, when it began before this post (a post handled late never reads replies that came after it).
READ_BY_POSTING_SQL = """
UPDATE notify.notifications SET read_at = now()
WHERE user_id = $1 AND topic_id = $2 AND kind = 'new_replies' AND read_at IS NULL AND post_number < $3
RETURNING user_id
"""


# Counting replies in and reading a topic take this lock on the topic (replies exclusively, reads
# shared): two replicas handling a reply and a read of it at once would otherwise each miss the
# other's uncommitted row, and the reply would be counted in unread after all. A reply takes it
# before it touches any notification, so the two never wait on each other in a circle. Two int4
# keys: a key space apart from the one-bigint locks (relay, migrations).
LOCK_KEY = 0x74726B  # "trk"
LOCK_REPLIES_SQL = "SELECT pg_advisory_xact_lock($1, hashint8($2::bigint))"
LOCK_READ_SQL = "SELECT pg_advisory_xact_lock_shared($1, hashint8($2::bigint))"

# Reading a topic: remember how far (only ever further), then read the member's unread count for
# the topic when its first counted reply is within what they read. One statement: a repeat reads
# nothing new, as a notification started after the first read has its first reply beyond it.
READ_TO_SQL = """
WITH mark AS (
    INSERT INTO notify.topic_reads AS rd (user_id, topic_id, last_read_post_number) VALUES ($1, $2, $3)
    ON CONFLICT (user_id, topic_id) DO UPDATE SET last_read_post_number = EXCLUDED.last_read_post_number
    WHERE rd.last_read_post_number < EXCLUDED.last_read_post_number
)
UPDATE notify.notifications SET read_at = now()
WHERE user_id = $1 AND topic_id = $2 AND kind = 'new_replies' AND read_at IS NULL AND post_number <= $3
RETURNING user_id
"""


async def lock_for_replies(conn: asyncpg.Connection, topic_id: int) -> None:
    """Before a reply in this topic is handled: no read of the topic is being handled meanwhile."""
    await conn.execute(LOCK_REPLIES_SQL, LOCK_KEY, topic_id)


async def count_in(conn: asyncpg.Connection, user_ids: Iterable[int], event: ev.PostCreated) -> set[int]:
    """Count a new reply into each tracker's unread notification for its topic; returns whose changed."""
    users = sorted(set(user_ids))
    if not users or event.post_number == 1:
        return set()
    data = {"topic_title": event.topic_title, "actor_username": event.author_username, "count": 1}
    actor_id = None if event.anonymous else event.author_id  # an anonymous replier's id is never shown
    rows = await conn.fetch(COUNT_IN_SQL, users, event.post_id, event.topic_id, event.post_number, actor_id, data)
    return await recount(conn, {row["notification_id"] for row in rows})


async def recount(conn: asyncpg.Connection, notification_ids: Iterable[int]) -> set[int]:
    """Set the count and first unread reply of these notifications; one left with none goes.
    Returns the members whose notifications changed."""
    ids = sorted(set(notification_ids))
    if not ids:
        return set()
    updated = await conn.fetch(RECOUNT_SQL, ids)
    empty = sorted(set(ids) - {row["id"] for row in updated})
    dropped = await conn.fetch(DROP_EMPTY_SQL, empty) if empty else []
    return {row["user_id"] for row in updated} | {row["user_id"] for row in dropped}


async def recount_post(conn: asyncpg.Connection, post_id: int) -> set[int]:
    """A reply was hidden, deleted or restored: correct the unread notifications that count it."""
    rows = await conn.fetch(HOLDING_POST_SQL, post_id)
    return await recount(conn, [row["notification_id"] for row in rows])


async def recount_member(conn: asyncpg.Connection, user_id: int) -> set[int]:
    """A member muted, ignored or unmuted someone: their unread counts follow."""
    rows = await conn.fetch(UNREAD_OF_MEMBER_SQL, user_id)
    return await recount(conn, [row["id"] for row in rows])


async def read_by_posting(conn: asyncpg.Connection, event: ev.PostCreated) -> set[int]:
    """The author of a post has read the topic: their unread count for it is read."""
    rows = await conn.fetch(READ_BY_POSTING_SQL, event.author_id, event.topic_id, event.post_number)
    return {row["user_id"] for row in rows}


async def read_to(conn: asyncpg.Connection, event: ev.TopicRead) -> set[int]:
    """A member read a topic up to a post: their unread count for it is read when that covers its
    first reply. Returns whose changed (the member, or no one)."""
    await conn.execute(LOCK_READ_SQL, LOCK_KEY, event.topic_id)
    rows = await conn.fetch(READ_TO_SQL, event.user_id, event.topic_id, event.post_number)
    return {row["user_id"] for row in rows}


def describe(data: dict[str, object], where: str) -> str:
    """What it says: "3 new replies in 'the title'" (the title in curly quotes, as audit words quote)."""
    count = data.get("count")
    number = count if isinstance(count, int) else 1
    return f"{number} new repl{'ies' if number != 1 else 'y'} in \u2018{where}\u2019"
