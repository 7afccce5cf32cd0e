"""The categories' pages: /categories (every category the viewer may read, subcategories under
their parent, archived ones apart) and /c/{slug} (one category's topics). Admins' pages to manage
them are in category_admin_pages.py.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from services.forum import access
from services.forum.topics import categories, topics
from services.forum.topics.pages import topic_list_context
from shared.pages import Pages, render
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

pages = Pages()


def category_view(row: asyncpg.Record, who: Session | None, names: dict[int, str]) -> dict[str, Any]:
    """A category as the lists and its page show it: whether it is `private`; to staff, all the groups
    it is private to (`groups`); to a member, those of them they are in (`your_groups`: a private
    group they are not in stays unnamed)."""
    staff = access.is_staff(who)
    mine = set(who.group_ids) if who is not None else set()
    return {
        **dict(row),
        "url": f"/c/{row['slug']}",
        "private": bool(row["group_ids"]),
        "groups": [names[g] for g in names if staff and g in row["group_ids"]],
        "your_groups": [names[g] for g in names if not staff and g in mine and g in row["group_ids"]],
        "archived": row["archived_at"] is not None,
        "kind_label": topics.KIND_LABELS[row["default_kind"]],
    }


async def _names_of_groups(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> dict[int, str]:
    return await categories.group_names(conn, sorted({g for row in rows for g in row["group_ids"]}))


@pages.get("/categories")
async def categories_page(request: Request) -> Response:
    """Every category the viewer may read, with its colour, description and topic count: subcategories
    under their parent, archived categories in a part of their own."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        rows = await categories.list_readable(conn, who)
        names = await _names_of_groups(conn, rows)
    by_id = {row["id"]: category_view(row, who, names) for row in rows}
    open_tree = [
        (by_id[parent["id"]], [by_id[c["id"]] for c in children if c["archived_at"] is None])
        for parent, children in categories.arranged(rows)
        if parent["archived_at"] is None
    ]
    archived = [{**view, "parent": by_id.get(view["parent_id"])} for view in by_id.values() if view["archived"]]
    return await render(request, "categories/index.html", {"tree": open_tree, "archived": archived})


@pages.get("/c/{slug}")
async def category_page(request: Request) -> Response:
    """One category's topics, in the same list as the home page, with its parent, its subcategories,
    who may read it, and whether it is archived."""
    who = await viewer(request)
    slug = str(request.path_params["slug"])
    if not re.fullmatch(categories.SLUG_PATTERN, slug) or len(slug) > categories.SLUG_MAX:
        raise ApiError(404, "not_found", "")
    async with runtime(request).pool.acquire() as conn:
        row = await categories.fetch_category_by_slug(conn, slug)
        if row is None:
            raise ApiError(404, "not_found", "")
        category = await categories.readable_category(conn, who, row["id"])
        query = topics.parse_topic_query(request, category_id=category["id"])
        context = await topic_list_context(conn, who, f"/c/{category['slug']}", query)
        children = await categories.list_readable_subcategories(conn, who, category["id"])
        parent = await categories.fetch_category(conn, category["parent_id"]) if category["parent_id"] else None
        names = await _names_of_groups(conn, [category]) if category["group_ids"] else {}
    if not context["topics"] and query.page > 1:
        raise ApiError(404, "not_found", "There is no such page of topics.")
    readable_parent = parent is not None and access.groups_readable(who, parent["group_ids"])
    return await render(
        request,
        "categories/show.html",
        {
            **context,
            "category": category_view(category, who, names),
            "parent": category_view(parent, who, {}) if parent is not None and readable_parent else None,
            "subcategories": [category_view(r, who, {}) for r in children],
            "archived_message": categories.ARCHIVED_MESSAGE,
        },
    )


routes = pages.routes
