"""The library's JSON API: folders, documents, versions, downloads, previews and comments;
its request schemas and the JSON shapes (`*_json`) that the pages build on too.

Uploads are read as a stream: the body limit of the app is lifted for UPLOAD_PATHS and the
library enforces TICA_MAX_UPLOAD_BYTES itself (multipart.py); JSON bodies under those paths
keep the app's usual limit (read_small_json).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.library import comments, documents, filetypes, folders
from services.forum.library.folders import FOLDER_DESCRIPTION_MAX, FOLDER_NAME_MAX, FolderNode
from services.forum.library.multipart import Upload
from services.forum.moderation import screening
from shared.api import ApiRouter, Field, File, Schema, Shape, Write, page_of, parse_json, path_int, query_int, writing
from shared.sessions import Session
from shared.web import ApiError, require_writer, runtime, viewer

api = ApiRouter(tag="documents")

# Paths whose bodies may be larger than TICA_MAX_BODY_BYTES (app.py passes them to build_app);
# JSON bodies under them are limited here (read_small_json).
UPLOAD_PATHS = ("/api/documents", "/library/upload")

FOLDER_IN = Schema(
    "FolderIn",
    {
        "name": Field("string", required=True, min_length=1, max_length=FOLDER_NAME_MAX),
        "description": Field("string", nullable=True, max_length=FOLDER_DESCRIPTION_MAX),
        "parent_id": Field(
            "integer",
            nullable=True,
            minimum=1,
            maximum=access.MAX_ID,
            description="a top-level folder: this one becomes its subfolder (one level only)",
        ),
        "position": Field("integer", nullable=True, minimum=0, maximum=10_000),
        "group_ids": Field(
            "array",
            items="integer",
            max_length=50,
            minimum=1,
            maximum=access.MAX_ID,
            nullable=True,
            description="private to these groups (and staff) when not empty; a subfolder's groups "
            "must be among its parent's",
        ),
    },
)
FOLDER_PATCH = Schema(
    "FolderPatch",
    {
        "name": Field("string", min_length=1, max_length=FOLDER_NAME_MAX),
        "description": Field("string", max_length=FOLDER_DESCRIPTION_MAX),
        "position": Field("integer", minimum=0, maximum=10_000),
        "group_ids": Field("array", items="integer", max_length=50, minimum=1, maximum=access.MAX_ID),
    },
)
DOCUMENT_PATCH = Schema(
    "DocumentPatch",
    {
        "title": Field("string", min_length=1, max_length=documents.TITLE_MAX),
        "description": Field("string", max_length=documents.DESCRIPTION_MAX),
        "folder_id": Field("integer", minimum=1, maximum=access.MAX_ID, description="move it to another folder"),
    },
)
_FILE = Field("file", required=True, description="PDF, Word, PowerPoint, Excel, OpenDocument, plain text, PNG or JPEG")
UPLOAD_FORM = Schema(
    "DocumentUpload",
    {
        "file": _FILE,
        "folder_id": Field("integer", required=True, minimum=1, maximum=access.MAX_ID),
        "title": Field("string", max_length=documents.TITLE_MAX, description="the file's name when absent"),
        "description": Field("string", max_length=documents.DESCRIPTION_MAX),
    },
)
VERSION_FORM = Schema(
    "DocumentVersionUpload",
    {"file": _FILE, "note": Field("string", max_length=documents.NOTE_MAX, description="what changed")},
)
UPLOAD_REFUSALS = {
    413: "Larger than TICA_MAX_UPLOAD_BYTES",
    415: "A type of file the library does not take, or a name whose extension says another type",
}
COMMENT_IN = Schema(
    "DocumentCommentIn",
    {
        "body": Field(
            "string", required=True, min_length=1, max_length=comments.COMMENT_MAX, description="Markdown, as in posts"
        )
    },
)


async def read_small_json(request: Request, schema: Schema) -> dict[str, Any]:
    """read_json for the JSON endpoints under UPLOAD_PATHS, with the app's usual body limit."""
    limit = runtime(request).settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
    return schema.validate(parse_json(bytes(body)) if body else {})


@asynccontextmanager
async def writing_small(request: Request, body: Schema) -> AsyncIterator[Write]:
    """shared.api.writing for the JSON endpoints under UPLOAD_PATHS: the same steps, the body read
    with read_small_json.
    """
    who = await require_writer(request)
    data = await read_small_json(request, body)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        yield Write(who, data, conn)


async def _deleted(request: Request, delete: Callable[[asyncpg.Connection, Session, int], Awaitable[None]]) -> Response:
    """A delete endpoint: `delete` the request's {id} for the signed-in writer, in a transaction; 204."""
    async with writing(request) as w:
        await delete(w.conn, w.who, path_int(request, "id"))
    return Response(status_code=204)


def counted(request: Request) -> bool:
    """Downloads and previews count on GET; a HEAD request fetches nothing."""
    return request.method != "HEAD"


def version_param(request: Request) -> int | None:
    """The `?version=` asked for; None for the current one."""
    return query_int(request, "version", 0, minimum=0, maximum=1_000_000) or None


# --- JSON shapes ----------------------------------------------------------------------------------------------------

PERSON = Shape("Person", {"id": "integer?", "username": "string?", "display_name": "string"})
FOLDER_FIELDS = {
    "id": "integer",
    "parent_id": "integer?",
    "name": "string",
    "description": "string?",
    "position": "integer",
    "private": "boolean",
    "url": "string",
    "documents_count": "integer",
    "downloads_count": "integer",
    "previews_count": "integer",
    "group_ids?": ["integer"],
}
FOLDER = Shape("Folder", {**FOLDER_FIELDS, "subfolders?": [Shape("Subfolder", FOLDER_FIELDS)]})
VERSION = Shape(
    "DocumentVersion",
    {
        "version": "integer",
        "filename": "string",
        "kind": "string",
        "content_type": "string",
        "size_bytes": "integer",
        "sha256": "string",
        "note": "string?",
        "created_at": "datetime",
        "uploader": PERSON,
        "download_url": "string",
    },
)
DOCUMENT = Shape(
    "Document",
    {
        "id": "integer",
        "title": "string",
        "description": "string?",
        "folder": {"id": "integer", "name": "string", "url": "string"},
        "uploader": PERSON,
        "current_version": "integer",
        "file": {
            "filename": "string",
            "kind": "string",
            "label": "string",
            "content_type": "string",
            "size_bytes": "integer",
            "uploaded_at": "datetime",
        },
        "preview": "string",
        "counts": {
            "downloads": "integer",
            "previews": "integer",
            "unique_downloads": "integer",
            "unique_previews": "integer",
            "comments": "integer",
        },
        "created_at": "datetime",
        "updated_at": "datetime",
        "url": "string",
        "download_url": "string",
        "preview_url": "string",
        "versions?": [VERSION],
    },
)
FOLDER_PAGE = FOLDER.extend("FolderWithDocuments", {"documents": [DOCUMENT], "next": "integer?"})
COMMENT = Shape(
    "DocumentComment",
    {
        "id": "integer",
        "document_id": "integer",
        "author": PERSON,
        "raw": "string?",
        "cooked": "string?",
        "status": "string",
        "moderation_reason": "string?",
        "reactions": "object",
        "my_reactions": ["string"],
        "revision": "integer",
        "created_at": "datetime",
        "updated_at": "datetime",
    },
)
PAGE = Field("integer", minimum=1, maximum=10_000, description="1-based")
VERSION_QUERY = Field(
    "integer", minimum=0, maximum=1_000_000, description="a version number; the current one when absent (or 0)"
)


def person_json(user_id: int, username: str, display_name: str) -> dict[str, Any]:
    """Someone as the library's JSON names them."""
    return {"id": user_id, "username": username, "display_name": display_name}


def folder_json(node: FolderNode | asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A folder with its counts (including readable subfolders); groups only to staff."""
    row = node.row if isinstance(node, FolderNode) else node
    counted_ = node if isinstance(node, FolderNode) else FolderNode(row)
    out: dict[str, Any] = {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "name": row["name"],
        "description": row["description"],
        "position": row["position"],
        "private": bool(folders.folder_groups(row)),
        "url": folders.folder_url(row["id"]),
        "documents_count": counted_.documents_count,
        "downloads_count": counted_.downloads_count,
        "previews_count": counted_.previews_count,
    }
    if access.is_staff(who):
        out["group_ids"] = list(row["group_ids"])
    if isinstance(node, FolderNode):
        out["subfolders"] = [folder_json(child, who) for child in node.children]
    return out


def document_json(row: asyncpg.Record, version_rows: Sequence[asyncpg.Record] | None = None) -> dict[str, Any]:
    """A document with its current file and its counts; with every version when given."""
    filetype = filetypes.TYPES.get(row["kind"])
    out: dict[str, Any] = {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "folder": {"id": row["folder_id"], "name": row["folder_name"], "url": folders.folder_url(row["folder_id"])},
        "uploader": person_json(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
        "current_version": row["current_version"],
        "file": {
            "filename": row["filename"],
            "kind": row["kind"],
            "label": filetype.label if filetype else row["kind"],
            "content_type": row["content_type"],
            "size_bytes": row["size_bytes"],
            "uploaded_at": row["version_created_at"].isoformat(),
        },
        "preview": filetype.preview if filetype else "none",
        "counts": {
            "downloads": row["downloads_count"],
            "previews": row["previews_count"],
            "unique_downloads": row["unique_downloads_count"],
            "unique_previews": row["unique_previews_count"],
            "comments": row["comments_count"],
        },
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "url": documents.document_url(row["id"]),
        "download_url": f"/api/documents/{row['id']}/download",
        "preview_url": f"/api/documents/{row['id']}/preview",
    }
    if version_rows is not None:
        out["versions"] = [version_json(row["id"], v) for v in version_rows]
    return out


def version_json(document_id: int, row: asyncpg.Record) -> dict[str, Any]:
    """One version of a document: its file, note and uploader."""
    return {
        "version": row["version"],
        "filename": row["filename"],
        "kind": row["kind"],
        "content_type": row["content_type"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "note": row["note"],
        "created_at": row["created_at"].isoformat(),
        "uploader": person_json(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
        "download_url": f"/api/documents/{document_id}/download?version={row['version']}",
    }


def comment_json(row: asyncpg.Record, who: Session | None, given: Iterable[str] = ()) -> dict[str, Any]:
    """A comment; its text (and why it was hidden) only when access.text_withheld allows."""
    withheld = access.text_withheld(who, row["status"], row["author_id"])
    return {
        "id": row["id"],
        "document_id": row["document_id"],
        "author": person_json(row["author_id"], row["author_username"], row["author_display_name"]),
        "raw": None if withheld else row["raw"],
        "cooked": None if withheld else row["cooked"],
        "status": row["status"],
        "moderation_reason": row["moderation_reason"] if not withheld and row["status"] == "hidden" else None,
        "reactions": documents.json_dict(row["reactions"]),
        "my_reactions": sorted(given),
        "revision": row["revision"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def export_comment_out(row: asyncpg.Record) -> dict[str, Any]:
    """One document comment as the export API gives it (shape of export.post_out)."""
    return {
        "id": row["id"],
        "document_id": row["document_id"],
        "document_title": row["document_title"],
        "folder_id": row["folder_id"],
        "url": documents.document_url(row["document_id"]) + f"#comment-{row['id']}",
        "author": person_json(row["author_id"], row["author_username"], row["author_display_name"]),
        "text": row["text"],
        "status": row["status"],
        "audience": documents.document_audience(row),
        "created_at": row["created_at"].isoformat(),
    }


# --- folders --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderPage:
    """A readable folder as the viewer sees it, with one page of its documents."""

    folder: asyncpg.Record
    node: FolderNode
    documents: list[asyncpg.Record]
    page: int
    more: bool


async def folder_page_of(request: Request, who: Session | None) -> FolderPage:
    """The folder of the request (404 when unreadable) and the `?page=` of its documents asked for."""
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        folder = await folders.readable_folder(conn, who, path_int(request, "id"))
        node = await folders.folder_node(conn, who, folder)
        rows, more = await documents.folder_documents(conn, folder["id"], page=page)
    return FolderPage(folder, node, rows, page, more)


@api.get("/api/folders", answers={200: ("Top-level folders with their subfolders", page_of(FOLDER))})
async def list_folders(request: Request) -> Response:
    """The library's folders the viewer may read, top-level ones with their subfolders, with counts."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        tree = folders.folder_tree(await folders.readable_folders(conn, who))
    return JSONResponse({"items": [folder_json(node, who) for node in tree], "next": None})


@api.post("/api/folders", body=FOLDER_IN, answers={201: FOLDER}, auth=True)
async def create_folder_endpoint(request: Request) -> Response:
    """Create a folder or, with parent_id, a subfolder (admins)."""
    async with writing(request, FOLDER_IN) as w:
        row = await folders.create_folder(w.conn, w.who, w.data)
    return JSONResponse(folder_json(row, w.who), status_code=201)


@api.get(
    "/api/folders/{id:int}",
    answers={200: ("Folder with subfolders and a page of documents", FOLDER_PAGE)},
    query={"page": PAGE},
)
async def get_folder(request: Request) -> Response:
    """A folder, its readable subfolders and a page of its documents (latest first)."""
    who = await viewer(request)
    shown = await folder_page_of(request, who)
    out = folder_json(shown.node, who)
    documents_ = [document_json(r) for r in shown.documents]
    return JSONResponse({**out, "documents": documents_, "next": shown.page + 1 if shown.more else None})


@api.patch("/api/folders/{id:int}", body=FOLDER_PATCH, answers={200: FOLDER}, auth=True)
async def patch_folder(request: Request) -> Response:
    """Change a folder's name, description, position or groups (admins)."""
    async with writing(request, FOLDER_PATCH) as w:
        row = await folders.update_folder(w.conn, w.who, path_int(request, "id"), w.data)
    return JSONResponse(folder_json(row, w.who))


@api.delete("/api/folders/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_folder_endpoint(request: Request) -> Response:
    """Delete an empty folder (admins); 409 while it holds documents or subfolders."""
    return await _deleted(request, folders.delete_folder)


# --- documents ------------------------------------------------------------------------------------------------------


async def _uploaded(request: Request, action: Callable[[Upload], Awaitable[asyncpg.Record]]) -> asyncpg.Record:
    """Read the request's upload, hand it to `action`, and discard the temporary file however that ends."""
    upload = await documents.receive(request)
    try:
        return await action(upload)
    finally:
        upload.discard()


@api.post("/api/documents", form=UPLOAD_FORM, answers={201: DOCUMENT, **UPLOAD_REFUSALS}, auth=True)
async def upload_endpoint(request: Request) -> Response:
    """Share a document: multipart/form-data with `file`, `folder_id`, and optional `title`, `description`.

    The type comes from the content (PDF, Word, PowerPoint, Excel, OpenDocument, plain
    text, PNG, JPEG); 415 for another type or a name whose extension says another type,
    413 above TICA_MAX_UPLOAD_BYTES (before the rest is read), 422 for a missing or empty
    file. The file name is cleaned (no folders, control or direction characters).
    """
    who = await require_writer(request)
    row = await _uploaded(request, lambda upload: documents.upload_document(runtime(request), who, upload))
    return JSONResponse(document_json(row), status_code=201)


@api.get("/api/documents/{id:int}", answers={200: ("Document with versions", DOCUMENT)})
async def get_document(request: Request) -> Response:
    """A document, its current file, every version and its counts."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        row = await documents.readable_document(conn, who, path_int(request, "id"))
        version_rows = await documents.versions(conn, row["id"])
    return JSONResponse(document_json(row, version_rows))


@api.patch("/api/documents/{id:int}", body=DOCUMENT_PATCH, answers={200: DOCUMENT}, auth=True)
async def patch_document(request: Request) -> Response:
    """Change a document's title or description, or move it to another folder (its uploader or staff)."""
    async with writing_small(request, DOCUMENT_PATCH) as w:
        row = await documents.update_document(w.conn, w.who, path_int(request, "id"), w.data)
    return JSONResponse(document_json(row))


@api.delete("/api/documents/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_document_endpoint(request: Request) -> Response:
    """Remove a document from the library (its uploader or staff)."""
    return await _deleted(request, documents.delete_document)


@api.post(
    "/api/documents/{id:int}/versions",
    form=VERSION_FORM,
    answers={201: ("Document (its new current version)", DOCUMENT), **UPLOAD_REFUSALS},
    auth=True,
)
async def upload_version_endpoint(request: Request) -> Response:
    """Upload a new version (its uploader or staff): multipart/form-data with `file` and optional `note`.

    The same checks as a new document; every earlier version is kept and stays downloadable.
    """
    who = await require_writer(request)
    document_id = path_int(request, "id")
    row = await _uploaded(request, lambda upload: documents.upload_version(runtime(request), who, document_id, upload))
    async with runtime(request).pool.acquire() as conn:
        version_rows = await documents.versions(conn, row["id"])
    return JSONResponse(document_json(row, version_rows), status_code=201)


@api.get(
    "/api/documents/{id:int}/download",
    answers={200: File("The file, of its detected type (Content-Disposition: attachment)")},
    query={"version": VERSION_QUERY},
)
async def download_endpoint(request: Request) -> Response:
    """Download a document's file (counted): its detected type, as an attachment, never sniffed."""
    who = await viewer(request)
    _, served = await documents.open_version(
        runtime(request), who, path_int(request, "id"), version_param(request), "download", count=counted(request)
    )
    return await documents.send_file(request, served, disposition="attachment")


async def preview_target(request: Request, who: Session | None) -> tuple[asyncpg.Record, str]:
    """The document the request asks to preview, and the kind of its file (404 when unreadable)."""
    async with runtime(request).pool.acquire() as conn:
        document = await documents.readable_document(conn, who, path_int(request, "id"))
        return document, str((await documents.version_row(conn, document, version_param(request)))["kind"])


async def preview_file(request: Request, who: Session | None, kind: str) -> Response:
    """The file of the request's document and version, inline and sandboxed (the preview is counted)."""
    rt = runtime(request)
    document_id, version = path_int(request, "id"), version_param(request)
    _, served = await documents.open_version(rt, who, document_id, version, "preview", count=counted(request))
    return await documents.send_file(request, served, disposition="inline", csp=documents.PREVIEW_CSP[kind])


@api.get(
    "/api/documents/{id:int}/preview",
    answers={
        200: File("The file, inline and sandboxed", ("application/pdf", "image/png", "image/jpeg", "text/plain")),
        409: "No preview",
    },
    query={"version": VERSION_QUERY},
)
async def preview_endpoint(request: Request) -> Response:
    """Preview a PDF, image or text file inline in a sandbox (counted); 409 `no_preview` for other kinds."""
    who = await viewer(request)
    _, kind = await preview_target(request, who)
    if kind not in documents.PREVIEW_CSP:
        raise ApiError(409, "no_preview", "This kind of file cannot be previewed. Download it to open it.")
    return await preview_file(request, who, kind)


# --- comments -------------------------------------------------------------------------------------------------------


@api.get("/api/documents/{id:int}/comments", answers={200: page_of(COMMENT)}, query={"page": PAGE})
async def list_comments(request: Request) -> Response:
    """A document's comments, oldest first."""
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        await documents.readable_document(conn, who, path_int(request, "id"))
        rows, more = await comments.document_comments(conn, path_int(request, "id"), page=page)
        given = await documents.my_reactions(conn, who, [r["id"] for r in rows])
    items = [comment_json(r, who, given.get(r["id"], ())) for r in rows]
    return JSONResponse({"items": items, "next": page + 1 if more else None})


@api.post("/api/documents/{id:int}/comments", body=COMMENT_IN, answers={201: COMMENT}, auth=True)
async def create_comment_endpoint(request: Request) -> Response:
    """Comment on a document (Markdown; @mentions notify)."""
    async with writing_small(request, COMMENT_IN) as w:
        rules = screening.PostingRules.of(runtime(request))
        row = await comments.create_comment(w.conn, w.who, path_int(request, "id"), w.data["body"], rules)
    return JSONResponse(comment_json(row, w.who), status_code=201)


@api.patch("/api/document-comments/{id:int}", body=COMMENT_IN, answers={200: COMMENT}, auth=True)
async def edit_comment_endpoint(request: Request) -> Response:
    """Edit a comment (its author or staff); the previous text is kept."""
    async with writing(request, COMMENT_IN) as w:
        rules = screening.PostingRules.of(runtime(request))
        row = await comments.edit_comment(w.conn, w.who, path_int(request, "id"), w.data["body"], rules)
        given = await documents.my_reactions(w.conn, w.who, [row["id"]])
    return JSONResponse(comment_json(row, w.who, given.get(row["id"], ())))


@api.delete("/api/document-comments/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_comment_endpoint(request: Request) -> Response:
    """Delete a comment (its author or staff)."""
    return await _deleted(request, comments.delete_comment)
