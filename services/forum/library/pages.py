"""Library pages: the library home with its folders and counts, a folder, a document with
its preview link, versions and comments, sharing a document and uploading a new version
(multipart forms, read as a stream within the size limit), downloads and previews, and
the admins' folder forms.

Every action calls the same functions as the JSON API (documents.py), so the visibility
rule and the upload checks are written once. Upload forms are read by
documents.read_upload, not shared.pages.form_data, so their CSRF token is checked here
with the same rule.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.forum.groups import groups
from services.forum.groups.pages import day, form_errors, login_redirect, member_session, page_status, person, text
from services.forum.library import documents, filetypes
from services.forum.topics import posts
from shared.api import path_int, query_int
from shared.pages import form_data, render
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

UPLOAD_LABELS = {"file": "File", "folder_id": "Folder", "title": "Title", "description": "Description", "note": "Note"}


# --- views --------------------------------------------------------------------------------------------------------


def folder_view(node: documents.FolderNode) -> dict[str, Any]:
    row = node.row
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "url": documents.folder_url(row["id"]),
        "private": bool(documents.folder_groups(row)),
        "documents_count": node.documents_count,
        "downloads_count": node.downloads_count,
        "previews_count": node.previews_count,
        "subfolders": [folder_view(child) for child in node.children],
    }


def document_view(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A document as the folder and document pages show it."""
    filetype = filetypes.TYPES.get(row["kind"])
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "url": documents.document_url(row["id"]),
        "download_url": f"/library/documents/{row['id']}/download",
        "preview_url": f"/library/documents/{row['id']}/preview",
        "preview": filetype.preview if filetype else "none",
        "type_label": filetype.label if filetype else row["kind"],
        "filename": row["filename"],
        "size": documents.size_text(row["size_bytes"]),
        "uploader": person(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
        "shared": day(row["created_at"]),
        "updated": day(row["version_created_at"]),
        "version": row["current_version"],
        "downloads": row["downloads_count"],
        "previews": row["previews_count"],
        "unique_downloads": row["unique_downloads_count"],
        "unique_previews": row["unique_previews_count"],
        "comments": row["comments_count"],
        "folder": {"id": row["folder_id"], "name": row["folder_name"], "url": documents.folder_url(row["folder_id"])},
        "can_change": who is not None and (who.is_staff or who.user_id == row["uploader_id"]),
    }


def version_view(document_id: int, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "version": row["version"],
        "filename": row["filename"],
        "size": documents.size_text(row["size_bytes"]),
        "uploader": person(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
        "uploaded": day(row["created_at"]),
        "note": row["note"],
        "download_url": f"/library/documents/{document_id}/download?version={row['version']}",
    }


def comment_view(row: asyncpg.Record, who: Session | None, given: set[str]) -> dict[str, Any]:
    """A comment for the document page; a hidden one's text only to its author and staff."""
    shown = row["status"] == "visible" or documents.can_change_comment(who, row)
    counts = documents.json_dict(row["reactions"])
    return {
        "id": row["id"],
        "author": person(row["author_id"], row["author_username"], row["author_display_name"]),
        "cooked": Markup(row["cooked"]) if shown else Markup(""),  # noqa: S704 - sanitised by shared.markdown
        "status": row["status"],
        "hidden": not shown,
        # Only its author and staff see a hidden comment, and why it was hidden.
        "moderation_reason": row["moderation_reason"] if shown and row["status"] == "hidden" else None,
        "written": day(row["created_at"]),
        "edited": row["revision"] > 1,
        "can_change": documents.can_change_comment(who, row),
        "can_react": who is not None and row["status"] == "visible",
        "reactions": [
            {
                "kind": kind,
                "label": posts.REACTION_LABELS[kind],
                "emoji": posts.REACTION_EMOJI_HTML[kind],
                "count": int(counts.get(kind, 0)),
                "given": kind in given,
            }
            for kind in posts.REACTION_KINDS
        ],
    }


async def _breadcrumbs(conn: asyncpg.Connection, folder: asyncpg.Record) -> list[dict[str, str]]:
    items = [{"href": "/", "text": "Home"}, {"href": "/library", "text": "Library"}]
    if folder["parent_id"] is not None:
        items.append({"href": documents.folder_url(folder["parent_id"]), "text": folder["parent_name"]})
    return items


# --- library home and folders ---------------------------------------------------------------------------------------


async def library_page(request: Request) -> Response:
    """The library: its folders (with subfolders) and how much is in them, downloaded and previewed."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        tree = documents.folder_tree(await documents.readable_folders(conn, who))
    return await render(request, "documents/library.html", {"folders": [folder_view(node) for node in tree]})


async def folder_page(request: Request) -> Response:
    """A folder: its subfolders and documents, with their counts."""
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        folder = await documents.readable_folder(conn, who, path_int(request, "id"))
        nodes = [
            n for n in documents.folder_tree(await documents.readable_folders(conn, who)) if n.row["id"] == folder["id"]
        ]
        rows, more = await documents.folder_documents(conn, folder["id"], page=page)
        crumbs = await _breadcrumbs(conn, folder)
    node = nodes[0] if nodes else documents.FolderNode(folder)
    base = documents.folder_url(folder["id"])
    return await render(
        request,
        "documents/folder.html",
        {
            "folder": folder_view(node),
            "documents": [document_view(r, who) for r in rows],
            "breadcrumbs": crumbs,
            "is_subfolder": folder["parent_id"] is not None,
            "previous_url": f"{base}?page={page - 1}" if page > 1 else None,
            "next_url": f"{base}?page={page + 1}" if more else None,
        },
    )


async def _folder_form_context(conn: asyncpg.Connection, who: Session) -> dict[str, Any]:
    top = [row for row in await documents.readable_folders(conn, who) if row["parent_id"] is None]
    all_groups = await groups.list_visible(conn, who)
    return {
        "parents": [{"id": r["id"], "name": r["name"]} for r in top],
        "groups": [{"id": g["id"], "name": g["name"], "access": g["access"]} for g in all_groups],
    }


def _folder_values(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "description": text(form, "description"),
        "position": text(form, "position"),
        "parent_id": text(form, "parent_id"),
        "group_ids": [v for v in form.getlist("group_ids") if isinstance(v, str)],
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
        raise documents.invalid(problems)
    return data


async def folder_form_page(request: Request) -> Response:
    """Create a folder or subfolder, or edit one (admins)."""
    who = await member_session(request)
    if who is None:
        if request.method == "POST":
            await form_data(request)
        return login_redirect(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "Only admins can manage the library's folders.")
    rt = runtime(request)
    folder_id = path_int(request, "id") if "id" in request.path_params else None
    async with rt.pool.acquire() as conn:
        context = await _folder_form_context(conn, who)
        current = await documents.readable_folder(conn, who, folder_id) if folder_id else None
    context["folder"] = current
    if current is not None:
        context["values"] = {
            "name": current["name"],
            "description": current["description"],
            "position": str(current["position"]),
            "group_ids": [str(g) for g in current["group_ids"]],
        }
    else:
        parent = request.query_params.get("parent", "")
        context["values"] = {"parent_id": parent if parent.isdigit() else "", "group_ids": []}
    if request.method == "GET":
        return await render(request, "documents/folder_form.html", context)
    form = await form_data(request)
    values = _folder_values(form)
    try:
        data = _folder_data(values, new=current is None)
        async with rt.pool.acquire() as conn, conn.transaction():
            if current is None:
                row = await documents.create_folder(conn, who, data)
            else:
                row = await documents.update_folder(conn, who, current["id"], data)
    except ApiError as exc:
        context.update(values=values, **form_errors(exc, "name"))
        return await render(request, "documents/folder_form.html", context, status=page_status(exc))
    return RedirectResponse(documents.folder_url(row["id"]), status_code=303)


# --- uploading --------------------------------------------------------------------------------------------------------


async def _upload_context(conn: asyncpg.Connection, who: Session, folder_id: str) -> dict[str, Any]:
    tree = documents.folder_tree(await documents.readable_folders(conn, who))
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


def _upload_errors(exc: ApiError) -> dict[str, Any]:
    fields = dict(exc.fields) if exc.fields else {"file": exc.message}
    fields = {name if name in UPLOAD_LABELS else "file": message for name, message in fields.items()}
    return {
        "errors": fields,
        "error_list": [
            {"text": f"{UPLOAD_LABELS[n]}: {m}" if n in ("title", "description", "note") else m, "href": f"#{n}"}
            for n, m in fields.items()
        ],
    }


async def _read_upload_form(request: Request, who: Session) -> documents.Upload:
    """The upload form, streamed within the limit, with its CSRF token checked (403 otherwise)."""
    upload = await documents.receive(request)
    if not documents.form_token_ok(request, who, upload.fields.get("csrf_token")):
        upload.discard()
        raise ApiError(403, "csrf_failed", "This form has expired. Go back, reload the page and try again.")
    return upload


async def upload_page(request: Request) -> Response:
    """Share a document: choose a folder and a file, give it a title and a description."""
    who = await member_session(request)
    if who is None:
        return login_redirect(request, f"/library/upload?{request.url.query}" if request.url.query else None)
    rt = runtime(request)
    folder = request.query_params.get("folder", "")
    async with rt.pool.acquire() as conn:
        context = await _upload_context(conn, who, folder if folder.isdigit() else "")
    context["max_size"] = documents.size_text(rt.settings.max_upload_bytes)
    if request.method == "GET":
        return await render(request, "documents/upload.html", context)
    upload: documents.Upload | None = None
    try:
        upload = await _read_upload_form(request, who)
        context["values"] = {k: upload.fields.get(k, "") for k in ("folder_id", "title", "description")}
        row = await documents.upload_document(rt, who, upload)
    except ApiError as exc:
        if exc.status == 403 and exc.code == "csrf_failed":
            raise
        context.update(_upload_errors(exc))
        return await render(request, "documents/upload.html", context, status=page_status(exc))
    finally:
        if upload is not None:
            upload.discard()
    return RedirectResponse(documents.document_url(row["id"]) + "?done=uploaded", status_code=303)


async def version_page(request: Request) -> Response:
    """Upload a new version of a document (its uploader or staff); the earlier versions are kept."""
    who = await member_session(request)
    if who is None:
        return login_redirect(request)
    rt = runtime(request)
    document_id = path_int(request, "id")
    async with rt.pool.acquire() as conn:
        row = await documents.readable_document(conn, who, document_id)
    document = document_view(row, who)
    if not document["can_change"]:
        raise ApiError(
            403, "forbidden", "Only the person who shared this document, or a moderator, can upload a new version."
        )
    context: dict[str, Any] = {
        "document": document,
        "values": {},
        "accept": filetypes.ACCEPT_ATTRIBUTE,
        "accepted": filetypes.ACCEPTED_TEXT,
        "max_size": documents.size_text(rt.settings.max_upload_bytes),
    }
    if request.method == "GET":
        return await render(request, "documents/version.html", context)
    upload: documents.Upload | None = None
    try:
        upload = await _read_upload_form(request, who)
        context["values"] = {"note": upload.fields.get("note", "")}
        await documents.upload_version(rt, who, document_id, upload)
    except ApiError as exc:
        if exc.status == 403 and exc.code == "csrf_failed":
            raise
        context.update(_upload_errors(exc))
        return await render(request, "documents/version.html", context, status=page_status(exc))
    finally:
        if upload is not None:
            upload.discard()
    return RedirectResponse(documents.document_url(document_id) + "?done=version", status_code=303)


# --- a document -------------------------------------------------------------------------------------------------------

DONE = {
    "uploaded": "Your document is in the library. Thank you for sharing it.",
    "version": "The new version is uploaded. The earlier versions are kept below.",
    "saved": "Your changes were saved.",
    "commented": "Your comment was posted.",
}


async def _document_context(
    conn: asyncpg.Connection, who: Session | None, document_id: int, page: int
) -> dict[str, Any]:
    row = await documents.readable_document(conn, who, document_id)
    folder = await documents.readable_folder(conn, who, row["folder_id"])
    crumbs = [*await _breadcrumbs(conn, folder), {"href": documents.folder_url(folder["id"]), "text": folder["name"]}]
    rows, more = await documents.document_comments(conn, document_id, page=page)
    given = await documents.my_reactions(conn, who, [r["id"] for r in rows])
    may_comment = "login" if who is None else ""
    if who is not None:
        try:
            await posts.check_can_post(conn, who)
        except ApiError as exc:
            may_comment = exc.code
    base = documents.document_url(document_id)
    return {
        "document": document_view(row, who),
        "breadcrumbs": crumbs,
        "versions": [version_view(document_id, v) for v in await documents.versions(conn, document_id)],
        "comments": [comment_view(c, who, given.get(c["id"], set())) for c in rows],
        "cannot_comment": may_comment,
        "previous_url": f"{base}?page={page - 1}#comments" if page > 1 else None,
        "next_url": f"{base}?page={page + 1}#comments" if more else None,
        "values": {},
    }


async def document_page(request: Request) -> Response:
    """A document: what it is, its preview and download, its versions, counts and comments."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        context = await _document_context(conn, who, path_int(request, "id"), query_int(request, "page", 1))
    context["done"] = DONE.get(request.query_params.get("done", ""))
    return await render(request, "documents/document.html", context)


def _version(request: Request) -> int | None:
    return query_int(request, "version", 0, minimum=0, maximum=1_000_000) or None


async def download_page(request: Request) -> Response:
    """Download a version of a document (counted)."""
    who = await viewer(request)
    _, served = await documents.open_version(
        runtime(request), who, path_int(request, "id"), _version(request), "download", count=documents.counted(request)
    )
    return await documents.send_file(request, served, disposition="attachment")


async def preview_page(request: Request) -> Response:
    """Preview: PDFs and images inline (sandboxed), text in a page, and for other kinds a way to download."""
    who = await viewer(request)
    rt = runtime(request)
    document_id, version = path_int(request, "id"), _version(request)
    async with rt.pool.acquire() as conn:
        row = await documents.readable_document(conn, who, document_id)
        kind = (await documents.version_row(conn, row, version))["kind"]
    if kind == "text":
        document, served = await documents.open_version(
            rt, who, document_id, version, "preview", count=documents.counted(request)
        )
        content, cut = await documents.read_text(served)
        return await render(
            request,
            "documents/preview.html",
            {
                "document": document_view(document, who),
                "text": content,
                "cut": cut,
                "limit": documents.size_text(documents.TEXT_PREVIEW_BYTES),
            },
        )
    if kind not in documents.PREVIEW_CSP:
        return await render(
            request, "documents/preview.html", {"document": document_view(row, who), "no_preview": True}
        )
    _, served = await documents.open_version(rt, who, document_id, version, "preview", count=documents.counted(request))
    return await documents.send_file(request, served, disposition="inline", csp=documents.PREVIEW_CSP[kind])


async def edit_document_page(request: Request) -> Response:
    """Change a document's title, description or folder (its uploader or staff)."""
    who = await member_session(request)
    if who is None:
        if request.method == "POST":
            await form_data(request)
        return login_redirect(request)
    rt = runtime(request)
    document_id = path_int(request, "id")
    async with rt.pool.acquire() as conn:
        row = await documents.readable_document(conn, who, document_id)
        context = await _upload_context(conn, who, str(row["folder_id"]))
    document = document_view(row, who)
    if not document["can_change"]:
        raise ApiError(403, "forbidden", "Only the person who shared this document, or a moderator, can change it.")
    context.update(
        document=document,
        values={"title": row["title"], "description": row["description"], "folder_id": str(row["folder_id"])},
    )
    if request.method == "GET":
        return await render(request, "documents/edit.html", context)
    form = await form_data(request)
    values = {k: text(form, k) for k in ("title", "description", "folder_id")}
    try:
        data: dict[str, Any] = {"title": values["title"], "description": values["description"]}
        if not values["title"]:
            raise documents.invalid({"title": "Give the document a title"})
        data["folder_id"] = documents.parse_id(values["folder_id"], "folder_id")
        async with rt.pool.acquire() as conn, conn.transaction():
            await documents.update_document(conn, who, document_id, data)
    except ApiError as exc:
        context.update(values=values, **form_errors(exc, "title"))
        return await render(request, "documents/edit.html", context, status=page_status(exc))
    return RedirectResponse(documents.document_url(document_id) + "?done=saved", status_code=303)


async def delete_document_page(request: Request) -> Response:
    """Ask, then remove a document from the library (its uploader or staff)."""
    who = await member_session(request)
    if who is None:
        if request.method == "POST":
            await form_data(request)
        return login_redirect(request)
    rt = runtime(request)
    document_id = path_int(request, "id")
    async with rt.pool.acquire() as conn:
        row = await documents.readable_document(conn, who, document_id)
    document = document_view(row, who)
    if not document["can_change"]:
        raise ApiError(403, "forbidden", "Only the person who shared this document, or a moderator, can delete it.")
    if request.method == "GET":
        return await render(request, "documents/delete.html", {"document": document})
    await form_data(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        await documents.delete_document(conn, who, document_id)
    return RedirectResponse(document["folder"]["url"], status_code=303)


# --- comments ---------------------------------------------------------------------------------------------------------


async def comment_submit(request: Request) -> Response:
    """Post a comment on a document."""
    form = await form_data(request)
    who = await member_session(request)
    document_id = path_int(request, "id")
    if who is None:
        return login_redirect(request, documents.document_url(document_id))
    rt = runtime(request)
    body = text(form, "body")
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await documents.create_comment(conn, who, document_id, body)
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


async def edit_comment_page(request: Request) -> Response:
    """Edit a comment (its author or staff)."""
    who = await member_session(request)
    if who is None:
        if request.method == "POST":
            await form_data(request)
        return login_redirect(request)
    row, document = await _comment(request, who)
    if not documents.can_change_comment(who, row):
        raise ApiError(403, "forbidden", "You can only edit your own comments.")
    context: dict[str, Any] = {"comment": row, "document": document_view(document, who), "values": {"body": row["raw"]}}
    if request.method == "GET":
        return await render(request, "documents/edit_comment.html", context)
    form = await form_data(request)
    body = text(form, "body")
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            await documents.edit_comment(conn, who, row["id"], body)
    except ApiError as exc:
        context.update(values={"body": body}, **form_errors(exc, "body"))
        return await render(request, "documents/edit_comment.html", context, status=page_status(exc))
    return RedirectResponse(f"{documents.document_url(document['id'])}#comment-{row['id']}", status_code=303)


async def delete_comment_submit(request: Request) -> Response:
    """Delete a comment (its author or staff)."""
    await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row, document = await documents.readable_comment(conn, who, path_int(request, "id"))
        await documents.delete_comment(conn, who, row["id"])
    return RedirectResponse(f"{documents.document_url(document['id'])}#comments", status_code=303)


async def react_submit(request: Request) -> Response:
    """Give or take back a reaction to a comment (the buttons toggle)."""
    form = await form_data(request)
    who = await member_session(request)
    if who is None:
        return login_redirect(request)
    kind = text(form, "kind")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row, document = await documents.readable_comment(conn, who, path_int(request, "id"))
        given = await documents.my_reactions(conn, who, [row["id"]])
        if kind in given.get(row["id"], set()):
            await documents.remove_reaction(conn, who, row["id"], kind)
        else:
            await documents.add_reaction(conn, who, row["id"], kind)
    return RedirectResponse(f"{documents.document_url(document['id'])}#comment-{row['id']}", status_code=303)


routes: list[BaseRoute] = [
    Route("/library", library_page, methods=["GET"]),
    Route("/library/folders/new", folder_form_page, methods=["GET", "POST"]),
    Route("/library/folders/{id}", folder_page, methods=["GET"]),
    Route("/library/folders/{id}/edit", folder_form_page, methods=["GET", "POST"]),
    Route("/library/upload", upload_page, methods=["GET", "POST"]),
    Route("/library/upload/{id}", version_page, methods=["GET", "POST"]),
    Route("/library/documents/{id}", document_page, methods=["GET"]),
    Route("/library/documents/{id}/download", download_page, methods=["GET"]),
    Route("/library/documents/{id}/preview", preview_page, methods=["GET"]),
    Route("/library/documents/{id}/edit", edit_document_page, methods=["GET", "POST"]),
    Route("/library/documents/{id}/delete", delete_document_page, methods=["GET", "POST"]),
    Route("/library/documents/{id}/comments", comment_submit, methods=["POST"]),
    Route("/library/comments/{id}/edit", edit_comment_page, methods=["GET", "POST"]),
    Route("/library/comments/{id}/delete", delete_comment_submit, methods=["POST"]),
    Route("/library/comments/{id}/react", react_submit, methods=["POST"]),
]
