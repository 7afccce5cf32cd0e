"""Library pages: the library home with its folders and counts, a folder, a document with
its preview link, versions and comments, sharing a document and uploading a new version
(multipart forms, read as a stream within the size limit), downloads and previews, and
the admins' folder forms.

Every action calls the same functions as the JSON API, and every view is built from the
API's JSON shapes (api.py) and the rules in access.py, so the visibility rule and the
upload checks are written once. Upload forms are read by multipart.read_upload, not
shared.pages.form_data, so their CSRF token is checked here with the same rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.groups import groups
from services.forum.library import api as library_api
from services.forum.library import comments, documents, filetypes, folders
from services.forum.library.multipart import Upload, size_text
from services.forum.moderation import screening
from services.forum.topics import posts
from services.forum.topics.fragments import person
from services.forum.writings import reactions, writings
from services.forum.writings.targets import COMMENT
from shared.api import path_int, query_int
from shared.pages import (
    Pages,
    day,
    form_data,
    form_errors,
    form_page,
    form_text,
    login_redirect,
    member_session,
    members_only,
    page_status,
    render,
    signed_in,
)
from shared.sessions import CSRF_COOKIE, Session, csrf_ok
from shared.web import ApiError, runtime, viewer

pages = Pages()

UPLOAD_LABELS = {"file": "File", "folder_id": "Folder", "title": "Title", "description": "Description", "note": "Note"}


# --- views: the API's shapes, as the pages show them ----------------------------------------------------------------


def _person(shape: dict[str, Any]) -> dict[str, Any]:
    return person(shape["id"], shape["username"], shape["display_name"])


def document_view(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A document as the folder and document pages show it."""
    shape = library_api.document_json(row)
    file, counts = shape["file"], shape["counts"]
    return {
        "id": shape["id"],
        "title": shape["title"],
        "description": shape["description"],
        "url": shape["url"],
        "download_url": f"/library/documents/{row['id']}/download",
        "preview_url": f"/library/documents/{row['id']}/preview",
        "preview": shape["preview"],
        "type_label": file["label"],
        "filename": file["filename"],
        "size": size_text(file["size_bytes"]),
        "uploader": _person(shape["uploader"]),
        "shared": day(row["created_at"]),
        "updated": day(row["version_created_at"]),
        "version": shape["current_version"],
        "downloads": counts["downloads"],
        "previews": counts["previews"],
        "unique_downloads": counts["unique_downloads"],
        "unique_previews": counts["unique_previews"],
        "comments": counts["comments"],
        "folder": shape["folder"],
        "can_change": access.document_changeable(who, row["uploader_id"]),
    }


def version_view(document_id: int, row: asyncpg.Record) -> dict[str, Any]:
    """A version in the document page's list."""
    shape = library_api.version_json(document_id, row)
    return {
        "version": shape["version"],
        "filename": shape["filename"],
        "size": size_text(shape["size_bytes"]),
        "uploader": _person(shape["uploader"]),
        "uploaded": day(row["created_at"]),
        "note": shape["note"],
        "download_url": f"/library/documents/{document_id}/download?version={row['version']}",
    }


def comment_view(row: asyncpg.Record, who: Session | None, given: set[str]) -> dict[str, Any]:
    """A comment for the document page; its text as comment_json decides (access.text_withheld)."""
    shape = library_api.comment_json(row, who, given)
    withheld = shape["cooked"] is None
    counts = shape["reactions"]
    return {
        "id": shape["id"],
        "author": _person(shape["author"]),
        "cooked": Markup("" if withheld else shape["cooked"]),  # noqa: S704 - sanitised by shared.markdown
        "status": shape["status"],
        "hidden": withheld,
        "moderation_reason": shape["moderation_reason"],
        "written": day(row["created_at"]),
        "edited": shape["revision"] > 1,
        "can_change": access.may_edit(who, row["status"], row["author_id"]),
        "can_react": access.may_react(who, row["status"]),
        "reactions": [
            {
                "kind": kind,
                "label": reactions.REACTION_LABELS[kind],
                "emoji": reactions.REACTION_EMOJI_HTML[kind],
                "count": int(counts.get(kind, 0)),
                "given": kind in shape["my_reactions"],
            }
            for kind in reactions.REACTION_KINDS
        ],
    }


def _breadcrumbs(folder: asyncpg.Record) -> list[dict[str, str]]:
    items = [{"href": "/", "text": "Home"}, {"href": "/library", "text": "Library"}]
    if folder["parent_id"] is not None:
        items.append({"href": folders.folder_url(folder["parent_id"]), "text": folder["parent_name"]})
    return items


def _pages(base: str, page: int, more: bool, anchor: str = "") -> dict[str, str | None]:
    """The previous and next page links of a paged list."""
    return {
        "previous_url": f"{base}?page={page - 1}{anchor}" if page > 1 else None,
        "next_url": f"{base}?page={page + 1}{anchor}" if more else None,
    }


# --- library home and folders ---------------------------------------------------------------------------------------


@pages.get("/library")
async def library_page(request: Request) -> Response:
    """The library: its folders (with subfolders) and how much is in them, downloaded and previewed."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        tree = folders.folder_tree(await folders.readable_folders(conn, who))
    return await render(
        request, "documents/library.html", {"folders": [library_api.folder_json(node, who) for node in tree]}
    )


async def _folder_form_context(conn: asyncpg.Connection, who: Session) -> dict[str, Any]:
    top = [row for row in await folders.readable_folders(conn, who) if row["parent_id"] is None]
    all_groups = await groups.list_visible(conn, who)
    return {
        "parents": [{"id": r["id"], "name": r["name"]} for r in top],
        "groups": [{"id": g["id"], "name": g["name"], "access": g["access"]} for g in all_groups],
    }


def _folder_values(form: FormData) -> dict[str, Any]:
    return {
        "name": form_text(form, "name"),
        "description": form_text(form, "description"),
        "position": form_text(form, "position"),
        "parent_id": form_text(form, "parent_id"),
        "group_ids": [v for v in form.getlist("group_ids") if isinstance(v, str)],
    }


def _current_values(current: asyncpg.Record | None, request: Request) -> dict[str, Any]:
    """The folder form's fields: an existing folder's, or a new one's (in the parent asked for)."""
    if current is None:
        parent = request.query_params.get("parent", "")
        return {"parent_id": parent if parent.isdigit() else "", "group_ids": []}
    return {
        "name": current["name"],
        "description": current["description"],
        "position": str(current["position"]),
        "group_ids": [str(g) for g in current["group_ids"]],
    }


def _folder_data(values: dict[str, Any], *, new: bool) -> dict[str, Any]:
    problems: dict[str, str] = {}
    data: dict[str, Any] = {"name": values["name"], "description": values["description"]}
    if values["position"]:
        if not values["position"].isdigit() or int(values["position"]) > 10_000:
            problems["position"] = "Enter a whole number from 0 to 10000"
        else:
            data["position"] = int(values["position"])
    if new and values["parent_id"]:
        if not values["parent_id"].isdigit() or len(values["parent_id"]) > 18:
            problems["parent_id"] = "Choose a folder"
        else:
            data["parent_id"] = int(values["parent_id"])
    if any(not g.isdigit() or len(g) > 18 for g in values["group_ids"]):
        problems["group_ids"] = "Choose groups from the list"
    data["group_ids"] = [int(g) for g in values["group_ids"] if g.isdigit() and len(g) <= 18]
    if not values["name"]:
        problems["name"] = "Give the folder a name"
    if problems:
        raise folders.invalid(problems)
    return data


async def _save_folder(
    conn: asyncpg.Connection, who: Session, current: asyncpg.Record | None, data: dict[str, Any]
) -> int:
    """Create the folder, or change the current one; its id."""
    if current is None:
        return int((await folders.create_folder(conn, who, data))["id"])
    return int((await folders.update_folder(conn, who, current["id"], data))["id"])


@pages.form("/library/folders/new")
@pages.form("/library/folders/{id}/edit")
@members_only
async def folder_form_page(request: Request, who: Session) -> Response:
    """Create a folder or subfolder, or edit one (admins)."""
    folders.require_admin(who)
    rt = runtime(request)
    folder_id = path_int(request, "id") if "id" in request.path_params else None
    async with rt.pool.acquire() as conn:
        context = await _folder_form_context(conn, who)
        current = await folders.readable_folder(conn, who, folder_id) if folder_id else None
    context.update(folder=current, values=_current_values(current, request))

    async def save(conn: asyncpg.Connection, values: dict[str, Any]) -> str:
        data = _folder_data(values, new=current is None)
        return folders.folder_url(await _save_folder(conn, who, current, data))

    return await form_page(request, "documents/folder_form.html", context, read=_folder_values, save=save, field="name")


@pages.get("/library/folders/{id}")
async def folder_page(request: Request) -> Response:
    """A folder: its subfolders and documents, with their counts."""
    who = await viewer(request)
    shown = await library_api.folder_page_of(request, who)
    folder = shown.folder
    context = {
        "folder": library_api.folder_json(shown.node, who),
        "documents": [document_view(r, who) for r in shown.documents],
        "breadcrumbs": _breadcrumbs(folder),
        "is_subfolder": folder["parent_id"] is not None,
        **_pages(folders.folder_url(folder["id"]), shown.page, shown.more),
    }
    return await render(request, "documents/folder.html", context)


# --- uploading --------------------------------------------------------------------------------------------------------


async def _upload_context(conn: asyncpg.Connection, who: Session, folder_id: str) -> dict[str, Any]:
    tree = folders.folder_tree(await folders.readable_folders(conn, who))
    options = []
    for node in tree:
        options.append({"value": str(node.row["id"]), "text": node.row["name"]})
        options += [
            {"value": str(c.row["id"]), "text": f"{node.row['name']} \u203a {c.row['name']}"} for c in node.children
        ]
    return {
        "folders": options,
        "values": {"folder_id": folder_id},
        "accept": filetypes.ACCEPT_ATTRIBUTE,
        "accepted": filetypes.ACCEPTED_TEXT,
    }


# Browsers never keep a file input's file when a form comes back: said next to the field and in the summary.
CHOOSE_FILE_AGAIN = "Choose your file again: the browser does not keep it when the form comes back with a problem"
_FORM_ORDER = ("folder_id", "file", "title", "description", "note")


def _upload_errors(exc: ApiError, chosen: str = "") -> dict[str, Any]:
    """The errors of a failed upload; `chosen`, the name of a file that was sent, adds "choose it again"."""
    fields = dict(exc.fields) if exc.fields else {"file": exc.message}
    fields = {name if name in UPLOAD_LABELS else "file": message for name, message in fields.items()}
    if chosen and "file" not in fields:
        fields["file"] = f"{CHOOSE_FILE_AGAIN} ({chosen})"
    fields = {name: fields[name] for name in sorted(fields, key=_FORM_ORDER.index)}
    return {
        "errors": fields,
        "error_list": [
            {"text": f"{UPLOAD_LABELS[n]}: {m}" if n in ("title", "description", "note") else m, "href": f"#{n}"}
            for n, m in fields.items()
        ],
    }


def form_token_ok(request: Request, session: Session | None, sent: str | None) -> bool:
    """The rule of shared.pages.form_data for a form read here: the session's token, or the CSRF cookie."""
    if session is not None and not session.via_token:
        return isinstance(sent, str) and csrf_ok(session, sent)
    cookie = request.cookies.get(CSRF_COOKIE)
    return isinstance(sent, str) and bool(cookie) and secrets.compare_digest(sent, cookie or "")


async def _read_upload_form(request: Request, who: Session) -> Upload:
    """The upload form, streamed within the limit, with its CSRF token checked (403 otherwise)."""
    upload = await documents.receive(request)
    if not form_token_ok(request, who, upload.fields.get("csrf_token")):
        upload.discard()
        raise ApiError(403, "csrf_failed", "This form has expired. Go back, reload the page and try again.")
    return upload


async def _upload_form(
    request: Request,
    who: Session,
    template: str,
    context: dict[str, Any],
    kept: tuple[str, ...],
    send: Callable[[Upload], Awaitable[asyncpg.Record]],
) -> Response | asyncpg.Record:
    """An upload form: on GET the form; on POST the upload read, checked and handed to `send`, whose
    document is returned, or the form again with what went wrong and the `kept` fields as typed.

    The temporary file is discarded however that ends; an expired form is refused (403) as anywhere.
    """
    if request.method == "GET":
        return await render(request, template, context)
    try:
        upload = await _read_upload_form(request, who)
    except ApiError as exc:
        if exc.status == 403 and exc.code == "csrf_failed":
            raise
        context.update(_upload_errors(exc))
        return await render(request, template, context, status=page_status(exc))
    try:
        context["values"] = {k: upload.fields.get(k, "") for k in kept}
        return await send(upload)
    except ApiError as exc:
        context.update(_upload_errors(exc, upload.filename))
        return await render(request, template, context, status=page_status(exc))
    finally:
        upload.discard()


@pages.form("/library/upload")
async def upload_page(request: Request) -> Response:
    """Share a document: choose a folder and a file, give it a title and a description."""
    who = await member_session(request)
    if who is None:
        return login_redirect(request, f"/library/upload?{request.url.query}" if request.url.query else None)
    rt = runtime(request)
    folder = request.query_params.get("folder", "")
    async with rt.pool.acquire() as conn:
        context = await _upload_context(conn, who, folder if folder.isdigit() else "")
    context["max_size"] = size_text(rt.settings.max_upload_bytes)
    sent = await _upload_form(
        request,
        who,
        "documents/upload.html",
        context,
        ("folder_id", "title", "description"),
        lambda upload: documents.upload_document(rt, who, upload),
    )
    if isinstance(sent, Response):
        return sent
    return RedirectResponse(documents.document_url(sent["id"]) + "?done=uploaded", status_code=303)


@pages.form("/library/upload/{id}")
@signed_in(member_session)
async def version_page(request: Request, who: Session) -> Response:
    """Upload a new version of a document (its uploader or staff); the earlier versions are kept."""
    rt = runtime(request)
    document_id = path_int(request, "id")
    async with rt.pool.acquire() as conn:
        row = await documents.readable_document(conn, who, document_id)
    documents.require_changeable(who, row, "upload a new version")
    context: dict[str, Any] = {
        "document": document_view(row, who),
        "values": {},
        "accept": filetypes.ACCEPT_ATTRIBUTE,
        "accepted": filetypes.ACCEPTED_TEXT,
        "max_size": size_text(rt.settings.max_upload_bytes),
    }
    sent = await _upload_form(
        request,
        who,
        "documents/version.html",
        context,
        ("note",),
        lambda upload: documents.upload_version(rt, who, document_id, upload),
    )
    if isinstance(sent, Response):
        return sent
    return RedirectResponse(documents.document_url(document_id) + "?done=version", status_code=303)


# --- a document -------------------------------------------------------------------------------------------------------

DONE = {
    "uploaded": "Your document is in the library. Thank you for sharing it.",
    "version": "The new version is uploaded. The earlier versions are kept below.",
    "saved": "Your changes were saved.",
    "commented": "Your comment was posted.",
}


async def _cannot_comment(conn: asyncpg.Connection, who: Session | None) -> str:
    """Why the viewer may not comment ("" when they may): "login", or the refusal of posts.check_can_post."""
    if who is None:
        return "login"
    try:
        await posts.check_can_post(conn, who)
    except ApiError as exc:
        return exc.code
    return ""


async def _document_context(
    conn: asyncpg.Connection, who: Session | None, document_id: int, page: int
) -> dict[str, Any]:
    row = await documents.readable_document(conn, who, document_id)
    folder = await folders.readable_folder(conn, who, row["folder_id"])
    crumbs = [*_breadcrumbs(folder), {"href": folders.folder_url(folder["id"]), "text": folder["name"]}]
    rows, more = await comments.document_comments(conn, document_id, page=page)
    given = await documents.my_reactions(conn, who, [r["id"] for r in rows])
    return {
        "document": document_view(row, who),
        "breadcrumbs": crumbs,
        "versions": [version_view(document_id, v) for v in await documents.versions(conn, document_id)],
        "comments": [comment_view(c, who, given.get(c["id"], set())) for c in rows],
        "cannot_comment": await _cannot_comment(conn, who),
        **_pages(documents.document_url(document_id), page, more, "#comments"),
        "values": {},
    }


@pages.get("/library/documents/{id}")
async def document_page(request: Request) -> Response:
    """A document: what it is, its preview and download, its versions, counts and comments."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        context = await _document_context(conn, who, path_int(request, "id"), query_int(request, "page", 1))
    context["done"] = DONE.get(request.query_params.get("done", ""))
    return await render(request, "documents/document.html", context)


@pages.get("/library/documents/{id}/download")
async def download_page(request: Request) -> Response:
    """Download a version of a document (counted)."""
    who = await viewer(request)
    document_id, version = path_int(request, "id"), library_api.version_param(request)
    count = library_api.counted(request)
    _, served = await documents.open_version(runtime(request), who, document_id, version, "download", count=count)
    return await documents.send_file(request, served, disposition="attachment")


@pages.get("/library/documents/{id}/preview")
async def preview_page(request: Request) -> Response:
    """Preview: PDFs and images inline (sandboxed), text in a page, and for other kinds a way to download."""
    who = await viewer(request)
    row, kind = await library_api.preview_target(request, who)
    if kind == "text":
        document_id, version = path_int(request, "id"), library_api.version_param(request)
        count = library_api.counted(request)
        document, served = await documents.open_version(
            runtime(request), who, document_id, version, "preview", count=count
        )
        content, cut = await documents.read_text(served)
        context = {"text": content, "cut": cut, "limit": size_text(documents.TEXT_PREVIEW_BYTES)}
        return await render(request, "documents/preview.html", {"document": document_view(document, who), **context})
    if kind not in documents.PREVIEW_CSP:
        return await render(
            request, "documents/preview.html", {"document": document_view(row, who), "no_preview": True}
        )
    return await library_api.preview_file(request, who, kind)


async def _changeable_document(request: Request, who: Session, doing: str) -> asyncpg.Record:
    """The document of the request, if the viewer may change it (404 or 403 otherwise)."""
    async with runtime(request).pool.acquire() as conn:
        row = await documents.readable_document(conn, who, path_int(request, "id"))
    documents.require_changeable(who, row, doing)
    return row


@pages.form("/library/documents/{id}/edit")
@members_only
async def edit_document_page(request: Request, who: Session) -> Response:
    """Change a document's title, description or folder (its uploader or staff)."""
    rt = runtime(request)
    row = await _changeable_document(request, who, "change it")
    async with rt.pool.acquire() as conn:
        context = await _upload_context(conn, who, str(row["folder_id"]))
    context.update(
        document=document_view(row, who),
        values={"title": row["title"], "description": row["description"], "folder_id": str(row["folder_id"])},
    )

    async def save(conn: asyncpg.Connection, values: dict[str, Any]) -> str:
        data: dict[str, Any] = {"title": values["title"], "description": values["description"]}
        if not values["title"]:
            raise folders.invalid({"title": "Give the document a title"})
        data["folder_id"] = documents.parse_id(values["folder_id"], "folder_id")
        await documents.update_document(conn, who, row["id"], data)
        return documents.document_url(row["id"]) + "?done=saved"

    return await form_page(request, "documents/edit.html", context, read=_document_values, save=save, field="title")


def _document_values(form: FormData) -> dict[str, Any]:
    return {k: form_text(form, k) for k in ("title", "description", "folder_id")}


@pages.form("/library/documents/{id}/delete")
@members_only
async def delete_document_page(request: Request, who: Session) -> Response:
    """Ask, then remove a document from the library (its uploader or staff)."""
    row = await _changeable_document(request, who, "delete it")
    if request.method == "GET":
        return await render(request, "documents/delete.html", {"document": document_view(row, who)})
    await form_data(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await documents.delete_document(conn, who, row["id"])
    return RedirectResponse(folders.folder_url(row["folder_id"]), status_code=303)


# --- comments ---------------------------------------------------------------------------------------------------------


@pages.post("/library/documents/{id}/comments")
async def comment_submit(request: Request) -> Response:
    """Post a comment on a document."""
    form = await form_data(request)
    who = await member_session(request)
    document_id = path_int(request, "id")
    if who is None:
        return login_redirect(request, documents.document_url(document_id))
    rt = runtime(request)
    body = form_text(form, "body")
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await comments.create_comment(conn, who, document_id, body, screening.PostingRules.of(rt))
    except ApiError as exc:
        if exc.status == 404:
            raise
        async with rt.pool.acquire() as conn:
            context = await _document_context(conn, who, document_id, 1)
        context.update(values={"body": body}, **form_errors(exc, "body"))
        return await render(request, "documents/document.html", context, status=page_status(exc))
    return RedirectResponse(
        f"{documents.document_url(document_id)}?done=commented#comment-{row['id']}", status_code=303
    )


async def _comment(request: Request, who: Session | None) -> tuple[asyncpg.Record, asyncpg.Record]:
    async with runtime(request).pool.acquire() as conn:
        return await documents.readable_comment(conn, who, path_int(request, "id"))


@pages.form("/library/comments/{id}/edit")
@members_only
async def edit_comment_page(request: Request, who: Session) -> Response:
    """Edit a comment (its author or staff)."""
    row, document = await _comment(request, who)
    comments.require_editable(who, row, "edit")
    context: dict[str, Any] = {"comment": row, "document": document_view(document, who), "values": {"body": row["raw"]}}

    async def save(conn: asyncpg.Connection, values: dict[str, Any]) -> str:
        await comments.edit_comment(conn, who, row["id"], values["body"], screening.PostingRules.of(runtime(request)))
        return f"{documents.document_url(document['id'])}#comment-{row['id']}"

    return await form_page(
        request, "documents/edit_comment.html", context, read=_comment_values, save=save, field="body"
    )


def _comment_values(form: FormData) -> dict[str, Any]:
    return {"body": form_text(form, "body")}


@pages.post("/library/comments/{id}/delete")
async def delete_comment_submit(request: Request) -> Response:
    """Delete a comment (its author or staff)."""
    await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row, document = await documents.readable_comment(conn, who, path_int(request, "id"))
        await comments.delete_comment(conn, who, row["id"])
    return RedirectResponse(f"{documents.document_url(document['id'])}#comments", status_code=303)


@pages.post("/library/comments/{id}/react")
async def react_submit(request: Request) -> Response:
    """Give or take back a reaction to a comment (the buttons toggle)."""
    form = await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request)
    kind = form_text(form, "kind")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row, document = await documents.readable_comment(conn, who, path_int(request, "id"))
        given = await documents.my_reactions(conn, who, [row["id"]])
        if kind in given.get(row["id"], set()):
            await writings.unreact(conn, who, COMMENT, row["id"], kind)
        else:
            await writings.react(conn, who, COMMENT, row["id"], kind)
    return RedirectResponse(f"{documents.document_url(document['id'])}#comment-{row['id']}", status_code=303)


routes = pages.routes
