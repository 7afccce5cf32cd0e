"""Categories: where topics live, who may read them (access.py), and how admins manage them.

A category with `group_ids` is private to those groups and staff; everyone else gets
404 for it and everything in it. Also home of `slugify`, which topics use too.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import asyncpg

from services.forum import access
from services.forum.outbox import write_event
from shared.events import CategoryCreated, CategoryUpdated
from shared.sessions import Session
from shared.web import ApiError

SLUG_MAX = 60
SLUG_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
COLOUR_PATTERN = r"#?[0-9a-fA-F]{6}"


def slugify(text: str, *, fallback: str = "topic") -> str:
    """Lowercase ASCII words joined by "-", at most 60 characters; `fallback` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = re.findall(r"[a-z0-9]+", ascii_text)
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX:
            break
        slug = candidate
    if not slug and words:  # one very long word
        slug = words[0][:SLUG_MAX]
    return slug or fallback


# --- SQL -----------------------------------------------------------------------------------

_CATEGORY_COLUMNS = """
    c.id, c.name, c.slug, c.description, c.colour, c.position, c.group_ids, c.created_at, c.allow_anonymous,
    (SELECT count(*) FROM forum.topics t WHERE t.category_id = c.id AND t.deleted_at IS NULL AND t.status = 'visible')
        AS topics_count
"""

LIST_READABLE_SQL = f"""
SELECT {_CATEGORY_COLUMNS}
FROM forum.categories c
WHERE {access.READABLE_SQL.format(groups="$1", staff="$2")}
ORDER BY c.position, lower(c.name), c.id
"""


async def list_readable(conn: asyncpg.Connection, who: Session | None) -> list[asyncpg.Record]:
    """Every category the viewer may read, in display order."""
    groups, staff = access.sql_params(who)
    return list(await conn.fetch(LIST_READABLE_SQL, groups, staff))


async def fetch_category(conn: asyncpg.Connection, category_id: int) -> asyncpg.Record | None:
    """One category by id, readable or not."""
    return await conn.fetchrow(f"SELECT {_CATEGORY_COLUMNS} FROM forum.categories c WHERE c.id = $1", category_id)


async def fetch_category_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """One category by slug, readable or not."""
    return await conn.fetchrow(f"SELECT {_CATEGORY_COLUMNS} FROM forum.categories c WHERE c.slug = $1", slug)


async def readable_category(conn: asyncpg.Connection, who: Session | None, category_id: int) -> asyncpg.Record:
    """The category if the viewer may read it; 404 when missing or private to others."""
    row = await fetch_category(conn, category_id)
    if row is None or not access.groups_readable(who, row["group_ids"]):
        raise ApiError(404, "not_found", "We could not find that category.")
    return row


async def insert_category(
    conn: asyncpg.Connection,
    *,
    name: str,
    slug: str,
    description: str,
    colour: str,
    position: int,
    group_ids: list[int],
    allow_anonymous: bool = False,
) -> asyncpg.Record:
    """A new category row (409 when the slug is taken)."""
    try:
        category_id = await conn.fetchval(
            "INSERT INTO forum.categories (name, slug, description, colour, position, group_ids, allow_anonymous) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            name,
            slug,
            description,
            colour,
            position,
            group_ids,
            allow_anonymous,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "slug_taken", f'The address "{slug}" is already used by another category.', {"slug": "is already used"}
        ) from None
    row = await fetch_category(conn, category_id)
    assert row is not None
    return row


async def update_category(conn: asyncpg.Connection, category_id: int, changes: dict[str, Any]) -> asyncpg.Record:
    """Change some of name, description, colour, position; 404 when there is no such category."""
    row = await conn.fetchrow(
        "UPDATE forum.categories SET name = coalesce($2, name), description = coalesce($3, description), "
        "colour = coalesce($4, colour), position = coalesce($5, position), "
        "allow_anonymous = coalesce($6, allow_anonymous), group_ids = coalesce($7::bigint[], group_ids) "
        "WHERE id = $1 RETURNING id",
        category_id,
        changes.get("name"),
        changes.get("description"),
        changes.get("colour"),
        changes.get("position"),
        changes.get("allow_anonymous"),
        changes.get("group_ids"),
    )
    if row is None:
        raise ApiError(404, "not_found", "We could not find that category.")
    updated = await fetch_category(conn, category_id)
    assert updated is not None
    return updated


# --- rules ---------------------------------------------------------------------------------


def normal_colour(value: str) -> str:
    """Colours are kept as six lowercase hex digits, without '#'."""
    return value.lstrip("#").lower()


async def check_group_ids(conn: asyncpg.Connection, group_ids: list[int] | None) -> list[int]:
    """Sorted unique ids of existing groups; 422 when one is not a group."""
    wanted = sorted(set(group_ids or []))
    if any(not 0 < g < access.MAX_ID for g in wanted):
        raise ApiError(422, "invalid", "Some fields need attention.", {"group_ids": "must be ids of groups"})
    found = await conn.fetchval(
        "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM forum.groups WHERE id = ANY($1::bigint[])", wanted
    )
    if list(found) != wanted:
        raise ApiError(422, "invalid", "Some fields need attention.", {"group_ids": "must be ids of existing groups"})
    return wanted


async def record_category_event(conn: asyncpg.Connection, row: asyncpg.Record, who: Session, *, created: bool) -> None:
    """Tell search and notify about a category and its audience, in the same transaction."""
    event_type = CategoryCreated if created else CategoryUpdated
    event = event_type(
        category_id=row["id"],
        slug=row["slug"],
        name=row["name"],
        audience=access.groups_audience(list(row["group_ids"])),
    )
    await write_event(conn, event, actor_id=who.user_id)


MANAGERS_ONLY = "Only admins can manage categories."


def require_manager(who: Session) -> None:
    """Only admins manage categories: 403 for anyone else."""
    access.require_admin(who, MANAGERS_ONLY)


async def create_category(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """Check and create a category from CATEGORY_IN data."""
    require_manager(who)
    group_ids = await check_group_ids(conn, data.get("group_ids"))
    row = await insert_category(
        conn,
        name=data["name"],
        slug=data.get("slug") or slugify(data["name"], fallback="category"),
        description=data.get("description") or "",
        colour=normal_colour(data.get("colour") or "005eb8"),
        position=data.get("position") or 0,
        group_ids=group_ids,
        allow_anonymous=bool(data.get("allow_anonymous")),
    )
    await record_category_event(conn, row, who, created=True)
    return row


async def change_category(
    conn: asyncpg.Connection, who: Session, category_id: int, data: dict[str, Any]
) -> asyncpg.Record:
    """Check and apply a CATEGORY_PATCH; records category.updated (search and notify re-audience)."""
    require_manager(who)
    if "group_ids" in data:
        data["group_ids"] = await check_group_ids(conn, data["group_ids"])
    if "colour" in data:
        data["colour"] = normal_colour(data["colour"])
    row = await update_category(conn, category_id, data)
    await record_category_event(conn, row, who, created=False)
    return row
