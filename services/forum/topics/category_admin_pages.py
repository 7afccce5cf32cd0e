"""Admins' category pages: every category (private and archived ones too) with its topics, groups and
Move up / Move down buttons that work without JavaScript; creating and changing a category;
archiving and bringing one back; deleting one that never held a topic.

Every write calls the same check-then-do functions as the JSON API (categories.py) and validates
with its schema (api.CATEGORY_IN); a form shows every problem at once, with what was typed kept.
Admins only: moderators get 403, visitors are asked to log in.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.topics import api, categories, topics
from shared.api import Schema, path_int
from shared.pages import Pages, form_data, form_errors, form_text, members_only, page_status, render
from shared.sessions import Session
from shared.web import ApiError, runtime

pages = Pages()

LIST_URL = "/admin/categories"
FIELD_LABELS = {
    "name": "Name",
    "slug": "Web address",
    "description": "Description",
    "colour": "Colour",
    "parent_id": "Parent category",
    "group_ids": "Groups",
    "allow_anonymous": "Anonymous posting",
    "default_kind": "Kind of new topics",
    "position": "Position",
}
COLOUR_PROBLEM = "must be six characters from 0 to 9 and a to f, like 005eb8"
KIND_PROBLEM = "must be one of the kinds listed"
DONE = {
    "created": "The category \u2018{name}\u2019 was created.",
    "saved": "Your changes to \u2018{name}\u2019 were saved.",
    "archived": "\u2018{name}\u2019 is archived: it is readable, and takes no new topics or replies.",
    "unarchived": "\u2018{name}\u2019 is back: people can post in it again.",
    "deleted": "The category was deleted.",
}
DIRECTIONS = ("up", "down")
SUBCATEGORIES_SQL = (
    "SELECT name, archived_at FROM forum.categories WHERE parent_id = $1 ORDER BY position, lower(name), id"
)
GROUPS_SQL = "SELECT id, name FROM forum.groups ORDER BY lower(name), id"

AdminPage = Callable[[Request, Session], Awaitable[Response]]


def admins_only(page: AdminPage) -> Callable[[Request], Awaitable[Response]]:
    """A page for admins: visitors are sent to log in (then back), anyone else gets 403."""

    @members_only
    @functools.wraps(page)
    async def endpoint(request: Request, who: Session) -> Response:
        categories.require_manager(who)
        return await page(request, who)

    return endpoint


# --- the list --------------------------------------------------------------------------------------


def _row_view(row: asyncpg.Record, names: dict[int, str]) -> dict[str, Any]:
    return {
        **dict(row),
        "url": f"/c/{row['slug']}",
        "groups": [names[g] for g in names if g in row["group_ids"]],
        "kind_label": topics.KIND_LABELS[row["default_kind"]],
        "archived": row["archived_at"] is not None,
        "up": False,
        "down": False,
    }


def _with_moves(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Categories of one level as listed: all but the first can move up, all but the last down."""
    for at, view in enumerate(views):
        view.update(up=at > 0, down=at < len(views) - 1)
    return views


async def list_context(conn: asyncpg.Connection, who: Session) -> dict[str, Any]:
    """The admin list: open categories as a tree (each level with its moves), then the archived ones."""
    rows = await categories.list_readable(conn, who)  # admins read every category
    names = await categories.group_names(conn, sorted({g for row in rows for g in row["group_ids"]}))
    views = {row["id"]: _row_view(row, names) for row in rows}
    tree = categories.arranged(rows)
    open_top = _with_moves([views[parent["id"]] for parent, _ in tree if parent["archived_at"] is None])
    listed = []
    for top in open_top:
        children = next(kids for parent, kids in tree if parent["id"] == top["id"])
        listed.append(top)
        listed.extend(_with_moves([{**views[c["id"]], "parent": top} for c in children if c["archived_at"] is None]))
    archived = [{**view, "parent": views.get(view["parent_id"])} for view in views.values() if view["archived"]]
    return {"listed": listed, "archived": archived}


@pages.get(LIST_URL)
@admins_only
async def categories_admin_page(request: Request, who: Session) -> Response:
    """Every category, private and archived ones too, with its topics, groups and what admins can do."""
    async with runtime(request).pool.acquire() as conn:
        context = await list_context(conn, who)
        context.update(await _outcome(conn, request))
    focus = context["focus"]
    moved = next((v for v in context["listed"] if focus and v["id"] == focus["id"]), None)
    if moved is not None and not moved[focus["direction"]]:  # at the end now: the other button takes the focus
        focus["direction"] = "up" if focus["direction"] == "down" else "down"
    return await render(request, "categories/admin_list.html", context)


async def _outcome(conn: asyncpg.Connection, request: Request) -> dict[str, Any]:
    """What the list says after an action (?done=, ?category=) and which button keeps the focus
    after a move (?moved=, ?direction=)."""
    params = request.query_params
    done, moved = params.get("done", ""), params.get("moved", "")
    row = None
    wanted = params.get("category") or moved
    if wanted.isdigit() and len(wanted) < 19:
        row = await categories.fetch_category(conn, int(wanted))
    message = DONE[done].format(name=row["name"] if row else "") if done in DONE and (row or done == "deleted") else ""
    focus = None
    if row is not None and moved and params.get("direction") in DIRECTIONS:
        focus = {"id": row["id"], "direction": params["direction"]}
        message = f"\u2018{row['name']}\u2019 moved {params['direction']}."
    return {"done": "" if focus else message, "moved": message if focus else "", "focus": focus}


@pages.post("/admin/categories/{id}/move")
@admins_only
async def move_category_page(request: Request, who: Session) -> Response:
    """A Move up or Move down button: the category swaps places with its neighbour on the list."""
    category_id = path_int(request, "id")
    direction = form_text(await form_data(request), "direction")
    if direction not in DIRECTIONS:
        raise ApiError(400, "bad_request", "A category can move up or down.")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await categories.move_category(conn, who, category_id, direction)
    # No #fragment: Chromium ignores autofocus on a page opened at one, and the button pressed takes the focus.
    target = f"{LIST_URL}?moved={category_id}&direction={direction}"
    return RedirectResponse(target, status_code=303)


# --- creating and changing ------------------------------------------------------------------------


def _number(text: str) -> int | str | None:
    """A whole number typed in a field; the text itself when it is not one (the schema says why)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) < 19 else text


def _form_values(form: FormData) -> dict[str, Any]:
    """The category form as typed (kept on the page when something needs fixing)."""
    values: dict[str, Any] = {
        name: form_text(form, name)
        for name in ("name", "slug", "description", "colour", "default_kind", "position", "parent_id")
    }
    values["group_ids"] = [v for v in form.getlist("group_ids") if isinstance(v, str)]
    values["allow_anonymous"] = form_text(form, "allow_anonymous") == "1"
    values["parent_offered"] = "parent_id" in form
    return values


def _data(values: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """The form's values as the API takes them (CATEGORY_IN)."""
    data: dict[str, Any] = {
        "name": values["name"],
        "description": values["description"],
        "colour": values["colour"] or None,
        "position": _number(values["position"]),
        "group_ids": [_number(v) for v in values["group_ids"]],
        "allow_anonymous": values["allow_anonymous"],
        "default_kind": values["default_kind"] or None,
    }
    if new:
        data["slug"] = values["slug"] or None
    if values["parent_offered"]:
        data["parent_id"] = _number(values["parent_id"])
    return data


def _each_field(schema: Schema, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The fields that pass `schema`, and the problem with each that does not (all of them at once)."""
    clean: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, value in data.items():
        checked, problem = schema.fields[name].check(name, value)
        if problem:
            problems[name] = {"colour": COLOUR_PROBLEM, "default_kind": KIND_PROBLEM}.get(name, problem)
        elif checked is not None or schema.fields[name].nullable:
            clean[name] = checked
    return clean, problems


async def _checked(conn: asyncpg.Connection, current: asyncpg.Record | None, values: dict[str, Any]) -> dict[str, Any]:
    """The form's data, or a 422 naming every problem: the schema's and the category rules' together."""
    clean, problems = _each_field(api.CATEGORY_IN, _data(values, new=current is None))
    if not values["colour"]:
        problems["colour"] = "is required: " + COLOUR_PROBLEM.removeprefix("must be ")
    if not problems:
        return clean
    problems = {**await categories.field_problems(conn, current, clean), **problems}
    if current is None and "slug" not in problems and "name" in clean:
        slug = clean.get("slug") or categories.slugify(clean["name"], fallback="category")
        if await conn.fetchval(categories.SLUG_USED_SQL, slug):
            problems["slug"] = "is already used by another category: choose another"
    in_form_order = {name: problems[name] for name in FIELD_LABELS if name in problems}
    raise ApiError(422, "invalid", "Some fields need attention.", in_form_order)


async def _form_context(
    conn: asyncpg.Connection, who: Session, current: asyncpg.Record | None, values: dict[str, Any]
) -> dict[str, Any]:
    rows = await categories.list_readable(conn, who)
    has_children = current is not None and any(r["parent_id"] == current["id"] for r in rows)
    parents = [
        {"value": str(r["id"]), "text": r["name"] + (" (archived)" if r["archived_at"] else "")}
        for r in rows
        if r["parent_id"] is None
        and (current is None or r["id"] != current["id"])
        and (r["archived_at"] is None or (current is not None and r["id"] == current["parent_id"]))
    ]
    groups = await conn.fetch(GROUPS_SQL)
    chosen = set(values.get("group_ids") or [])
    return {
        "category": dict(current) if current is not None else None,
        "values": values,
        "has_children": has_children,
        "parents": [{"value": "", "text": "None: a top-level category"}, *parents],
        "groups": [{"value": str(g["id"]), "text": g["name"], "checked": str(g["id"]) in chosen} for g in groups],
        "kinds": [
            {"value": k, "text": topics.KIND_LABELS[k], "checked": k == values.get("default_kind")}
            for k in categories.KINDS
        ],
    }


def _values_of(row: asyncpg.Record) -> dict[str, Any]:
    """A category's values as the form shows them."""
    return {
        "name": row["name"],
        "description": row["description"],
        "colour": row["colour"],
        "default_kind": row["default_kind"],
        "position": str(row["position"]),
        "parent_id": str(row["parent_id"] or ""),
        "group_ids": [str(g) for g in row["group_ids"]],
        "allow_anonymous": row["allow_anonymous"],
    }


async def _category_form(request: Request, who: Session, current: asyncpg.Record | None) -> Response:
    """The form to create (`current` None) or change a category: on POST every problem at once, or the
    change made and the list again."""
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            values = _values_of(current) if current is not None else await _new_values(conn)
            context = await _form_context(conn, who, current, values)
        return await render(request, "categories/admin_form.html", context)
    values = _form_values(await form_data(request))
    try:
        async with pool.acquire() as conn, conn.transaction():
            data = await _checked(conn, current, values)
            row = await _save(conn, who, current, data)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        async with pool.acquire() as conn:
            context = await _form_context(conn, who, current, values)
        context.update(form_errors(exc, "name", labels=FIELD_LABELS))
        return await render(request, "categories/admin_form.html", context, status=page_status(exc))
    done = "created" if current is None else "saved"
    return RedirectResponse(f"{LIST_URL}?done={done}&category={row['id']}#category-{row['id']}", status_code=303)


async def _new_values(conn: asyncpg.Connection) -> dict[str, Any]:
    position = await conn.fetchval(categories.NEXT_POSITION_SQL, None)
    return {"colour": categories.DEFAULT_COLOUR, "default_kind": "discussion", "position": str(position)}


async def _save(
    conn: asyncpg.Connection, who: Session, current: asyncpg.Record | None, data: dict[str, Any]
) -> asyncpg.Record:
    if current is not None:
        return await categories.change_category(conn, who, current["id"], data)
    if data.get("position") is None:  # last of its level
        data["position"] = await conn.fetchval(categories.NEXT_POSITION_SQL, data.get("parent_id"))
    return await categories.create_category(conn, who, data)


@pages.form("/admin/categories/new")
@admins_only
async def new_category_page(request: Request, who: Session) -> Response:
    """Create a category."""
    return await _category_form(request, who, None)


async def _category(request: Request) -> asyncpg.Record:
    """The category of the page's address; 404 when there is none."""
    category_id = path_int(request, "id")
    async with runtime(request).pool.acquire() as conn:
        row = await categories.fetch_category(conn, category_id)
    if row is None:
        raise access.not_found("that category")
    return row


@pages.form("/admin/categories/{id}/edit")
@admins_only
async def edit_category_page(request: Request, who: Session) -> Response:
    """Change a category: name, description, colour, parent, groups, anonymous posting, kind, position."""
    return await _category_form(request, who, await _category(request))


# --- archiving, bringing back, deleting ------------------------------------------------------------


async def _confirm_context(conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
    """What the confirmation pages say about a category: its topics, subcategories and parent."""
    children = await conn.fetch(SUBCATEGORIES_SQL, row["id"])
    parent = await categories.fetch_category(conn, row["parent_id"]) if row["parent_id"] else None
    return {
        "category": {**dict(row), "url": f"/c/{row['slug']}", "archived": row["archived_at"] is not None},
        "open_children": [c["name"] for c in children if c["archived_at"] is None],
        "archived_with_it": [
            c["name"] for c in children if row["archived_at"] is not None and c["archived_at"] == row["archived_at"]
        ],
        "parent": dict(parent) if parent is not None else None,
        "archived_message": categories.ARCHIVED_MESSAGE,
    }


Action = Callable[[asyncpg.Connection, Session, int], Awaitable[Any]]


async def _confirm_page(request: Request, who: Session, template: str, action: Action, done: str) -> Response:
    """A confirmation page (GET) and its button (POST): the action, then the list saying what happened;
    a refusal (409) shows the page again with why."""
    row = await _category(request)
    pool = runtime(request).pool
    if request.method == "POST":
        await form_data(request)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await action(conn, who, row["id"])
        except ApiError as exc:
            if exc.status != 409:
                raise
            async with pool.acquire() as conn:
                context = await _confirm_context(conn, row)
                context["refusal"] = exc.message
            return await render(request, template, context, status=409)
        return RedirectResponse(f"{LIST_URL}?done={done}&category={row['id']}", status_code=303)
    async with pool.acquire() as conn:
        context = await _confirm_context(conn, row)
        if template == "categories/admin_delete.html":
            refusal = await categories.deletion_refusal(conn, row)
            context["refusal"] = refusal.message if refusal is not None else ""
            context["refusal_code"] = refusal.code if refusal is not None else ""
    return await render(request, template, context)


@pages.form("/admin/categories/{id}/archive")
@admins_only
async def archive_category_page(request: Request, who: Session) -> Response:
    """Archive a category, after saying what that does."""
    return await _confirm_page(request, who, "categories/admin_archive.html", categories.archive_category, "archived")


@pages.form("/admin/categories/{id}/unarchive")
@admins_only
async def unarchive_category_page(request: Request, who: Session) -> Response:
    """Bring back an archived category, after saying what that does."""
    return await _confirm_page(
        request, who, "categories/admin_unarchive.html", categories.unarchive_category, "unarchived"
    )


@pages.form("/admin/categories/{id}/delete")
@admins_only
async def delete_category_page(request: Request, who: Session) -> Response:
    """Delete a category that never held a topic; otherwise say why not and offer archiving."""
    return await _confirm_page(request, who, "categories/admin_delete.html", categories.delete_category, "deleted")


routes = pages.routes
