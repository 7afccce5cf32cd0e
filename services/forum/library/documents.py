"""Documents in the library: every version ever uploaded, uploads checked by content
(filetypes.py) and kept through the storage interface (storage.py), downloads and
previews counted exactly. A document is readable when its folder is (folders.py,
access.folder_readable), and so are its comments (readable_comment); outsiders get 404,
and the audience on every event says the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import asyncpg
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.forum import access
from services.forum.library import filetypes
from services.forum.library.folders import clean_field, given_or_current, invalid, not_found, readable, readable_folder
from services.forum.library.multipart import Upload, read_upload
from services.forum.library.storage import Storage, StorageError, StorageMissing, StoredFile, storage
from services.forum.outbox import write_event
from services.forum.topics import posts
from services.forum.writings import reactions
from services.forum.writings.targets import COMMENT
from shared.events import DocumentDeleted, DocumentUpdated, DocumentUploaded
from shared.sessions import Session
from shared.settings import Settings
from shared.web import ApiError, Runtime, runtime

TITLE_MAX, DESCRIPTION_MAX, NOTE_MAX = 200, 2000, 500
DOCUMENTS_PER_PAGE = 50
TEXT_PREVIEW_BYTES = 200 * 1024

# Inline previews run sandboxed: an opaque origin, no access to the site or its cookies.
# PDF viewers are scripts of the browser's own, and some (Safari's) refuse to run without
# allow-scripts; in the opaque origin those scripts still reach nothing of ours.
PREVIEW_CSP = {"pdf": "sandbox allow-scripts", "png": "sandbox", "jpeg": "sandbox", "text": "sandbox"}


def json_dict(value: Any) -> dict[str, Any]:
    """A jsonb object from a pool with the json codec (a dict) or a bare connection (its text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def tmp_dir(settings: Settings) -> Path:
    """Where uploads wait while they are read and checked."""
    return settings.data_dir / "tmp"


async def receive(request: Request) -> Upload:
    """The upload of a request (API or form), streamed within TICA_MAX_UPLOAD_BYTES."""
    settings = runtime(request).settings
    return await read_upload(request, max_bytes=settings.max_upload_bytes, tmp_dir=tmp_dir(settings))


# --- SQL and reading ----------------------------------------------------------------------------------------------

_DOCUMENT_SELECT = """
SELECT d.id, d.folder_id, d.title, d.description, d.current_version, d.downloads_count, d.previews_count,
       d.unique_downloads_count, d.unique_previews_count, d.comments_count, d.created_at, d.updated_at,
       d.uploader_id, u.username AS uploader_username, u.display_name AS uploader_display_name,
       v.filename, v.kind, v.content_type, v.size_bytes, v.storage_key, v.created_at AS version_created_at,
       f.name AS folder_name, f.parent_id AS folder_parent_id, f.group_ids,
       coalesce(p.group_ids, '{}') AS parent_group_ids
FROM forum.documents d
JOIN forum.users u ON u.id = d.uploader_id
JOIN forum.document_versions v ON v.document_id = d.id AND v.version = d.current_version
JOIN forum.folders f ON f.id = d.folder_id
LEFT JOIN forum.folders p ON p.id = f.parent_id
"""
DOCUMENT_SQL = f"{_DOCUMENT_SELECT} WHERE d.id = $1 AND d.deleted_at IS NULL"
FOLDER_DOCUMENTS_SQL = f"""{_DOCUMENT_SELECT}
WHERE d.folder_id = $1 AND d.deleted_at IS NULL
ORDER BY d.updated_at DESC, d.id DESC LIMIT $2 OFFSET $3
"""
VERSIONS_SQL = """
SELECT v.version, v.filename, v.kind, v.content_type, v.size_bytes, v.sha256, v.storage_key, v.note, v.created_at,
       u.id AS uploader_id, u.username AS uploader_username, u.display_name AS uploader_display_name
FROM forum.document_versions v JOIN forum.users u ON u.id = v.uploader_id
WHERE v.document_id = $1 ORDER BY v.version DESC
"""
VERSION_SQL = """
SELECT version, filename, kind, content_type, size_bytes, storage_key
FROM forum.document_versions WHERE document_id = $1 AND version = $2
"""
INSERT_DOCUMENT_SQL = """
INSERT INTO forum.documents (folder_id, title, description, uploader_id) VALUES ($1, $2, $3, $4) RETURNING id
"""
INSERT_VERSION_SQL = """
INSERT INTO forum.document_versions (document_id, version, filename, kind, content_type, size_bytes,
    sha256, storage_key, uploader_id, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
NEXT_VERSION_SQL = """
UPDATE forum.documents SET current_version = current_version + 1, updated_at = now()
WHERE id = $1 AND deleted_at IS NULL RETURNING current_version
"""
UPDATE_DOCUMENT_SQL = """
UPDATE forum.documents SET title = $2, description = $3, folder_id = $4, updated_at = now() WHERE id = $1
"""
DELETE_DOCUMENT_SQL = "UPDATE forum.documents SET deleted_at = now() WHERE id = $1"

# Counting: one UPDATE per view, so concurrent views never lose an increment; the first view
# of a member also inserts their row and counts them once.
COUNT_SQL = {
    ("download", False): "UPDATE forum.documents SET downloads_count = downloads_count + 1 WHERE id = $1",
    ("download", True): "UPDATE forum.documents SET downloads_count = downloads_count + 1, "
    "unique_downloads_count = unique_downloads_count + 1 WHERE id = $1",
    ("preview", False): "UPDATE forum.documents SET previews_count = previews_count + 1 WHERE id = $1",
    ("preview", True): "UPDATE forum.documents SET previews_count = previews_count + 1, "
    "unique_previews_count = unique_previews_count + 1 WHERE id = $1",
}
FIRST_VIEW_SQL = """
INSERT INTO forum.document_views (document_id, kind, user_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING true
"""


def document_url(document_id: int) -> str:
    """A document's page."""
    return f"/library/documents/{document_id}"


def document_audience(row: asyncpg.Record) -> list[str]:
    """Who may read a document (and its comments): its folder's audience."""
    return access.folder_audience(row["group_ids"], row["parent_group_ids"])


async def fetch_document(conn: asyncpg.Connection, document_id: int) -> asyncpg.Record | None:
    """One document that is not deleted, with its current version and folder, readable or not."""
    if not 0 < document_id < access.MAX_ID:
        return None
    return await conn.fetchrow(DOCUMENT_SQL, document_id)


def _about(row: asyncpg.Record) -> dict[str, Any]:
    """What document.uploaded and document.updated both say: which document, where, what it is, who may read it."""
    return {
        "document_id": row["id"],
        "folder_id": row["folder_id"],
        "title": row["title"],
        "description": row["description"],
        "audience": document_audience(row),
    }


async def _as_written(conn: asyncpg.Connection, document_id: int) -> asyncpg.Record:
    """A document just written, as it is now (for its event and the answer)."""
    row = await fetch_document(conn, document_id)
    assert row is not None
    return row


async def readable_document(conn: asyncpg.Connection, who: Session | None, document_id: int) -> asyncpg.Record:
    """The document if the viewer may read its folder; 404 otherwise."""
    row = await fetch_document(conn, document_id)
    if row is None or not readable(who, row):
        raise not_found()
    return row


async def folder_documents(
    conn: asyncpg.Connection, folder_id: int, *, page: int = 1
) -> tuple[list[asyncpg.Record], bool]:
    """A page of a folder's documents, the latest changed first; and whether there is another page."""
    rows = await conn.fetch(FOLDER_DOCUMENTS_SQL, folder_id, DOCUMENTS_PER_PAGE + 1, (page - 1) * DOCUMENTS_PER_PAGE)
    return list(rows[:DOCUMENTS_PER_PAGE]), len(rows) > DOCUMENTS_PER_PAGE


async def versions(conn: asyncpg.Connection, document_id: int) -> list[asyncpg.Record]:
    """Every version of a document, the newest first."""
    return list(await conn.fetch(VERSIONS_SQL, document_id))


async def version_row(conn: asyncpg.Connection, document: asyncpg.Record, version: int | None) -> asyncpg.Record:
    """The file of one version (the current one when None); 404 when there is no such version."""
    row = await conn.fetchrow(VERSION_SQL, document["id"], version or document["current_version"])
    if row is None:
        raise not_found("version")
    return row


async def count_view(conn: asyncpg.Connection, document_id: int, kind: str, user_id: int | None) -> None:
    """Count one download or preview, and the member's first one of this document."""
    async with conn.transaction():
        first = bool(user_id) and bool(await conn.fetchval(FIRST_VIEW_SQL, document_id, kind, user_id))
        await conn.execute(COUNT_SQL[(kind, first)], document_id)


# --- actions --------------------------------------------------------------------------------------------------------


def require_changeable(who: Session, document: asyncpg.Record, doing: str) -> None:
    """403 unless the viewer may change the document (access.document_changeable): "... can {doing}"."""
    if not access.document_changeable(who, document["uploader_id"]):
        raise ApiError(403, "forbidden", f"Only the person who shared this document, or a moderator, can {doing}.")


def _title_from(filename: str) -> str:
    stem = filename.rpartition(".")[0] or filename
    return " ".join(stem.replace("_", " ").split())[:TITLE_MAX] or "Untitled document"


def parse_id(value: str | None, name: str) -> int:
    """A positive id typed into a form field; 422 naming the field otherwise."""
    value = (value or "").strip()
    if not value.isdigit() or len(value) > 18 or not 0 < int(value) < access.MAX_ID:
        raise invalid({name: "Choose a folder" if name == "folder_id" else "must be a whole number"})
    return int(value)


@dataclass(frozen=True)
class Checked:
    """An upload that passed every check: its type, cleaned name and fields."""

    filetype: filetypes.FileType
    filename: str
    title: str
    description: str


async def _check_file(upload: Upload) -> tuple[filetypes.FileType, str]:
    """The upload's type and cleaned name: 422 with no file or an empty one, 415 when refused."""
    if upload.path is None:
        raise invalid({"file": "Choose a file to upload"})
    if upload.size == 0:
        raise invalid({"file": "The selected file is empty"})
    try:
        return await asyncio.to_thread(filetypes.identify, upload.path, upload.filename)
    except filetypes.UnsupportedFile as exc:
        raise ApiError(415, "unsupported_media_type", str(exc), {"file": str(exc)}) from None


async def check_new_document(conn: asyncpg.Connection, who: Session, upload: Upload) -> tuple[int, Checked]:
    """Check an upload of a new document: the folder (404 when unreadable), the fields, the author, the file."""
    fields = upload.fields
    folder_id = parse_id(fields.get("folder_id"), "folder_id")
    title = clean_field(fields.get("title"), "title", TITLE_MAX)
    description = clean_field(fields.get("description"), "description", DESCRIPTION_MAX, multiline=True)
    await readable_folder(conn, who, folder_id)
    await posts.check_can_post(conn, who)
    filetype, filename = await _check_file(upload)
    return folder_id, Checked(filetype, filename, title or _title_from(filename), description)


@dataclass(frozen=True)
class Stored:
    """A checked upload whose file is in storage under `key`, to be recorded."""

    checked: Checked
    upload: Upload
    key: str


async def _insert_version(
    conn: asyncpg.Connection, who: Session, document_id: int, version: int, stored: Stored, note: str
) -> asyncpg.Record:
    """Record a version and write document.uploaded; the document's row."""
    checked, upload = stored.checked, stored.upload
    await conn.execute(
        INSERT_VERSION_SQL,
        document_id,
        version,
        checked.filename,
        checked.filetype.kind,
        checked.filetype.content_type,
        upload.size,
        upload.sha256,
        stored.key,
        who.user_id,
        note,
    )
    row = await _as_written(conn, document_id)
    await write_event(
        conn,
        DocumentUploaded(
            **_about(row),
            document_version=row["current_version"],
            filename=row["filename"],
            kind=row["kind"],
            size_bytes=row["size_bytes"],
            uploader_id=who.user_id,
            uploader_username=who.username,
            created_at=row["version_created_at"].isoformat(),
        ),
        actor_id=who.user_id,
    )
    return row


async def insert_document(conn: asyncpg.Connection, who: Session, folder_id: int, stored: Stored) -> asyncpg.Record:
    """Record a new document whose file is in storage (document.uploaded); its row."""
    checked = stored.checked
    document_id = await conn.fetchval(INSERT_DOCUMENT_SQL, folder_id, checked.title, checked.description, who.user_id)
    return await _insert_version(conn, who, document_id, 1, stored, "")


def _storage_unavailable(doing: str) -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        f"We could not {doing} the file just now. Please try again soon.",
        headers={"Retry-After": "30"},
    )


async def store(files: Storage, upload: Upload, filetype: filetypes.FileType) -> str:
    """Put the file in storage under a new random key (never its name); the key."""
    assert upload.path is not None
    key = f"documents/{secrets.token_urlsafe(24)}"
    try:
        await files.put(key, upload.path, size=upload.size, sha256=upload.sha256, content_type=filetype.content_type)
    except StorageError:
        raise _storage_unavailable("save") from None
    return key


@contextlib.asynccontextmanager
async def _removed_on_failure(files: Storage, key: str) -> AsyncIterator[None]:
    """Recording a stored file: when that fails, the file goes too (nothing would ever point at it)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(StorageError):
            await files.delete(key)
        raise


async def upload_document(rt: Runtime, who: Session, upload: Upload) -> asyncpg.Record:
    """Share a new document: check everything, store the file, then record it (document.uploaded)."""
    async with rt.pool.acquire() as conn:
        folder_id, checked = await check_new_document(conn, who, upload)
    files = storage(rt)
    key = await store(files, upload, checked.filetype)
    async with _removed_on_failure(files, key), rt.pool.acquire() as conn, conn.transaction():
        await readable_folder(conn, who, folder_id)  # it may have changed while the file was stored
        return await insert_document(conn, who, folder_id, Stored(checked, upload, key))


async def upload_version(rt: Runtime, who: Session, document_id: int, upload: Upload) -> asyncpg.Record:
    """Upload a new version of a document (its uploader or staff); every earlier version is kept."""
    async with rt.pool.acquire() as conn:
        document = await readable_document(conn, who, document_id)
        require_changeable(who, document, "upload a new version")
        await posts.check_can_post(conn, who)
        note = clean_field(upload.fields.get("note"), "note", NOTE_MAX, multiline=True)
        filetype, filename = await _check_file(upload)
    checked = Checked(filetype, filename, document["title"], document["description"])
    files = storage(rt)
    key = await store(files, upload, filetype)
    async with _removed_on_failure(files, key), rt.pool.acquire() as conn, conn.transaction():
        number = await conn.fetchval(NEXT_VERSION_SQL, document_id)
        if number is None:
            raise not_found()
        return await _insert_version(conn, who, document_id, number, Stored(checked, upload, key), note)


async def update_document(
    conn: asyncpg.Connection, who: Session, document_id: int, data: dict[str, Any]
) -> asyncpg.Record:
    """Change a document's title or description, or move it to another folder (its uploader or staff)."""
    document = await readable_document(conn, who, document_id)
    require_changeable(who, document, "change it")
    title = given_or_current(data, document, "title", TITLE_MAX)
    if not title:
        raise invalid({"title": "is required"})
    description = given_or_current(data, document, "description", DESCRIPTION_MAX, multiline=True)
    folder_id = data.get("folder_id", document["folder_id"])
    if folder_id != document["folder_id"]:
        try:
            await readable_folder(conn, who, folder_id)
        except ApiError:
            raise invalid({"folder_id": "must be a folder you can see"}) from None
    await conn.execute(UPDATE_DOCUMENT_SQL, document_id, title, description, folder_id)
    row = await _as_written(conn, document_id)
    await write_event(conn, DocumentUpdated(**_about(row)), actor_id=who.user_id)
    return row


async def delete_document(conn: asyncpg.Connection, who: Session, document_id: int) -> None:
    """Remove a document from the library (its uploader or staff); its files stay in storage for recovery."""
    document = await readable_document(conn, who, document_id)
    require_changeable(who, document, "delete it")
    await conn.execute(DELETE_DOCUMENT_SQL, document_id)
    await write_event(
        conn, DocumentDeleted(document_id=document_id, folder_id=document["folder_id"]), actor_id=who.user_id
    )


# --- downloads and previews ------------------------------------------------------------------------------------------


def content_disposition(kind: str, filename: str) -> str:
    """`attachment` or `inline` with an ASCII fallback name and the exact UTF-8 one (RFC 6266, RFC 8187)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in filename) or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass(frozen=True)
class Served:
    """A file ready to send: the version, and the opened file."""

    version: asyncpg.Record
    file: StoredFile


async def open_version(
    rt: Runtime, who: Session | None, document_id: int, version: int | None, kind: str, *, count: bool = True
) -> tuple[asyncpg.Record, Served]:
    """Open a version's file for a download or preview and count it; 404 when unreadable or missing.

    `count=False` for HEAD requests: a link checker asking about a file has not downloaded it.
    """
    async with rt.pool.acquire() as conn:
        document = await readable_document(conn, who, document_id)
        row = await version_row(conn, document, version)
    try:
        opened = await storage(rt).open(row["storage_key"])
    except StorageMissing:
        raise ApiError(404, "not_found", "The file of this document is missing. Please tell the moderators.") from None
    except StorageError:
        raise _storage_unavailable("open") from None
    try:
        if count:
            async with rt.pool.acquire() as conn:
                await count_view(conn, document_id, kind, who.user_id if who else None)
    except BaseException:
        await opened.aclose()
        raise
    return document, Served(row, opened)


def file_headers(served: Served, *, disposition: str, csp: str | None = None) -> dict[str, str]:
    """How a file is sent: as an attachment or inline, its exact size, never cached, sandboxed when shown."""
    headers = {
        "content-disposition": content_disposition(disposition, served.version["filename"]),
        "content-length": str(served.file.size),
        "cache-control": "private, no-store",
    }
    if csp:
        headers["content-security-policy"] = csp
    return headers


async def send_file(request: Request, served: Served, *, disposition: str, csp: str | None = None) -> Response:
    """The file as a streamed response with its detected type (nosniff comes with every response).

    A HEAD request gets the headers only, and the file is closed at once.
    """
    headers = file_headers(served, disposition=disposition, csp=csp)
    media_type = served.version["content_type"]
    if request.method == "HEAD":
        await served.file.aclose()
        return Response(media_type=media_type, headers=headers)
    return FileStreamResponse(served.file, media_type=media_type, headers=headers)


class FileStreamResponse(StreamingResponse):
    """A stored file streamed out, closed when the response ends however it ends.

    When the client goes away before the first chunk, the chunk generator never starts and
    its own cleanup never runs; closing here keeps the file handle (or storage connection) from leaking.
    """

    def __init__(self, file: StoredFile, *, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(file.chunks(), media_type=media_type, headers=headers)
        self.file = file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.file.aclose()


async def read_text(served: Served, limit: int = TEXT_PREVIEW_BYTES) -> tuple[str, bool]:
    """The start of a text file (at most `limit` bytes, cut at a character) and whether it was cut."""
    data = bytearray()
    async with contextlib.aclosing(served.file.chunks()) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > limit:
                break
    await served.file.aclose()
    cut = len(data) > limit
    return bytes(data[:limit]).decode("utf-8", "ignore").lstrip("\ufeff"), cut


# --- comments: reading them (writings/ gives them reactions and flags) ----------------------------------------------

COMMENT_SELECT = """
SELECT c.id, c.document_id, c.author_id, c.raw, c.cooked, c.status, c.reactions, c.revision, c.created_at,
       c.updated_at, c.moderation_reason, u.username AS author_username, u.display_name AS author_display_name
FROM forum.document_comments c JOIN forum.users u ON u.id = c.author_id
"""
COMMENT_SQL = f"{COMMENT_SELECT} WHERE c.id = $1 AND c.status <> 'deleted'"


async def readable_comment(
    conn: asyncpg.Connection, who: Session | None, comment_id: int
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """A comment that is not deleted, and its document, if the viewer may read them; 404 otherwise."""
    row = await conn.fetchrow(COMMENT_SQL, comment_id) if 0 < comment_id < access.MAX_ID else None
    if row is None:
        raise not_found("comment")
    try:
        document = await readable_document(conn, who, row["document_id"])
    except ApiError:
        raise not_found("comment") from None
    return row, document


async def my_reactions(
    conn: asyncpg.Connection, who: Session | None, comment_ids: Sequence[int]
) -> dict[int, set[str]]:
    """The reactions the viewer gave, by comment."""
    return await reactions.my_reactions(conn, who, COMMENT, comment_ids)
