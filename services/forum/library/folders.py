"""The library's folders: ordered, described, one level of subfolders, may belong to groups;
their SQL, the tree the library shows, and the admins' actions on them. Who may read a folder
is access.folder_readable; everything in a folder follows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.forum import access
from services.forum.accounts import accounts
from services.forum.groups import groups
from services.forum.outbox import write_event
from shared.events import FolderUpdated
from shared.sessions import Session
from shared.web import ApiError

FOLDER_NAME_MAX, FOLDER_DESCRIPTION_MAX = 80, 1000


# --- the library's answers and fields ------------------------------------------------------------------------------


def not_found(what: str = "document") -> ApiError:
    """404 for what the library does not have, or the viewer may not read."""
    return ApiError(404, "not_found", f"We could not find that {what}.")


def invalid(problems: dict[str, str]) -> ApiError:
    """422 naming the fields that need attention."""
    return ApiError(422, "invalid", "Some fields need attention.", problems)


def clean_field(value: str | None, name: str, limit: int, *, multiline: bool = False) -> str:
    """A text field trimmed, within `limit` characters and free of control characters; 422 otherwise."""
    value = (value or "").replace("\r\n", "\n").strip()
    if len(value) > limit:
        raise invalid({name: f"must be {limit} characters or fewer"})
    if accounts.has_controls(value, allow_newlines=multiline):
        raise invalid({name: "cannot contain control characters or text-direction marks"})
    return value


# --- SQL and reading --------------------------------------------------------------------------------------------

_FOLDER_SELECT = """
SELECT f.id, f.parent_id, f.name, f.description, f.position, f.group_ids, f.created_at,
       coalesce(p.group_ids, '{}') AS parent_group_ids, p.name AS parent_name,
       (SELECT count(*) FROM forum.documents d WHERE d.folder_id = f.id AND d.deleted_at IS NULL) AS documents_count,
       (SELECT coalesce(sum(d.downloads_count), 0) FROM forum.documents d
         WHERE d.folder_id = f.id AND d.deleted_at IS NULL) AS downloads_count,
       (SELECT coalesce(sum(d.previews_count), 0) FROM forum.documents d
         WHERE d.folder_id = f.id AND d.deleted_at IS NULL) AS previews_count
FROM forum.folders f LEFT JOIN forum.folders p ON p.id = f.parent_id
"""
READABLE_FOLDERS_SQL = f"""{_FOLDER_SELECT}
WHERE {access.FOLDER_READABLE_SQL.format(groups="$1", staff="$2")}
ORDER BY f.position, lower(f.name), f.id
"""
FOLDER_SQL = f"{_FOLDER_SELECT} WHERE f.id = $1"
FOLDER_AND_SUBFOLDERS_SQL = f"{_FOLDER_SELECT} WHERE f.id = $1 OR f.parent_id = $1 ORDER BY f.id"
INSERT_FOLDER_SQL = """
INSERT INTO forum.folders (parent_id, name, description, position, group_ids) VALUES ($1, $2, $3, $4, $5) RETURNING id
"""
UPDATE_FOLDER_SQL = """
UPDATE forum.folders SET name = $2, description = $3, position = $4, group_ids = $5, updated_at = now() WHERE id = $1
"""
SUBFOLDERS_SQL = "SELECT name, group_ids FROM forum.folders WHERE parent_id = $1"
HAS_SUBFOLDERS_SQL = "SELECT EXISTS (SELECT 1 FROM forum.folders WHERE parent_id = $1)"
HAS_DOCUMENTS_SQL = "SELECT EXISTS (SELECT 1 FROM forum.documents WHERE folder_id = $1)"


def folder_url(folder_id: int) -> str:
    """A folder's page."""
    return f"/library/folders/{folder_id}"


def folder_groups(row: asyncpg.Record) -> list[int]:
    """The groups that may read a folder: its own, or its parent's when it has none."""
    return list(row["group_ids"]) or list(row["parent_group_ids"])


def folder_audience(row: asyncpg.Record) -> list[str]:
    """Who may read a folder (or a document, whose row carries its folder's groups)."""
    return access.folder_audience(row["group_ids"], row["parent_group_ids"])


def readable(who: Session | None, row: asyncpg.Record) -> bool:
    """Whether the viewer may read a folder, or a document whose row carries its folder's groups."""
    return access.folder_readable(who, row["group_ids"], row["parent_group_ids"])


async def fetch_folder(conn: asyncpg.Connection, folder_id: int) -> asyncpg.Record | None:
    """One folder with its parent's groups and its counts, readable or not."""
    return await conn.fetchrow(FOLDER_SQL, folder_id)


async def readable_folder(conn: asyncpg.Connection, who: Session | None, folder_id: int) -> asyncpg.Record:
    """The folder if the viewer may read it; 404 otherwise."""
    row = await fetch_folder(conn, folder_id) if 0 < folder_id < access.MAX_ID else None
    if row is None or not readable(who, row):
        raise not_found("folder")
    return row


async def readable_folders(conn: asyncpg.Connection, who: Session | None) -> list[asyncpg.Record]:
    """Every folder the viewer may read, in display order."""
    groups_, staff = access.sql_params(who)
    return list(await conn.fetch(READABLE_FOLDERS_SQL, groups_, staff))


@dataclass
class FolderNode:
    """A folder in the library's tree, with its counts and (for a top-level folder) its subfolders."""

    row: asyncpg.Record
    children: list[FolderNode] = field(default_factory=list)

    @property
    def documents_count(self) -> int:
        return int(self.row["documents_count"]) + sum(c.documents_count for c in self.children)

    @property
    def downloads_count(self) -> int:
        return int(self.row["downloads_count"]) + sum(c.downloads_count for c in self.children)

    @property
    def previews_count(self) -> int:
        return int(self.row["previews_count"]) + sum(c.previews_count for c in self.children)


def folder_tree(rows: Iterable[asyncpg.Record]) -> list[FolderNode]:
    """Top-level folders with their subfolders; counts include the subfolders the viewer can read."""
    nodes = {row["id"]: FolderNode(row) for row in rows}
    top: list[FolderNode] = []
    for node in nodes.values():
        parent = nodes.get(node.row["parent_id"]) if node.row["parent_id"] else None
        if node.row["parent_id"] is None:
            top.append(node)
        elif parent is not None:
            parent.children.append(node)
    return top


async def folder_node(conn: asyncpg.Connection, who: Session | None, folder: asyncpg.Record) -> FolderNode:
    """A readable folder as a node of the viewer's tree: with its readable subfolders and their counts."""
    nodes = [n for n in folder_tree(await readable_folders(conn, who)) if n.row["id"] == folder["id"]]
    return nodes[0] if nodes else FolderNode(folder)


# --- actions (admins) ---------------------------------------------------------------------------------------------


def require_admin(who: Session) -> None:
    """Only admins manage folders (403 with the library's own words for everyone else)."""
    access.require_admin(who, "Only admins can manage the library's folders.")


async def _check_parent(conn: asyncpg.Connection, parent_id: int | None, group_ids: list[int]) -> list[int]:
    """The parent's groups; 422 when it is not a top-level folder, or the groups are not among its own."""
    if parent_id is None:
        return []
    parent = await fetch_folder(conn, parent_id) if parent_id < access.MAX_ID else None
    if parent is None:
        raise invalid({"parent_id": "must be the id of a folder"})
    if parent["parent_id"] is not None:
        raise invalid({"parent_id": "Folders have one level of subfolders: choose a top-level folder"})
    own = list(parent["group_ids"])
    if own and group_ids and not set(group_ids) <= set(own):
        raise invalid({"group_ids": "A subfolder can only be limited to groups its parent folder is limited to"})
    return own


async def _check_children(conn: asyncpg.Connection, folder_id: int, group_ids: list[int]) -> None:
    """422 when a subfolder is limited to groups outside the folder's new ones."""
    if not group_ids:
        return
    for row in await conn.fetch(SUBFOLDERS_SQL, folder_id):
        if row["group_ids"] and not set(row["group_ids"]) <= set(group_ids):
            raise invalid(
                {"group_ids": f"The subfolder \u201c{row['name']}\u201d is limited to other groups: change it first"}
            )


def given_or_current(
    data: dict[str, Any], current: asyncpg.Record | None, name: str, limit: int, *, multiline: bool = False
) -> str:
    """A text field being set or changed: cleaned when given (or when there is nothing current), else as it is."""
    if current is not None and name not in data:
        return str(current[name])
    return clean_field(data.get(name), name, limit, multiline=multiline)


def _name_and_description(data: dict[str, Any], current: asyncpg.Record | None) -> tuple[str, str]:
    """The cleaned name (422 when empty) and description: the ones given, else the folder's current ones."""
    name = given_or_current(data, current, "name", FOLDER_NAME_MAX)
    if not name:
        raise invalid({"name": "is required"})
    return name, given_or_current(data, current, "description", FOLDER_DESCRIPTION_MAX, multiline=True)


async def _folder_event(conn: asyncpg.Connection, folder_id: int, actor: int) -> asyncpg.Record:
    """folder.updated for a folder and its subfolders (their audience may follow it); the folder's row."""
    rows = await conn.fetch(FOLDER_AND_SUBFOLDERS_SQL, folder_id)
    for row in rows:
        await write_event(
            conn,
            FolderUpdated(
                folder_id=row["id"], parent_id=row["parent_id"], name=row["name"], audience=folder_audience(row)
            ),
            actor_id=actor,
        )
    return next(row for row in rows if row["id"] == folder_id)


async def create_folder(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """A new folder (admins); a subfolder of a top-level folder when parent_id is given."""
    require_admin(who)
    name, description = _name_and_description(data, None)
    group_ids = await groups.check_group_ids(conn, data.get("group_ids"))
    await _check_parent(conn, data.get("parent_id"), group_ids)
    folder_id = await conn.fetchval(
        INSERT_FOLDER_SQL, data.get("parent_id"), name, description, data.get("position") or 0, group_ids
    )
    return await _folder_event(conn, folder_id, who.user_id)


async def update_folder(conn: asyncpg.Connection, who: Session, folder_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Change a folder's name, description, position or groups (admins)."""
    require_admin(who)
    current = await conn.fetchrow("SELECT * FROM forum.folders WHERE id = $1 FOR UPDATE", folder_id)
    if current is None:
        raise not_found("folder")
    name, description = _name_and_description(data, current)
    group_ids = list(current["group_ids"])
    if "group_ids" in data:
        group_ids = await groups.check_group_ids(conn, data["group_ids"])
        await _check_parent(conn, current["parent_id"], group_ids)
        await _check_children(conn, folder_id, group_ids)
    position = data.get("position", current["position"])
    await conn.execute(UPDATE_FOLDER_SQL, folder_id, name, description, position, group_ids)
    return await _folder_event(conn, folder_id, who.user_id)


async def delete_folder(conn: asyncpg.Connection, who: Session, folder_id: int) -> None:
    """Delete an empty folder (admins); 409 while it has documents or subfolders."""
    require_admin(who)
    if await fetch_folder(conn, folder_id) is None:
        raise not_found("folder")
    if await conn.fetchval(HAS_SUBFOLDERS_SQL, folder_id) or await conn.fetchval(HAS_DOCUMENTS_SQL, folder_id):
        raise ApiError(409, "not_empty", "Only an empty folder can be deleted: move or delete what is in it first.")
    await conn.execute("DELETE FROM forum.folders WHERE id = $1", folder_id)
