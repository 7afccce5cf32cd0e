"""Categories: where topics live, who may read them (access.py), and how admins manage them:
create and change, subcategories (one level deep), archive and bring back, delete, reorder.

A category with `group_ids` is private to those groups and staff; everyone else gets 404 for it
and everything in it. A subcategory is never more open than its parent: under a private parent
its groups are some of the parent's (checked whenever either changes, with both rows locked), so
its own groups say exactly who may read it, and events carry them as its audience. An archived
category stays readable with its topics but takes no new topics or replies; archiving a parent
archives its subcategories with it. Also home of `slugify` and the topic kinds, which topics use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from shared.events import (
    CategoryArchived,
    CategoryCreated,
    CategoryDeleted,
    CategoryEvent,
    CategoryReordered,
    CategoryUnarchived,
    CategoryUpdated,
)
from shared.sessions import Session
from shared.web import ApiError

SLUG_MAX = 60
SLUG_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
COLOUR_PATTERN = r"#?[0-9a-fA-F]{6}"
DEFAULT_COLOUR = "005eb8"
KINDS = ("discussion", "blog", "case_study", "narrative")  # what a topic is; a category starts new ones as one
ARCHIVED_MESSAGE = "This category is archived: you can read it but not post in it."
MANAGERS_ONLY = "Only admins can manage categories."


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
    c.parent_id, c.default_kind, c.archived_at,
    (SELECT count(*) FROM forum.topics t WHERE t.category_id = c.id AND t.deleted_at IS NULL AND t.status = 'visible')
        AS topics_count
"""
_ORDER = "c.position, lower(c.name), c.id"

# A subcategory under a private parent has some of its groups (see the module docstring), so a
# category's own groups decide who reads it, subcategory or not.
LIST_READABLE_SQL = f"""
SELECT {_CATEGORY_COLUMNS}
FROM forum.categories c
WHERE {access.READABLE_SQL.format(groups="$1", staff="$2")}
ORDER BY {_ORDER}
"""
SUBCATEGORIES_READABLE_SQL = f"""
SELECT {_CATEGORY_COLUMNS}
FROM forum.categories c
WHERE c.parent_id = $3 AND {access.READABLE_SQL.format(groups="$1", staff="$2")}
ORDER BY {_ORDER}
"""
CATEGORY_SQL = f"SELECT {_CATEGORY_COLUMNS} FROM forum.categories c WHERE c.id = $1"
LOCK_CATEGORY_SQL = CATEGORY_SQL + " FOR UPDATE OF c"
# The categories of one level: the top level ($1 NULL) or one parent's subcategories, locked.
LEVEL_SQL = f"""
SELECT {_CATEGORY_COLUMNS} FROM forum.categories c WHERE c.parent_id IS NOT DISTINCT FROM $1::bigint
ORDER BY {_ORDER} FOR UPDATE OF c
"""
NEXT_POSITION_SQL = (
    "SELECT coalesce(max(position) + 1, 0) FROM forum.categories WHERE parent_id IS NOT DISTINCT FROM $1::bigint"
)
HAS_TOPICS_SQL = "SELECT EXISTS (SELECT 1 FROM forum.topics WHERE category_id = $1)"  # deleted ones too
HAS_SUBCATEGORIES_SQL = "SELECT EXISTS (SELECT 1 FROM forum.categories WHERE parent_id = $1)"
LOCK_SUBCATEGORIES_SQL = "SELECT id FROM forum.categories WHERE parent_id = $1 ORDER BY id FOR UPDATE"
SUBCATEGORY_GROUPS_SQL = "SELECT name, group_ids FROM forum.categories WHERE parent_id = $1 ORDER BY lower(name), id"
SLUG_USED_SQL = "SELECT EXISTS (SELECT 1 FROM forum.categories WHERE slug = $1)"
GROUP_NAMES_SQL = "SELECT id, name FROM forum.groups WHERE id = ANY($1::bigint[]) ORDER BY lower(name), id"
INSERT_SQL = """
INSERT INTO forum.categories (name, slug, description, colour, position, group_ids, allow_anonymous, parent_id,
                              default_kind)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
"""
ARCHIVE_SQL = """
UPDATE forum.categories SET archived_at = now()
WHERE (id = $1 OR parent_id = $1) AND archived_at IS NULL
RETURNING id
"""
# Bringing a category back brings back the subcategories archived with it (at the same moment).
UNARCHIVE_SQL = """
UPDATE forum.categories SET archived_at = NULL
WHERE id = $1 OR (parent_id = $1 AND archived_at = $2::timestamptz)
RETURNING id
"""
REORDER_SQL = """
UPDATE forum.categories c SET position = o.n - 1
FROM unnest($1::bigint[]) WITH ORDINALITY AS o(id, n)
WHERE c.id = o.id
"""
# What PATCH may change, each a column of forum.categories.
CHANGEABLE = ("name", "description", "colour", "position", "allow_anonymous", "group_ids", "parent_id", "default_kind")


def update_sql(columns: Sequence[str]) -> str:
    """UPDATE of these columns ($2...) of one category ($1); only names from CHANGEABLE."""
    assert columns and set(columns) <= set(CHANGEABLE), columns
    sets = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=2))
    return f"UPDATE forum.categories SET {sets} WHERE id = $1"


async def list_readable(conn: asyncpg.Connection, who: Session | None) -> list[asyncpg.Record]:
    """Every category the viewer may read (archived ones too), in display order, flat: see arranged()."""
    groups, staff = access.sql_params(who)
    return list(await conn.fetch(LIST_READABLE_SQL, groups, staff))


async def list_readable_subcategories(
    conn: asyncpg.Connection, who: Session | None, parent_id: int
) -> list[asyncpg.Record]:
    """The subcategories of a category that the viewer may read (archived ones too), in display order."""
    groups, staff = access.sql_params(who)
    return list(await conn.fetch(SUBCATEGORIES_READABLE_SQL, groups, staff, parent_id))


async def fetch_category(conn: asyncpg.Connection, category_id: int) -> asyncpg.Record | None:
    """One category by id, readable or not."""
    return await conn.fetchrow(CATEGORY_SQL, category_id)


async def fetch_category_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    """One category by slug, readable or not."""
    return await conn.fetchrow(f"SELECT {_CATEGORY_COLUMNS} FROM forum.categories c WHERE c.slug = $1", slug)


async def readable_category(conn: asyncpg.Connection, who: Session | None, category_id: int) -> asyncpg.Record:
    """The category if the viewer may read it; 404 when missing or private to others."""
    row = await fetch_category(conn, category_id)
    if row is None or not access.groups_readable(who, row["group_ids"]):
        raise ApiError(404, "not_found", "We could not find that category.")
    return row


async def lock_category(conn: asyncpg.Connection, category_id: int) -> asyncpg.Record:
    """The category, locked for the rest of the transaction; 404 when there is none."""
    row = await conn.fetchrow(LOCK_CATEGORY_SQL, category_id)
    if row is None:
        raise ApiError(404, "not_found", "We could not find that category.")
    return row


async def group_names(conn: asyncpg.Connection, group_ids: Sequence[int]) -> dict[int, str]:
    """The names of these groups, by id, in alphabetical order."""
    rows = await conn.fetch(GROUP_NAMES_SQL, list(group_ids))
    return {row["id"]: row["name"] for row in rows}


def arranged(rows: Sequence[asyncpg.Record]) -> list[tuple[asyncpg.Record, list[asyncpg.Record]]]:
    """Rows in display order as a tree: each top-level category with its subcategories. A subcategory
    whose parent is not among the rows (it never happens for readers: see the module docstring)
    stands on its own."""
    ids = {row["id"] for row in rows}
    children: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        if row["parent_id"] in ids:
            children.setdefault(row["parent_id"], []).append(row)
    return [(row, children.get(row["id"], [])) for row in rows if row["parent_id"] not in ids]


# --- posting in a category ------------------------------------------------------------------------


def takes_posts(category: asyncpg.Record | dict[str, Any]) -> bool:
    """Whether a category row takes new topics and replies (access.category_takes_posts)."""
    return access.category_takes_posts(category["archived_at"])


def archived_refusal(field: str | None = None) -> ApiError:
    """The answer to a new topic or reply in an archived category."""
    fields = {field: "is archived: you can read it but not post in it"} if field else None
    return ApiError(409, "category_archived", ARCHIVED_MESSAGE, fields)


async def check_takes_topics(conn: asyncpg.Connection, category_id: int) -> None:
    """409 when the category is archived. The row is read again under a share lock, so archiving (or
    deleting) it waits for the new topic's transaction, or the new topic sees that it happened."""
    row = await conn.fetchrow("SELECT archived_at FROM forum.categories WHERE id = $1 FOR SHARE", category_id)
    if row is None:
        raise ApiError(404, "not_found", "We could not find that category.")
    if not takes_posts(row):
        raise archived_refusal("category_id")


# --- rules ---------------------------------------------------------------------------------


def normal_colour(value: str) -> str:
    """Colours are kept as six lowercase hex digits, without '#'."""
    return value.lstrip("#").lower()


def require_manager(who: Session) -> None:
    """Only admins manage categories: 403 for anyone else."""
    access.require_admin(who, MANAGERS_ONLY)


def _invalid(problems: dict[str, str]) -> ApiError:
    return ApiError(422, "invalid", "Some fields need attention.", problems)


async def check_group_ids(conn: asyncpg.Connection, group_ids: list[int] | None) -> list[int]:
    """Sorted unique ids of existing groups; 422 when one is not a group."""
    wanted = sorted(set(group_ids or []))
    problem = await _group_problem(conn, wanted)
    if problem:
        raise _invalid({"group_ids": problem})
    return wanted


async def _group_problem(conn: asyncpg.Connection, wanted: list[int]) -> str | None:
    if any(not 0 < g < access.MAX_ID for g in wanted):
        return "must be ids of groups"
    if len(await group_names(conn, wanted)) != len(wanted):
        return "must be ids of existing groups"
    return None


def _quoted_names(names: Sequence[str]) -> str:
    quoted = [f"\u2018{name}\u2019" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


async def field_problems(
    conn: asyncpg.Connection, current: asyncpg.Record | None, data: dict[str, Any]
) -> dict[str, str]:
    """Every problem with creating (`current` None) or changing a category as `data` asks, at once:
    groups that do not exist, a parent that cannot be one, groups that would make it more open than
    its parent or leave one of its subcategories more open than it. Locks the parent it names."""
    problems: dict[str, str] = {}
    groups = sorted(set(data["group_ids"])) if data.get("group_ids") is not None else None
    if groups is not None and (problem := await _group_problem(conn, groups)):
        problems["group_ids"] = problem
        groups = None
    if groups is None:
        groups = list(current["group_ids"]) if current is not None else []
    parent_id = data["parent_id"] if "parent_id" in data else (current["parent_id"] if current else None)
    parent = None
    if parent_id is not None:
        parent = await conn.fetchrow(LOCK_CATEGORY_SQL, parent_id)
        if problem := await _parent_problem(conn, current, parent, parent_id):
            problems["parent_id"] = problem
            parent = None
    if "group_ids" not in problems:
        problem = await _narrower_than_parent(conn, parent, groups) if parent is not None else None
        if problem is None and current is not None:
            problem = await _children_problem(conn, current, groups)
        if problem:
            problems["group_ids"] = problem
    return problems


async def _parent_problem(
    conn: asyncpg.Connection, current: asyncpg.Record | None, parent: asyncpg.Record | None, parent_id: int
) -> str | None:
    """Why `parent` cannot be the parent of the category (None when it can). A parent kept as it was
    is checked again too: that costs little and keeps the rule whole."""
    if parent is None:
        return "must be an existing category"
    if current is not None and parent_id == current["id"]:
        return "cannot be the category itself"
    if parent["parent_id"] is not None:
        return "is a subcategory itself: choose a top-level category, as subcategories go one level deep"
    if current is not None and await conn.fetchval(HAS_SUBCATEGORIES_SQL, current["id"]):
        return "cannot be set: this category has subcategories of its own, and subcategories go one level deep"
    moved = current is None or current["parent_id"] != parent_id
    if moved and parent["archived_at"] is not None:
        return f"is archived: choose a category that is not, or bring \u2018{parent['name']}\u2019 back first"
    return None


async def _narrower_than_parent(conn: asyncpg.Connection, parent: asyncpg.Record, groups: list[int]) -> str | None:
    """A subcategory of a private parent must be private to some of the parent's groups."""
    parent_groups = list(parent["group_ids"])
    if not parent_groups or (groups and set(groups) <= set(parent_groups)):
        return None
    names = list((await group_names(conn, parent_groups)).values())
    return (
        f"must be some of the groups of \u2018{parent['name']}\u2019 ({_quoted_names(names)}): "
        "a subcategory of a private category cannot be read by anyone who cannot read its parent"
    )


async def _children_problem(conn: asyncpg.Connection, current: asyncpg.Record, groups: list[int]) -> str | None:
    """New groups for a parent must still include every subcategory's (naming the first that would be
    more open than its parent)."""
    if not groups:
        return None  # an open parent is never narrower than its subcategories
    children = await conn.fetch(SUBCATEGORY_GROUPS_SQL, current["id"])
    for child in children:
        if not child["group_ids"] or not set(child["group_ids"]) <= set(groups):
            return (
                f"would leave its subcategory \u2018{child['name']}\u2019 readable by people who cannot read this "
                "category: change that subcategory's groups first"
            )
    return None


def audit_state(row: asyncpg.Record | dict[str, Any], keys: Sequence[str] = ()) -> dict[str, Any]:
    """What the audit log keeps of a category: its name, and the values of `keys`."""
    state = {"name": row["name"]}
    for key in keys:
        value = row[key]
        state[key] = list(value) if key == "group_ids" else value
    return state


# --- events ----------------------------------------------------------------------------------


def _category_event(event_type: type[CategoryEvent], row: asyncpg.Record) -> CategoryEvent:
    return event_type(
        category_id=row["id"],
        slug=row["slug"],
        name=row["name"],
        audience=access.groups_audience(list(row["group_ids"])),
    )


async def record_category_event(conn: asyncpg.Connection, row: asyncpg.Record, who: Session, *, created: bool) -> None:
    """Tell search and notify about a category and its audience, in the same transaction."""
    event = _category_event(CategoryCreated if created else CategoryUpdated, row)
    await write_event(conn, event, actor_id=who.user_id)


# --- actions ---------------------------------------------------------------------------------


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
    parent_id: int | None = None,
    default_kind: str = "discussion",
) -> asyncpg.Record:
    """A new category row (409 when the slug is taken)."""
    try:
        category_id = await conn.fetchval(
            INSERT_SQL, name, slug, description, colour, position, group_ids, allow_anonymous, parent_id, default_kind
        )
    except asyncpg.UniqueViolationError:
        raise slug_taken(slug) from None
    row = await fetch_category(conn, category_id)
    assert row is not None
    return row


def slug_taken(slug: str) -> ApiError:
    """The 409 for an address another category has."""
    return ApiError(
        409, "slug_taken", f'The address "{slug}" is already used by another category.', {"slug": "is already used"}
    )


async def create_category(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """Check and create a category from CATEGORY_IN data: every field problem at once (422), or 409
    when only its address is taken; category.created and the audit entry in the same transaction."""
    require_manager(who)
    slug = data.get("slug") or slugify(data["name"], fallback="category")
    problems = await field_problems(conn, None, data)
    if problems:
        if await conn.fetchval(SLUG_USED_SQL, slug):
            problems["slug"] = "is already used"
        raise _invalid(problems)
    row = await insert_category(
        conn,
        name=data["name"],
        slug=slug,
        description=data.get("description") or "",
        colour=normal_colour(data.get("colour") or DEFAULT_COLOUR),
        position=data.get("position") or 0,
        group_ids=sorted(set(data.get("group_ids") or [])),
        allow_anonymous=bool(data.get("allow_anonymous")),
        parent_id=data.get("parent_id"),
        default_kind=data.get("default_kind") or "discussion",
    )
    await record_category_event(conn, row, who, created=True)
    await audit.record_by(conn, who, "category.create", row["id"], after=audit_state(row, CHANGEABLE))
    return row


def _wanted_changes(current: asyncpg.Record, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of a CATEGORY_PATCH that differ from the category as it is, in their stored form."""
    # Only a parent may be taken away (null: top level); null for anything else is no change.
    wanted = {key: data[key] for key in CHANGEABLE if key in data and (data[key] is not None or key == "parent_id")}
    if wanted.get("colour") is not None:
        wanted["colour"] = normal_colour(wanted["colour"])
    if "group_ids" in wanted:
        wanted["group_ids"] = sorted(set(wanted["group_ids"] or []))
    current_values = {key: list(current[key]) if key == "group_ids" else current[key] for key in wanted}
    return {key: value for key, value in wanted.items() if value != current_values[key]}


async def change_category(
    conn: asyncpg.Connection, who: Session, category_id: int, data: dict[str, Any]
) -> asyncpg.Record:
    """Check and apply a CATEGORY_PATCH: every field problem at once (422); only what differs is
    written, with category.updated (search and notify re-audience) and the audit entry."""
    require_manager(who)
    current = await lock_category(conn, category_id)
    problems = await field_problems(conn, current, data)
    if problems:
        raise _invalid(problems)
    changes = _wanted_changes(current, data)
    if "parent_id" in changes and "position" not in data:
        changes["position"] = await conn.fetchval(NEXT_POSITION_SQL, changes["parent_id"])  # last of its new level
    if not changes:
        return current
    await conn.execute(update_sql(list(changes)), category_id, *changes.values())
    row = await fetch_category(conn, category_id)
    assert row is not None
    await record_category_event(conn, row, who, created=False)
    await audit.record_by(
        conn,
        who,
        "category.update",
        category_id,
        before=audit_state(current, list(changes)),
        after=audit_state(row, list(changes)),
    )
    return row


async def archive_category(conn: asyncpg.Connection, who: Session, category_id: int) -> asyncpg.Record:
    """Archive a category and its subcategories not yet archived: they stay readable and take no new
    topics or replies. Already archived: nothing changes."""
    require_manager(who)
    current = await lock_category(conn, category_id)
    await conn.fetch(LOCK_SUBCATEGORIES_SQL, category_id)
    for archived_id in _parent_first(category_id, await conn.fetch(ARCHIVE_SQL, category_id)):
        await _record_switch(conn, who, archived_id, CategoryArchived, "category.archive", archived=True)
    return await fetch_category(conn, category_id) or current


async def unarchive_category(conn: asyncpg.Connection, who: Session, category_id: int) -> asyncpg.Record:
    """Bring back an archived category, with the subcategories archived with it; 409 for a subcategory
    whose parent is still archived. Not archived: nothing changes."""
    require_manager(who)
    current = await lock_category(conn, category_id)
    if current["archived_at"] is None:
        return current
    if current["parent_id"] is not None:
        parent = await conn.fetchrow(LOCK_CATEGORY_SQL, current["parent_id"])
        if parent is not None and parent["archived_at"] is not None:
            raise ApiError(
                409,
                "parent_archived",
                f"\u2018{current['name']}\u2019 is a subcategory of \u2018{parent['name']}\u2019, which is archived: "
                f"bring back \u2018{parent['name']}\u2019 first.",
            )
    await conn.fetch(LOCK_SUBCATEGORIES_SQL, category_id)
    for restored in _parent_first(category_id, await conn.fetch(UNARCHIVE_SQL, category_id, current["archived_at"])):
        await _record_switch(conn, who, restored, CategoryUnarchived, "category.unarchive", archived=False)
    return await fetch_category(conn, category_id) or current


def _parent_first(category_id: int, rows: Sequence[asyncpg.Record]) -> list[int]:
    """The ids of rows a statement changed: the category first, then its subcategories by id."""
    return sorted((row["id"] for row in rows), key=lambda i: (i != category_id, i))


async def _record_switch(
    conn: asyncpg.Connection,
    who: Session,
    category_id: int,
    event_type: type[CategoryEvent],
    action: str,
    *,
    archived: bool,
) -> None:
    row = await fetch_category(conn, category_id)
    assert row is not None
    await write_event(conn, _category_event(event_type, row), actor_id=who.user_id)
    await audit.record_by(
        conn,
        who,
        action,
        category_id,
        before={"name": row["name"], "archived": not archived},
        after={"name": row["name"], "archived": archived},
    )


async def deletion_refusal(conn: asyncpg.Connection, row: asyncpg.Record) -> ApiError | None:
    """Why a category cannot be deleted (None when it can): it has held a topic (deleted ones count:
    their rows stay), or it has subcategories."""
    if await conn.fetchval(HAS_TOPICS_SQL, row["id"]):
        return ApiError(
            409,
            "has_topics",
            f"\u2018{row['name']}\u2019 has topics: archive it instead. Archiving keeps its topics readable "
            "and stops new posts.",
        )
    if await conn.fetchval(HAS_SUBCATEGORIES_SQL, row["id"]):
        return ApiError(
            409,
            "has_subcategories",
            f"\u2018{row['name']}\u2019 has subcategories: move or delete them first, or archive it instead.",
        )
    return None


async def delete_category(conn: asyncpg.Connection, who: Session, category_id: int) -> None:
    """Delete a category that never held a topic and has no subcategories (409 otherwise)."""
    require_manager(who)
    row = await lock_category(conn, category_id)  # a new topic's share lock makes this wait, and v.v.
    refusal = await deletion_refusal(conn, row)
    if refusal is not None:
        raise refusal
    await conn.execute("DELETE FROM forum.categories WHERE id = $1", category_id)
    await write_event(conn, CategoryDeleted(category_id=category_id, slug=row["slug"]), actor_id=who.user_id)
    await audit.record_by(conn, who, "category.delete", category_id, before=audit_state(row, ("slug",)))


# --- order ---------------------------------------------------------------------------------


Level = tuple[asyncpg.Record | None, list[asyncpg.Record]]  # a level's parent (None: the top) and its categories


async def level_of(conn: asyncpg.Connection, parent_id: int | None) -> Level:
    """A level's parent (None for the top) and its categories in order, locked; 422 when the parent
    is not a top-level category."""
    parent = None
    if parent_id is not None:
        parent = await conn.fetchrow(LOCK_CATEGORY_SQL, parent_id)
        if parent is None or parent["parent_id"] is not None:
            raise _invalid({"parent_id": "must be a top-level category, or null for the top level"})
    return parent, list(await conn.fetch(LEVEL_SQL, parent_id))


def order_problem(level_ids: Sequence[int], wanted: Sequence[int]) -> str | None:
    """Why `wanted` is not a new order of exactly the categories of a level (None when it is)."""
    repeated = sorted({i for i in wanted if list(wanted).count(i) > 1})
    missing = [i for i in level_ids if i not in wanted]
    strangers = sorted({i for i in wanted if i not in level_ids})
    parts = []
    if repeated:
        parts.append("repeats " + ", ".join(map(str, repeated)))
    if missing:
        parts.append("leaves out " + ", ".join(map(str, missing)))
    if strangers:
        parts.append("has " + ", ".join(map(str, strangers)) + ", not categories of this level")
    if not parts:
        return None
    return "must list every category of the level once: it " + "; it ".join(parts)


async def reorder_categories(
    conn: asyncpg.Connection, who: Session, parent_id: int | None, category_ids: Sequence[int]
) -> list[asyncpg.Record]:
    """Put the categories of one level (the top level, or one parent's subcategories) in a new order:
    every one of them, each once (422 otherwise); positions are rewritten 0, 1, 2... Returns the level."""
    require_manager(who)
    parent, level = await level_of(conn, parent_id)
    before = [row["id"] for row in level]
    problem = order_problem(before, category_ids)
    if problem:
        raise _invalid({"category_ids": problem})
    if list(category_ids) != before:
        await conn.execute(REORDER_SQL, list(category_ids))
        await write_event(conn, CategoryReordered(category_ids=list(category_ids)), actor_id=who.user_id)
        where = {"parent": parent["name"] if parent else None}
        await audit.record_by(
            conn,
            who,
            "category.reorder",
            parent_id,
            before={**where, "category_ids": before},
            after={**where, "category_ids": list(category_ids)},
        )
    return list(await conn.fetch(LEVEL_SQL, parent_id))


def moved(order: Sequence[int], skipped: set[int], category_id: int, direction: str) -> list[int]:
    """`order` with a category swapped with its neighbour up or down, passing over `skipped` ones (the
    archived, which the admin list shows apart); unchanged at either end."""
    ids = list(order)
    step = -1 if direction == "up" else 1
    at = ids.index(category_id)
    other = at + step
    while 0 <= other < len(ids) and ids[other] in skipped:
        other += step
    if 0 <= other < len(ids):
        ids[at], ids[other] = ids[other], ids[at]
    return ids


async def move_category(conn: asyncpg.Connection, who: Session, category_id: int, direction: str) -> asyncpg.Record:
    """Move a category one place up or down among the categories of its level that are not archived."""
    require_manager(who)
    row = await lock_category(conn, category_id)
    _, level = await level_of(conn, row["parent_id"])
    order = [r["id"] for r in level]
    skipped = {r["id"] for r in level if r["archived_at"] is not None and r["id"] != category_id}
    await reorder_categories(conn, who, row["parent_id"], moved(order, skipped, category_id, direction))
    return row
