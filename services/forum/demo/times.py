"""The demo's events, given the times of what they are about.

The demo writes through the forum's own functions, so each change records its event in the
outbox at the instant of seeding, and only then moves its rows back over the past months.
Before the seed commits, its still-unpublished events are given the times of their rows (the
envelope's `occurred_at`, and the `created_at` an event carries): search, notify's projections
and digests then learn the same times as the forum's pages show. Event ids stay as written:
they order each thing's events, and consumers compare them, never the times.
"""

from __future__ import annotations

import asyncpg

# When the thing an event is about happened, from the event's data `d` (an event of another type
# takes the time of the event written just before it: it is part of the same change).
EVENT_TIMES = {
    "user.registered": "SELECT created_at FROM forum.users WHERE id = (d->>'user_id')::bigint",
    "category.created": "SELECT created_at FROM forum.categories WHERE id = (d->>'category_id')::bigint",
    "topic.created": "SELECT created_at FROM forum.topics WHERE id = (d->>'topic_id')::bigint",
    "post.created": "SELECT created_at FROM forum.posts WHERE id = (d->>'post_id')::bigint",
    "post.edited": (
        "SELECT created_at FROM forum.post_revisions "
        "WHERE post_id = (d->>'post_id')::bigint AND revision = (d->>'revision')::int"
    ),
    "reaction.added": (
        "SELECT created_at FROM forum.reactions "
        "WHERE post_id = (d->>'post_id')::bigint AND user_id = (d->>'user_id')::bigint AND kind = d->>'kind'"
    ),
    "folder.updated": "SELECT updated_at FROM forum.folders WHERE id = (d->>'folder_id')::bigint",
    "document.uploaded": (
        "SELECT created_at FROM forum.document_versions "
        "WHERE document_id = (d->>'document_id')::bigint AND version = (d->>'document_version')::int"
    ),
    "group.member_added": (
        "SELECT created_at FROM forum.group_members "
        "WHERE group_id = (d->>'group_id')::bigint AND user_id = (d->>'user_id')::bigint"
    ),
    "webinar.scheduled": "SELECT created_at FROM forum.webinars WHERE id = (d->>'webinar_id')::bigint",
    "webinar.updated": "SELECT updated_at FROM forum.webinars WHERE id = (d->>'webinar_id')::bigint",
    "webinar.registered": (
        "SELECT created_at FROM forum.webinar_registrations "
        "WHERE webinar_id = (d->>'webinar_id')::bigint AND user_id = (d->>'user_id')::bigint"
    ),
}

# As Python's isoformat() writes a UTC time, which is how events carry times.
_ISO = """to_jsonb(to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))"""
_TIMED_SQL = f"""
WITH seeded AS (
    SELECT id, type, payload->'data' AS d FROM forum.outbox WHERE id > $1 AND published_at IS NULL
), timed AS (
    SELECT id, CASE type {" ".join(f"WHEN '{t}' THEN ({sql})" for t, sql in EVENT_TIMES.items())} END AS at
    FROM seeded
)
UPDATE forum.outbox o
SET payload = CASE WHEN o.payload->'data' ? 'created_at'
        THEN jsonb_set(jsonb_set(o.payload, '{{occurred_at}}', {_ISO.format(at="t.at")}),
                       '{{data,created_at}}', {_ISO.format(at="t.at")})
        ELSE jsonb_set(o.payload, '{{occurred_at}}', {_ISO.format(at="t.at")}) END
FROM timed t WHERE o.id = t.id AND t.at IS NOT NULL
"""
# The rest (user.updated after a change of groups, a category's own event...) in id order, each
# from the one before it.
_FOLLOWING_SQL = """
UPDATE forum.outbox o
SET payload = jsonb_set(o.payload, '{occurred_at}', coalesce(
    (SELECT e.payload->'occurred_at' FROM forum.outbox e
     WHERE e.id > $1 AND e.id < o.id AND e.published_at IS NULL AND e.type = ANY($2::text[])
     ORDER BY e.id DESC LIMIT 1),
    o.payload->'occurred_at'))
WHERE o.id > $1 AND o.published_at IS NULL AND NOT o.type = ANY($2::text[])
"""


async def last_event_id(conn: asyncpg.Connection) -> int:
    """Where the outbox stands before seeding: the seed's events are the unpublished ones after it."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM forum.outbox"))


async def align_event_times(conn: asyncpg.Connection, since_id: int) -> None:
    """Give the seed's events (outbox rows after `since_id`, not yet published) the times of their rows."""
    await conn.execute(_TIMED_SQL, since_id)
    await conn.execute(_FOLLOWING_SQL, since_id, list(EVENT_TIMES))
