"""Supportive reactions on any writing (a post, a document comment): giving and taking back one,
the counts kept on the writing (and its topic's), and which ones the viewer gave.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
from markupsafe import Markup

from services.forum.outbox import write_event
from services.forum.writings.targets import TARGETS, Target, Writing
from shared.events import ReactionAdded, ReactionRemoved
from shared.sessions import Session
from shared.web import ApiError, invalid

# Supportive reactions only: there is deliberately no negative one.
REACTION_KINDS = ("like", "heart", "hug", "lightbulb", "clap")
REACTION_LABELS = {
    "like": "Like",
    "heart": "Thank you",
    "hug": "Sending strength",
    "lightbulb": "Insightful",
    "clap": "Well said",
}
REACTION_EMOJI = {
    "like": "\U0001f44d",
    "heart": "\u2764\ufe0f",
    "hug": "\U0001f917",
    "lightbulb": "\U0001f4a1",
    "clap": "\U0001f44f",
}
# The same as HTML character references, for pages: a page whose text is all ASCII is a quarter of the
# memory of one holding a single emoji (Python stores a string at the width of its widest character),
# and every join, copy and encode of a 70 KB topic page costs accordingly.
REACTION_EMOJI_HTML = {
    kind: Markup("".join(f"&#x{ord(ch):x};" for ch in emoji))  # noqa: S704 - digits only
    for kind, emoji in REACTION_EMOJI.items()
}

# Per target: $1 the writing, $2 the member, $3 the kind.
ADD_SQL = {
    t.name: f"INSERT INTO {t.reactions_table} ({t.id_column}, user_id, kind) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING RETURNING kind"
    for t in TARGETS
}
REMOVE_SQL = {
    t.name: f"DELETE FROM {t.reactions_table} WHERE {t.id_column} = $1 AND user_id = $2 AND kind = $3 RETURNING kind"
    for t in TARGETS
}
GIVEN_SQL = {
    t.name: f"SELECT {t.id_column} AS id, kind FROM {t.reactions_table} "
    f"WHERE user_id = $1 AND {t.id_column} = ANY($2::bigint[])"
    for t in TARGETS
}
# The writing's counts by kind ($1 the writing, $2 the kind); a count of nought leaves the object.
COUNT_UP_SQL = {
    t.name: f"""
UPDATE {t.table}
SET reactions = jsonb_set(reactions, ARRAY[$2::text], to_jsonb(coalesce((reactions->>$2)::int, 0) + 1))
WHERE id = $1
"""
    for t in TARGETS
}
COUNT_DOWN_SQL = {
    t.name: f"""
UPDATE {t.table} SET reactions = CASE WHEN coalesce((reactions->>$2)::int, 0) > 1
    THEN jsonb_set(reactions, ARRAY[$2::text], to_jsonb((reactions->>$2)::int - 1)) ELSE reactions - $2::text END
WHERE id = $1
"""
    for t in TARGETS
}
COUNTS_SQL = {t.name: f"SELECT reactions FROM {t.table} WHERE id = $1" for t in TARGETS}


def json_dict(value: Any) -> dict[str, Any]:
    """A jsonb object from a pool with the json codec (a dict) or a bare connection (its text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def check_kind(kind: str) -> None:
    """422 for a kind of reaction there is not."""
    if kind not in REACTION_KINDS:
        raise invalid("kind", f"must be one of: {', '.join(REACTION_KINDS)}")


def not_given(target: Target) -> ApiError:
    return ApiError(404, "not_found", f"You have not given that reaction to this {target.name}.")


async def my_reactions(
    conn: asyncpg.Connection, who: Session | None, target: Target, ids: Sequence[int]
) -> dict[int, set[str]]:
    """The kinds of reaction the viewer gave to each of these writings."""
    if who is None or not ids:
        return {}
    given: dict[int, set[str]] = {}
    for row in await conn.fetch(GIVEN_SQL[target.name], who.user_id, list(ids)):
        given.setdefault(row["id"], set()).add(row["kind"])
    return given


async def state(conn: asyncpg.Connection, who: Session, target: Target, writing_id: int) -> dict[str, Any]:
    """A writing's counts and the viewer's own reactions: what the endpoints answer."""
    counts = await conn.fetchval(COUNTS_SQL[target.name], writing_id)
    given = await my_reactions(conn, who, target, [writing_id])
    return {"reactions": json_dict(counts), "my_reactions": sorted(given.get(writing_id, set()))}


async def add(conn: asyncpg.Connection, who: Session, writing: Writing, kind: str) -> tuple[bool, dict[str, Any]]:
    """Give a reaction (kind checked, writing visible); (False, state) when it was already given,
    so repeating it changes nothing."""
    target = writing.target
    added = await conn.fetchval(ADD_SQL[target.name], writing.id, who.user_id, kind)
    if added is not None:
        await conn.execute(COUNT_UP_SQL[target.name], writing.id, kind)
        await _counted(conn, who, writing, kind, 1)
    return added is not None, await state(conn, who, target, writing.id)


async def remove(conn: asyncpg.Connection, who: Session, writing: Writing, kind: str) -> dict[str, Any]:
    """Take back a reaction; 404 when it was not given."""
    target = writing.target
    removed = await conn.fetchval(REMOVE_SQL[target.name], writing.id, who.user_id, kind)
    if removed is None:
        raise not_given(target)
    await conn.execute(COUNT_DOWN_SQL[target.name], writing.id, kind)
    await _counted(conn, who, writing, kind, -1)
    return await state(conn, who, target, writing.id)


async def _counted(conn: asyncpg.Connection, who: Session, writing: Writing, kind: str, change: int) -> None:
    """The container's count, and the event, of a reaction given (+1) or taken back (-1)."""
    target = writing.target
    if target.container_reactions_sql:
        await conn.execute(target.container_reactions_sql, writing.container_id, change)
    if not target.events:
        return
    event = ReactionAdded if change > 0 else ReactionRemoved
    await write_event(
        conn,
        event(
            post_id=writing.id,
            topic_id=writing.container_id,
            post_author_id=writing.author_id,
            user_id=who.user_id,
            kind=kind,
            audience=writing.audience,
        ),
        actor_id=who.user_id,
    )
