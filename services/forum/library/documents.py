"""The shared document library: folders (ordered, described, one level of subfolders,
may belong to groups), documents with every version ever uploaded, uploads checked by
content (filetypes.py) and kept through the storage interface (storage.py), downloads
and previews counted exactly, and comments with the posts' markdown, reactions and flags.

One visibility rule (access.py): a folder with groups is readable by their members
and staff only, a subfolder also needs its parent readable, and everything in a folder
(documents, versions, files, comments) follows it; outsiders get 404. The audience on
every event says the same to search and notify.

Uploads are read as a stream: the body limit of the app is lifted for UPLOAD_PATHS and
this module enforces TICA_MAX_UPLOAD_BYTES itself, answering 413 as soon as a body is
too large, never after reading all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import anyio
import asyncpg
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.forum import access
from services.forum.accounts import accounts
from services.forum.groups import groups
from services.forum.library import filetypes
from services.forum.library.storage import Storage, StorageError, StorageMissing, StoredFile, storage, storage_for
from services.forum.moderation import safety
from services.forum.topics import posts
from shared import markdown
from shared.api import ApiRouter, Field, Schema, path_int, query_int, read_json
from shared.events import (
    DocumentCommentCreated,
    DocumentCommentDeleted,
    DocumentCommentEdited,
    DocumentDeleted,
    DocumentUpdated,
    DocumentUploaded,
    FolderUpdated,
    write_event,
)
from shared.sessions import CSRF_COOKIE, Session, csrf_ok
from shared.settings import Settings
from shared.web import ApiError, Runtime, check_csrf, require_viewer, runtime, viewer

api = ApiRouter(tag="documents")

# Paths whose bodies may be larger than TICA_MAX_BODY_BYTES (app.py passes them to build_app);
# JSON bodies under them are limited here (read_small_json).
UPLOAD_PATHS = ("/api/documents", "/library/upload")
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the boundaries and the small fields beside the file
FIELD_MAX_BYTES = 16 * 1024
MAX_FIELDS = 20
TITLE_MAX, DESCRIPTION_MAX, NOTE_MAX = 200, 2000, 500
FOLDER_NAME_MAX, FOLDER_DESCRIPTION_MAX = 80, 1000
DOCUMENTS_PER_PAGE = 50
COMMENTS_PER_PAGE = 50
COMMENT_MAX = posts.BODY_MAX
TEXT_PREVIEW_BYTES = 200 * 1024
MAX_ID = 2**62
FLAG_REASONS = ("off_topic", "inappropriate", "spam", "safeguarding", "other")

# Inline previews run sandboxed: an opaque origin, no access to the site or its cookies.
# PDF viewers are scripts of the browser's own, and some (Safari's) refuse to run without
# allow-scripts; in the opaque origin those scripts still reach nothing of ours.
PREVIEW_CSP = {"pdf": "sandbox allow-scripts", "png": "sandbox", "jpeg": "sandbox", "text": "sandbox"}

FOLDER_IN = Schema(
    "FolderIn",
    {
        "name": Field("string", required=True, min_length=1, max_length=FOLDER_NAME_MAX),
        "description": Field("string", nullable=True, max_length=FOLDER_DESCRIPTION_MAX),
        "parent_id": Field(
            "integer",
            nullable=True,
            minimum=1,
            maximum=MAX_ID,
            description="a top-level folder: this one becomes its subfolder (one level only)",
        ),
        "position": Field("integer", nullable=True, minimum=0, maximum=10_000),
        "group_ids": Field(
            "array",
            items="integer",
            max_length=50,
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
        "group_ids": Field("array", items="integer", max_length=50),
    },
)
DOCUMENT_PATCH = Schema(
    "DocumentPatch",
    {
        "title": Field("string", min_length=1, max_length=TITLE_MAX),
        "description": Field("string", max_length=DESCRIPTION_MAX),
        "folder_id": Field("integer", minimum=1, maximum=MAX_ID, description="move it to another folder"),
    },
)
COMMENT_IN = Schema(
    "DocumentCommentIn",
    {"body": Field("string", required=True, min_length=1, max_length=COMMENT_MAX, description="Markdown, as in posts")},
)
REACTION_IN = Schema("DocumentCommentReactionIn", {"kind": Field("string", required=True, enum=posts.REACTION_KINDS)})
FLAG_IN = Schema(
    "DocumentCommentFlagIn",
    {
        "reason": Field("string", required=True, enum=FLAG_REASONS),
        "note": Field("string", nullable=True, max_length=500),
    },
)


def json_dict(value: Any) -> dict[str, Any]:
    """A jsonb object from a pool with the json codec (a dict) or a bare connection (its text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def not_found(what: str = "document") -> ApiError:
    return ApiError(404, "not_found", f"We could not find that {what}.")


def invalid(problems: dict[str, str]) -> ApiError:
    return ApiError(422, "invalid", "Some fields need attention.", problems)


def size_text(size: int) -> str:
    """A size as people read it: "812 bytes", "34 KB", "2.5 MB"."""
    if size < 1024:
        return f"{size} byte{'s' if size != 1 else ''}"
    if size < 1024 * 1024:
        return f"{size // 1024} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


# --- reading an upload as a stream -----------------------------------------------------------------------------


@dataclass
class Upload:
    """A multipart upload: its small fields and its one file, saved to a temporary file."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        """Delete the temporary file (always call when done with the upload)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The file is too large. Files can be up to {size_text(max_bytes)}.",
        {"file": f"The file must be smaller than {size_text(max_bytes)}"},
    )


class _Multipart:
    """python-multipart callbacks that keep the fields and stream the file part to disk.

    The callbacks run inside parser.write(); they only collect. The caller writes the
    collected file bytes to disk and checks the limits between chunks.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.upload = Upload()
        self.handle = handle
        self.hash = hashlib.sha256()
        self.pending = bytearray()
        self.error: ApiError | None = None
        self.ended = False  # the closing boundary was seen: the body is complete
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._seen_file = False
        self._data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_end": self.end,
        }

    def fail(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        if self.error is None:
            self.error = ApiError(status, code, message, fields)

    def end(self) -> None:
        self.ended = True

    def part_begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._data = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.upload.fields) >= MAX_FIELDS:
                self.fail(400, "bad_request", "The form has too many fields.")
            return
        filename = options[b"filename"].decode("utf-8", "replace")
        if not filename and self._name == "file":
            return  # a form sent without choosing a file: an empty part, no file
        if self._name != "file" or self._seen_file:
            self.fail(400, "bad_request", "Send one file, in the form field named \u201cfile\u201d.")
            return
        self._is_file = self._seen_file = True
        self.upload.filename = filename

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        chunk = data[start:end]
        if self._is_file:
            self.pending += chunk
            self.hash.update(chunk)
            self.upload.size += len(chunk)
        elif len(self._data) + len(chunk) > FIELD_MAX_BYTES:
            self.fail(413, "payload_too_large", f"The form field \u201c{self._name[:40]}\u201d is too long.")
        else:
            self._data += chunk

    def part_end(self) -> None:
        if not self._is_file and self._name and self.error is None:
            self.upload.fields.setdefault(self._name, self._data.decode("utf-8", "replace"))


def multipart_boundary(request: Request) -> bytes:
    """The boundary of a multipart/form-data body; 415 for anything else."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the file as multipart/form-data, in a form field named \u201cfile\u201d.",
        )
    return boundary


def check_content_length(request: Request, max_bytes: int) -> None:
    """413 at once when the declared body cannot hold a file within the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise too_large(max_bytes)


def _temporary_file(folder: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)


async def read_upload(request: Request, *, max_bytes: int, tmp_dir: Path) -> Upload:
    """Stream a multipart upload to a temporary file, stopping with 413 as soon as it is too large.

    The file must be in the field "file"; other fields are small text (16 KB each). The
    caller owns the result and must `discard()` it.
    """
    boundary = multipart_boundary(request)
    check_content_length(request, max_bytes)
    handle = await asyncio.to_thread(_temporary_file, tmp_dir)
    reader = _Multipart(handle)
    reader.upload.path = Path(handle.name)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD_BYTES:
                raise too_large(max_bytes)
            parser.write(chunk)
            if reader.error is not None:
                raise reader.error
            if reader.upload.size > max_bytes:
                raise too_large(max_bytes)
            if reader.pending:
                data, reader.pending = bytes(reader.pending), bytearray()
                await asyncio.to_thread(handle.write, data)
        parser.finalize()
        await asyncio.to_thread(handle.close)
        if not reader.ended:
            raise ApiError(400, "bad_request", "The upload was cut off before its end. Please try again.")
    except BaseException as exc:
        handle.close()
        reader.upload.discard()
        if isinstance(exc, FormParserError):
            raise ApiError(400, "bad_request", "The upload could not be read: the form data is malformed.") from None
        raise
    reader.upload.sha256 = reader.hash.hexdigest()
    if not reader.upload.filename:
        reader.upload.discard()
    return reader.upload


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
    if not body:
        return schema.validate({})
    try:
        data = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
    return schema.validate(data)


def form_token_ok(request: Request, session: Session | None, sent: str | None) -> bool:
    """The rule of shared.pages.form_data for a form read here: the session's token, or the CSRF cookie."""
    if session is not None and not session.via_token:
        return isinstance(sent, str) and csrf_ok(session, sent)
    cookie = request.cookies.get(CSRF_COOKIE)
    return isinstance(sent, str) and bool(cookie) and secrets.compare_digest(sent, cookie or "")


def tmp_dir(settings: Settings) -> Path:
    return settings.data_dir / "tmp"


# --- folders: SQL and the visibility rule ------------------------------------------------------------------------

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
_READABLE = """(f.group_ids = '{{}}' OR f.group_ids && {groups}::bigint[] OR {staff}::boolean)
    AND (p.id IS NULL OR p.group_ids = '{{}}' OR p.group_ids && {groups}::bigint[] OR {staff}::boolean)"""
READABLE_FOLDERS_SQL = f"""{_FOLDER_SELECT}
WHERE {_READABLE.format(groups="$1", staff="$2")}
ORDER BY f.position, lower(f.name), f.id
"""


def folder_groups(row: asyncpg.Record) -> list[int]:
    """The groups that may read a folder: its own, or its parent's when it has none."""
    return list(row["group_ids"]) or list(row["parent_group_ids"])


def folder_audience(row: asyncpg.Record) -> list[str]:
    # A subfolder's groups are a subset of its parent's (checked on every change), so its own
    # groups, when it has any, are exactly who may read it.
    return access.groups_audience(folder_groups(row))


def can_read_folder(who: Session | None, row: asyncpg.Record) -> bool:
    return access.groups_readable(who, row["group_ids"]) and access.groups_readable(who, row["parent_group_ids"])


async def fetch_folder(conn: asyncpg.Connection, folder_id: int) -> asyncpg.Record | None:
    """One folder with its parent's groups and its counts, readable or not."""
    return await conn.fetchrow(f"{_FOLDER_SELECT} WHERE f.id = $1", folder_id)


async def readable_folder(conn: asyncpg.Connection, who: Session | None, folder_id: int) -> asyncpg.Record:
    """The folder if the viewer may read it; 404 otherwise."""
    row = await fetch_folder(conn, folder_id) if 0 < folder_id < MAX_ID else None
    if row is None or not can_read_folder(who, row):
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


# --- folders: actions ---------------------------------------------------------------------------------------------


def _require_admin(who: Session) -> None:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "Only admins can manage the library's folders.")


def _clean(value: str | None, name: str, limit: int, *, multiline: bool = False) -> str:
    value = (value or "").replace("\r\n", "\n").strip()
    if len(value) > limit:
        raise invalid({name: f"must be {limit} characters or fewer"})
    if accounts.has_controls(value, allow_newlines=multiline):
        raise invalid({name: "cannot contain control characters or text-direction marks"})
    return value


async def _check_parent(conn: asyncpg.Connection, parent_id: int | None, group_ids: list[int]) -> list[int]:
    """The parent's groups; 422 when it is not a top-level folder, or the groups are not among its own."""
    if parent_id is None:
        return []
    parent = await fetch_folder(conn, parent_id) if parent_id < MAX_ID else None
    if parent is None:
        raise invalid({"parent_id": "must be the id of a folder"})
    if parent["parent_id"] is not None:
        raise invalid({"parent_id": "Folders have one level of subfolders: choose a top-level folder"})
    own = list(parent["group_ids"])
    if own and group_ids and not set(group_ids) <= set(own):
        raise invalid({"group_ids": "A subfolder can only be limited to groups its parent folder is limited to"})
    return own


async def _folder_event(conn: asyncpg.Connection, folder_id: int, actor: int) -> None:
    """folder.updated for a folder and its subfolders (their audience may follow it)."""
    rows = await conn.fetch(f"{_FOLDER_SELECT} WHERE f.id = $1 OR f.parent_id = $1 ORDER BY f.id", folder_id)
    for row in rows:
        await write_event(
            conn,
            FolderUpdated(
                folder_id=row["id"], parent_id=row["parent_id"], name=row["name"], audience=folder_audience(row)
            ),
            actor_id=actor,
        )


async def create_folder(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """A new folder (admins); a subfolder of a top-level folder when parent_id is given."""
    _require_admin(who)
    name = _clean(data["name"], "name", FOLDER_NAME_MAX)
    if not name:
        raise invalid({"name": "is required"})
    description = _clean(data.get("description"), "description", FOLDER_DESCRIPTION_MAX, multiline=True)
    group_ids = await groups.check_group_ids(conn, data.get("group_ids"))
    await _check_parent(conn, data.get("parent_id"), group_ids)
    folder_id = await conn.fetchval(
        "INSERT INTO forum.folders (parent_id, name, description, position, group_ids) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        data.get("parent_id"),
        name,
        description,
        data.get("position") or 0,
        group_ids,
    )
    await _folder_event(conn, folder_id, who.user_id)
    row = await fetch_folder(conn, folder_id)
    assert row is not None
    return row


async def update_folder(conn: asyncpg.Connection, who: Session, folder_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Change a folder's name, description, position or groups (admins)."""
    _require_admin(who)
    current = await conn.fetchrow("SELECT * FROM forum.folders WHERE id = $1 FOR UPDATE", folder_id)
    if current is None:
        raise not_found("folder")
    name = _clean(data["name"], "name", FOLDER_NAME_MAX) if "name" in data else current["name"]
    if not name:
        raise invalid({"name": "is required"})
    description = (
        _clean(data["description"], "description", FOLDER_DESCRIPTION_MAX, multiline=True)
        if "description" in data
        else current["description"]
    )
    group_ids = list(current["group_ids"])
    if "group_ids" in data:
        group_ids = await groups.check_group_ids(conn, data["group_ids"])
        await _check_parent(conn, current["parent_id"], group_ids)
        await _check_children(conn, folder_id, group_ids)
    await conn.execute(
        "UPDATE forum.folders SET name = $2, description = $3, position = $4, group_ids = $5, updated_at = now() "
        "WHERE id = $1",
        folder_id,
        name,
        description,
        data.get("position", current["position"]),
        group_ids,
    )
    await _folder_event(conn, folder_id, who.user_id)
    row = await fetch_folder(conn, folder_id)
    assert row is not None
    return row


async def _check_children(conn: asyncpg.Connection, folder_id: int, group_ids: list[int]) -> None:
    if not group_ids:
        return
    rows = await conn.fetch("SELECT name, group_ids FROM forum.folders WHERE parent_id = $1", folder_id)
    for row in rows:
        if row["group_ids"] and not set(row["group_ids"]) <= set(group_ids):
            raise invalid(
                {"group_ids": f"The subfolder \u201c{row['name']}\u201d is limited to other groups: change it first"}
            )


async def delete_folder(conn: asyncpg.Connection, who: Session, folder_id: int) -> None:
    """Delete an empty folder (admins); 409 while it has documents or subfolders."""
    _require_admin(who)
    row = await fetch_folder(conn, folder_id)
    if row is None:
        raise not_found("folder")
    has_children = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM forum.folders WHERE parent_id = $1)", folder_id)
    has_documents = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM forum.documents WHERE folder_id = $1)", folder_id)
    if has_children or has_documents:
        raise ApiError(409, "not_empty", "Only an empty folder can be deleted: move or delete what is in it first.")
    await conn.execute("DELETE FROM forum.folders WHERE id = $1", folder_id)


# --- documents: SQL -----------------------------------------------------------------------------------------------

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


async def fetch_document(conn: asyncpg.Connection, document_id: int) -> asyncpg.Record | None:
    """One document that is not deleted, with its current version and folder, readable or not."""
    if not 0 < document_id < MAX_ID:
        return None
    return await conn.fetchrow(f"{_DOCUMENT_SELECT} WHERE d.id = $1 AND d.deleted_at IS NULL", document_id)


async def readable_document(conn: asyncpg.Connection, who: Session | None, document_id: int) -> asyncpg.Record:
    """The document if the viewer may read its folder; 404 otherwise."""
    row = await fetch_document(conn, document_id)
    if row is None or not can_read_folder(who, row):
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
    number = version or document["current_version"]
    row = await conn.fetchrow(
        "SELECT version, filename, kind, content_type, size_bytes, storage_key "
        "FROM forum.document_versions WHERE document_id = $1 AND version = $2",
        document["id"],
        number,
    )
    if row is None:
        raise not_found("version")
    return row


async def count_view(conn: asyncpg.Connection, document_id: int, kind: str, user_id: int | None) -> None:
    """Count one download or preview, and the member's first one of this document."""
    async with conn.transaction():
        first = bool(user_id) and bool(await conn.fetchval(FIRST_VIEW_SQL, document_id, kind, user_id))
        await conn.execute(COUNT_SQL[(kind, first)], document_id)


def document_audience(row: asyncpg.Record) -> list[str]:
    return access.groups_audience(list(row["group_ids"]) or list(row["parent_group_ids"]))


# --- documents: actions -------------------------------------------------------------------------------------------


def _title_from(filename: str) -> str:
    stem = filename.rpartition(".")[0] or filename
    return " ".join(stem.replace("_", " ").split())[:TITLE_MAX] or "Untitled document"


def _can_change(who: Session, document: asyncpg.Record) -> bool:
    return who.is_staff or document["uploader_id"] == who.user_id


def parse_id(value: str | None, name: str) -> int:
    """A positive id typed into a form field; 422 naming the field otherwise."""
    value = (value or "").strip()
    if not value.isdigit() or len(value) > 18 or not 0 < int(value) < MAX_ID:
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
    title = _clean(fields.get("title"), "title", TITLE_MAX)
    description = _clean(fields.get("description"), "description", DESCRIPTION_MAX, multiline=True)
    await readable_folder(conn, who, folder_id)
    await posts.check_can_post(conn, who)
    filetype, filename = await _check_file(upload)
    return folder_id, Checked(filetype, filename, title or _title_from(filename), description)


async def _insert_version(
    conn: asyncpg.Connection,
    document_id: int,
    version: int,
    checked: Checked,
    upload: Upload,
    key: str,
    uploader_id: int,
    note: str,
) -> None:
    await conn.execute(
        "INSERT INTO forum.document_versions (document_id, version, filename, kind, content_type, size_bytes, "
        "sha256, storage_key, uploader_id, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        document_id,
        version,
        checked.filename,
        checked.filetype.kind,
        checked.filetype.content_type,
        upload.size,
        upload.sha256,
        key,
        uploader_id,
        note,
    )


async def _uploaded_event(conn: asyncpg.Connection, who: Session, document_id: int) -> asyncpg.Record:
    row = await fetch_document(conn, document_id)
    assert row is not None
    await write_event(
        conn,
        DocumentUploaded(
            document_id=row["id"],
            folder_id=row["folder_id"],
            document_version=row["current_version"],
            title=row["title"],
            description=row["description"],
            filename=row["filename"],
            kind=row["kind"],
            size_bytes=row["size_bytes"],
            uploader_id=who.user_id,
            uploader_username=who.username,
            audience=document_audience(row),
            created_at=row["version_created_at"].isoformat(),
        ),
        actor_id=who.user_id,
    )
    return row


async def _store(files: Storage, upload: Upload, filetype: filetypes.FileType) -> str:
    """Put the file in storage under a new random key (never its name)."""
    assert upload.path is not None
    key = f"documents/{secrets.token_urlsafe(24)}"
    try:
        await files.put(key, upload.path, size=upload.size, sha256=upload.sha256, content_type=filetype.content_type)
    except StorageError:
        raise ApiError(
            503,
            "storage_unavailable",
            "We could not save the file just now. Please try again soon.",
            headers={"Retry-After": "30"},
        ) from None
    return key


async def upload_document(rt: Runtime, who: Session, upload: Upload) -> asyncpg.Record:
    """Share a new document: check everything, store the file, then record it (document.uploaded)."""
    async with rt.pool.acquire() as conn:
        folder_id, checked = await check_new_document(conn, who, upload)
    files = storage(rt)
    key = await _store(files, upload, checked.filetype)
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            await readable_folder(conn, who, folder_id)  # it may have changed while the file was stored
            document_id = await conn.fetchval(
                "INSERT INTO forum.documents (folder_id, title, description, uploader_id) VALUES ($1, $2, $3, $4) "
                "RETURNING id",
                folder_id,
                checked.title,
                checked.description,
                who.user_id,
            )
            await _insert_version(conn, document_id, 1, checked, upload, key, who.user_id, "")
            return await _uploaded_event(conn, who, document_id)
    except BaseException:
        with contextlib.suppress(StorageError):
            await files.delete(key)
        raise


async def upload_version(rt: Runtime, who: Session, document_id: int, upload: Upload) -> asyncpg.Record:
    """Upload a new version of a document (its uploader or staff); every earlier version is kept."""
    async with rt.pool.acquire() as conn:
        document = await readable_document(conn, who, document_id)
        if not _can_change(who, document):
            raise ApiError(
                403, "forbidden", "Only the person who shared this document, or a moderator, can upload a new version."
            )
        await posts.check_can_post(conn, who)
        note = _clean(upload.fields.get("note"), "note", NOTE_MAX, multiline=True)
        filetype, filename = await _check_file(upload)
    checked = Checked(filetype, filename, document["title"], document["description"])
    files = storage(rt)
    key = await _store(files, upload, filetype)
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            number = await conn.fetchval(
                "UPDATE forum.documents SET current_version = current_version + 1, updated_at = now() "
                "WHERE id = $1 AND deleted_at IS NULL RETURNING current_version",
                document_id,
            )
            if number is None:
                raise not_found()
            await _insert_version(conn, document_id, number, checked, upload, key, who.user_id, note)
            return await _uploaded_event(conn, who, document_id)
    except BaseException:
        with contextlib.suppress(StorageError):
            await files.delete(key)
        raise


async def update_document(
    conn: asyncpg.Connection, who: Session, document_id: int, data: dict[str, Any]
) -> asyncpg.Record:
    """Change a document's title or description, or move it to another folder (its uploader or staff)."""
    document = await readable_document(conn, who, document_id)
    if not _can_change(who, document):
        raise ApiError(403, "forbidden", "Only the person who shared this document, or a moderator, can change it.")
    title = _clean(data["title"], "title", TITLE_MAX) if "title" in data else document["title"]
    if not title:
        raise invalid({"title": "is required"})
    description = (
        _clean(data["description"], "description", DESCRIPTION_MAX, multiline=True)
        if "description" in data
        else document["description"]
    )
    folder_id = data.get("folder_id", document["folder_id"])
    if folder_id != document["folder_id"]:
        try:
            await readable_folder(conn, who, folder_id)
        except ApiError:
            raise invalid({"folder_id": "must be a folder you can see"}) from None
    await conn.execute(
        "UPDATE forum.documents SET title = $2, description = $3, folder_id = $4, updated_at = now() WHERE id = $1",
        document_id,
        title,
        description,
        folder_id,
    )
    row = await fetch_document(conn, document_id)
    assert row is not None
    await write_event(
        conn,
        DocumentUpdated(
            document_id=row["id"],
            folder_id=row["folder_id"],
            title=row["title"],
            description=row["description"],
            audience=document_audience(row),
        ),
        actor_id=who.user_id,
    )
    return row


async def delete_document(conn: asyncpg.Connection, who: Session, document_id: int) -> None:
    """Remove a document from the library (its uploader or staff); its files stay in storage for recovery."""
    document = await readable_document(conn, who, document_id)
    if not _can_change(who, document):
        raise ApiError(403, "forbidden", "Only the person who shared this document, or a moderator, can delete it.")
    await conn.execute("UPDATE forum.documents SET deleted_at = now() WHERE id = $1", document_id)
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
        raise ApiError(
            503,
            "storage_unavailable",
            "We could not open the file just now. Please try again soon.",
            headers={"Retry-After": "30"},
        ) from None
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


# --- comments ---------------------------------------------------------------------------------------------------------

_COMMENT_SELECT = """
SELECT c.id, c.document_id, c.author_id, c.raw, c.cooked, c.status, c.reactions, c.revision, c.created_at,
       c.updated_at, c.moderation_reason, u.username AS author_username, u.display_name AS author_display_name
FROM forum.document_comments c JOIN forum.users u ON u.id = c.author_id
"""
DOCUMENT_COMMENTS_SQL = f"""{_COMMENT_SELECT}
WHERE c.document_id = $1 AND c.status <> 'deleted' ORDER BY c.id LIMIT $2 OFFSET $3
"""


async def document_comments(
    conn: asyncpg.Connection, document_id: int, *, page: int = 1
) -> tuple[list[asyncpg.Record], bool]:
    """A page of a document's comments, oldest first; and whether there is another page."""
    rows = await conn.fetch(DOCUMENT_COMMENTS_SQL, document_id, COMMENTS_PER_PAGE + 1, (page - 1) * COMMENTS_PER_PAGE)
    return list(rows[:COMMENTS_PER_PAGE]), len(rows) > COMMENTS_PER_PAGE


async def readable_comment(
    conn: asyncpg.Connection, who: Session | None, comment_id: int
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """A comment that is not deleted, and its document, if the viewer may read them; 404 otherwise."""
    row = (
        await conn.fetchrow(f"{_COMMENT_SELECT} WHERE c.id = $1 AND c.status <> 'deleted'", comment_id)
        if 0 < comment_id < MAX_ID
        else None
    )
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
    if who is None or not comment_ids:
        return {}
    rows = await conn.fetch(
        "SELECT comment_id, kind FROM forum.document_comment_reactions "
        "WHERE user_id = $1 AND comment_id = ANY($2::bigint[])",
        who.user_id,
        list(comment_ids),
    )
    given: dict[int, set[str]] = {}
    for row in rows:
        given.setdefault(row["comment_id"], set()).add(row["kind"])
    return given


async def _mentioned(conn: asyncpg.Connection, rendered: markdown.Rendered, besides: int) -> list[int]:
    if not rendered.mentions:
        return []
    rows = await conn.fetch(
        "SELECT id FROM forum.users WHERE lower(username) = ANY($1::text[]) AND id <> $2",
        list(rendered.mentions),
        besides,
    )
    return [row["id"] for row in rows]


def _clean_body(body: str) -> str:
    body = body.replace("\x00", "").replace("\r\n", "\n").strip()
    if not body:
        raise invalid({"body": "Write a comment first"})
    if len(body) > COMMENT_MAX:
        raise invalid({"body": f"Comments must be {COMMENT_MAX:,} characters or fewer"})
    return body


async def create_comment(conn: asyncpg.Connection, who: Session, document_id: int, body: str) -> asyncpg.Record:
    """Comment on a document (the same markdown as posts); records document.comment_created."""
    document = await readable_document(conn, who, document_id)
    author = await posts.check_can_post(conn, who)
    raw = _clean_body(body)
    rendered = await posts.render_body(conn, raw)
    comment_id = await conn.fetchval(
        "INSERT INTO forum.document_comments (document_id, author_id, raw, cooked, plain) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        document_id,
        who.user_id,
        raw,
        rendered.cooked,
        rendered.text,
    )
    await conn.execute("UPDATE forum.documents SET comments_count = comments_count + 1 WHERE id = $1", document_id)
    row, _ = await readable_comment(conn, who, comment_id)
    await write_event(
        conn,
        DocumentCommentCreated(
            comment_id=comment_id,
            document_id=document_id,
            document_title=document["title"],
            folder_id=document["folder_id"],
            document_uploader_id=document["uploader_id"],
            author_id=who.user_id,
            author_username=author["username"],
            text=rendered.text,
            audience=document_audience(document),
            mentioned_user_ids=await _mentioned(conn, rendered, who.user_id),
            created_at=row["created_at"].isoformat(),
        ),
        actor_id=who.user_id,
    )
    return row


def can_change_comment(who: Session | None, row: asyncpg.Record) -> bool:
    return who is not None and (who.is_staff or row["author_id"] == who.user_id)


async def edit_comment(conn: asyncpg.Connection, who: Session, comment_id: int, body: str) -> asyncpg.Record:
    """Edit a comment (its author or staff); the previous text is kept; records document.comment_edited."""
    row, document = await readable_comment(conn, who, comment_id)
    if not can_change_comment(who, row):
        raise ApiError(403, "forbidden", "You can only edit your own comments.")
    raw = _clean_body(body)
    if raw == row["raw"]:
        return row
    rendered = await posts.render_body(conn, raw)
    await conn.execute(
        "INSERT INTO forum.document_comment_revisions (comment_id, revision, raw, editor_id) VALUES ($1, $2, $3, $4)",
        comment_id,
        row["revision"],
        row["raw"],
        who.user_id,
    )
    revision = await conn.fetchval(
        "UPDATE forum.document_comments SET raw = $2, cooked = $3, plain = $4, revision = revision + 1, "
        "updated_at = now() WHERE id = $1 RETURNING revision",
        comment_id,
        raw,
        rendered.cooked,
        rendered.text,
    )
    await write_event(
        conn,
        DocumentCommentEdited(
            comment_id=comment_id,
            document_id=document["id"],
            document_title=document["title"],
            folder_id=document["folder_id"],
            author_id=row["author_id"],
            author_username=row["author_username"],
            text=rendered.text,
            audience=document_audience(document),
            revision=revision,
            status=row["status"],  # an edit does not show a hidden comment again
        ),
        actor_id=who.user_id,
    )
    updated, _ = await readable_comment(conn, who, comment_id)
    return updated


async def delete_comment(conn: asyncpg.Connection, who: Session, comment_id: int) -> None:
    """Delete a comment (its author or staff); records document.comment_deleted."""
    row, document = await readable_comment(conn, who, comment_id)
    if not can_change_comment(who, row):
        raise ApiError(403, "forbidden", "You can only delete your own comments.")
    previous = await conn.fetchval(
        "UPDATE forum.document_comments c SET status = 'deleted', deleted_at = now() "
        "FROM (SELECT status FROM forum.document_comments WHERE id = $1 FOR UPDATE) old "
        "WHERE c.id = $1 RETURNING old.status",
        comment_id,
    )
    if previous == "visible":
        await conn.execute(
            "UPDATE forum.documents SET comments_count = greatest(0, comments_count - 1) WHERE id = $1", document["id"]
        )
    await write_event(
        conn,
        DocumentCommentDeleted(
            comment_id=comment_id,
            document_id=document["id"],
            folder_id=document["folder_id"],
            author_id=row["author_id"],
        ),
        actor_id=who.user_id,
    )


ADD_REACTION_SQL = """
UPDATE forum.document_comments
SET reactions = jsonb_set(reactions, ARRAY[$2::text], to_jsonb(coalesce((reactions->>$2)::int, 0) + 1))
WHERE id = $1
"""
REMOVE_REACTION_SQL = """
UPDATE forum.document_comments SET reactions = CASE WHEN coalesce((reactions->>$2)::int, 0) > 1
    THEN jsonb_set(reactions, ARRAY[$2::text], to_jsonb((reactions->>$2)::int - 1)) ELSE reactions - $2::text END
WHERE id = $1
"""


async def _reactable(conn: asyncpg.Connection, who: Session, comment_id: int) -> asyncpg.Record:
    row, _ = await readable_comment(conn, who, comment_id)
    if row["status"] != "visible":
        raise ApiError(404, "not_found", "That comment cannot take reactions.")
    return row


async def reaction_state(conn: asyncpg.Connection, who: Session, comment_id: int) -> dict[str, Any]:
    counts = await conn.fetchval("SELECT reactions FROM forum.document_comments WHERE id = $1", comment_id)
    given = await my_reactions(conn, who, [comment_id])
    return {"reactions": json_dict(counts), "my_reactions": sorted(given.get(comment_id, set()))}


async def add_reaction(
    conn: asyncpg.Connection, who: Session, comment_id: int, kind: str
) -> tuple[bool, dict[str, Any]]:
    """React to a comment; (False, state) when already given, so repeating it changes nothing."""
    if kind not in posts.REACTION_KINDS:
        raise invalid({"kind": f"must be one of: {', '.join(posts.REACTION_KINDS)}"})
    await _reactable(conn, who, comment_id)
    added = await conn.fetchval(
        "INSERT INTO forum.document_comment_reactions (comment_id, user_id, kind) "
        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING kind",
        comment_id,
        who.user_id,
        kind,
    )
    if added is not None:
        await conn.execute(ADD_REACTION_SQL, comment_id, kind)
    return added is not None, await reaction_state(conn, who, comment_id)


async def remove_reaction(conn: asyncpg.Connection, who: Session, comment_id: int, kind: str) -> dict[str, Any]:
    """Take back a reaction; 404 when it was not given."""
    await _reactable(conn, who, comment_id)
    removed = (
        await conn.fetchval(
            "DELETE FROM forum.document_comment_reactions WHERE comment_id = $1 "
            "AND user_id = $2 AND kind = $3 RETURNING kind",
            comment_id,
            who.user_id,
            kind,
        )
        if kind in posts.REACTION_KINDS
        else None
    )
    if removed is None:
        raise ApiError(404, "not_found", "You have not given that reaction to this comment.")
    await conn.execute(REMOVE_REACTION_SQL, comment_id, kind)
    return await reaction_state(conn, who, comment_id)


async def flag_comment(
    conn: asyncpg.Connection,
    who: Session,
    comment_id: int,
    reason: str,
    note: str | None,
    *,
    hide_score: int | None = None,
    rules: safety.PostingRules | None = None,
) -> None:
    """Flag a comment for the moderators' review queue; 409 when the viewer already flagged it.

    The flags (not safeguarding ones) reaching hide_score hide the comment until a moderator looks.
    With `rules` (every request) the flag counts against the daily allowance posts' flags share.
    """
    from services.forum.moderation import comments as comment_moderation  # imported here: it builds on this module

    await readable_comment(conn, who, comment_id)
    text = _clean(note, "note", 500, multiline=True)
    if reason == "other" and not text:
        raise invalid(
            {"note": "is needed when the reason is \u201csomething else\u201d: say what a moderator should know"}
        )
    if rules is not None:
        await safety.enforce_flag_limit(conn, who, rules)
    await comment_moderation.flag(conn, who, comment_id, reason, text, hide_score=hide_score)


# --- JSON shapes ----------------------------------------------------------------------------------------------------


def folder_url(folder_id: int) -> str:
    return f"/library/folders/{folder_id}"


def document_url(document_id: int) -> str:
    return f"/library/documents/{document_id}"


def _person(user_id: int, username: str, display_name: str) -> dict[str, Any]:
    return {"id": user_id, "username": username, "display_name": display_name}


def folder_json(node: FolderNode | asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A folder with its counts (including readable subfolders); groups only to staff."""
    row = node.row if isinstance(node, FolderNode) else node
    counted = node if isinstance(node, FolderNode) else FolderNode(row)
    out: dict[str, Any] = {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "name": row["name"],
        "description": row["description"],
        "position": row["position"],
        "private": bool(folder_groups(row)),
        "url": folder_url(row["id"]),
        "documents_count": counted.documents_count,
        "downloads_count": counted.downloads_count,
        "previews_count": counted.previews_count,
    }
    if who is not None and who.is_staff:
        out["group_ids"] = list(row["group_ids"])
    if isinstance(node, FolderNode):
        out["subfolders"] = [folder_json(child, who) for child in node.children]
    return out


def document_json(row: asyncpg.Record, version_rows: Sequence[asyncpg.Record] | None = None) -> dict[str, Any]:
    """A document with its current file and its counts; with every version when given."""
    filetype = filetypes.TYPES.get(row["kind"])
    url = document_url(row["id"])
    out: dict[str, Any] = {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "folder": {"id": row["folder_id"], "name": row["folder_name"], "url": folder_url(row["folder_id"])},
        "uploader": _person(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
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
        "url": url,
        "download_url": f"/api/documents/{row['id']}/download",
        "preview_url": f"/api/documents/{row['id']}/preview",
    }
    if version_rows is not None:
        out["versions"] = [version_json(row["id"], v) for v in version_rows]
    return out


def version_json(document_id: int, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "version": row["version"],
        "filename": row["filename"],
        "kind": row["kind"],
        "content_type": row["content_type"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "note": row["note"],
        "created_at": row["created_at"].isoformat(),
        "uploader": _person(row["uploader_id"], row["uploader_username"], row["uploader_display_name"]),
        "download_url": f"/api/documents/{document_id}/download?version={row['version']}",
    }


def comment_json(row: asyncpg.Record, who: Session | None, given: Iterable[str] = ()) -> dict[str, Any]:
    """A comment; the text of a hidden one only to its author and staff."""
    shown = row["status"] == "visible" or can_change_comment(who, row)
    return {
        "id": row["id"],
        "document_id": row["document_id"],
        "author": _person(row["author_id"], row["author_username"], row["author_display_name"]),
        "raw": row["raw"] if shown else None,
        "cooked": row["cooked"] if shown else None,
        "status": row["status"],
        "moderation_reason": row["moderation_reason"] if shown and row["status"] == "hidden" else None,
        "reactions": json_dict(row["reactions"]),
        "my_reactions": sorted(given),
        "revision": row["revision"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


# --- endpoints --------------------------------------------------------------------------------------------------------


async def _writer(request: Request) -> Session:
    who = await require_viewer(request)
    check_csrf(request, who)
    return who


def counted(request: Request) -> bool:
    """Downloads and previews count on GET; a HEAD request fetches nothing."""
    return request.method != "HEAD"


def _version_param(request: Request) -> int | None:
    version = query_int(request, "version", 0, minimum=0, maximum=1_000_000)
    return version or None


@api.get("/api/folders", answers={200: "{items: [folder with subfolders], next}"})
async def list_folders(request: Request) -> Response:
    """The library's folders the viewer may read, top-level ones with their subfolders, with counts."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        tree = folder_tree(await readable_folders(conn, who))
    return JSONResponse({"items": [folder_json(node, who) for node in tree], "next": None})


@api.post("/api/folders", body=FOLDER_IN, answers={201: "Folder"}, auth=True)
async def create_folder_endpoint(request: Request) -> Response:
    """Create a folder or, with parent_id, a subfolder (admins)."""
    who = await _writer(request)
    data = await read_json(request, FOLDER_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await create_folder(conn, who, data)
    return JSONResponse(folder_json(row, who), status_code=201)


@api.get(
    "/api/folders/{id:int}",
    answers={200: "Folder with subfolders and a page of documents"},
    query={"page": "page of documents, from 1"},
)
async def get_folder(request: Request) -> Response:
    """A folder, its readable subfolders and a page of its documents (latest first)."""
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        folder = await readable_folder(conn, who, path_int(request, "id"))
        tree = [n for n in folder_tree(await readable_folders(conn, who)) if n.row["id"] == folder["id"]]
        rows, more = await folder_documents(conn, folder["id"], page=page)
    out = folder_json(tree[0] if tree else folder, who)
    return JSONResponse({**out, "documents": [document_json(r) for r in rows], "next": page + 1 if more else None})


@api.patch("/api/folders/{id:int}", body=FOLDER_PATCH, answers={200: "Folder"}, auth=True)
async def patch_folder(request: Request) -> Response:
    """Change a folder's name, description, position or groups (admins)."""
    who = await _writer(request)
    data = await read_json(request, FOLDER_PATCH)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await update_folder(conn, who, path_int(request, "id"), data)
    return JSONResponse(folder_json(row, who))


@api.delete("/api/folders/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_folder_endpoint(request: Request) -> Response:
    """Delete an empty folder (admins); 409 while it holds documents or subfolders."""
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await delete_folder(conn, who, path_int(request, "id"))
    return Response(status_code=204)


async def receive(request: Request) -> Upload:
    """The upload of an API request, streamed within the size limit."""
    settings = runtime(request).settings
    return await read_upload(request, max_bytes=settings.max_upload_bytes, tmp_dir=tmp_dir(settings))


@api.post("/api/documents", answers={201: "Document"}, auth=True)
async def upload_endpoint(request: Request) -> Response:
    """Share a document: multipart/form-data with `file`, `folder_id`, and optional `title`, `description`.

    The type comes from the content (PDF, Word, PowerPoint, Excel, OpenDocument, plain
    text, PNG, JPEG); 415 for another type or a name whose extension says another type,
    413 above TICA_MAX_UPLOAD_BYTES (before the rest is read), 422 for a missing or empty
    file. The file name is cleaned (no folders, control or direction characters).
    """
    who = await _writer(request)
    upload = await receive(request)
    try:
        row = await upload_document(runtime(request), who, upload)
    finally:
        upload.discard()
    return JSONResponse(document_json(row), status_code=201)


@api.get("/api/documents/{id:int}", answers={200: "Document with versions"})
async def get_document(request: Request) -> Response:
    """A document, its current file, every version and its counts."""
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        row = await readable_document(conn, who, path_int(request, "id"))
        version_rows = await versions(conn, row["id"])
    return JSONResponse(document_json(row, version_rows))


@api.patch("/api/documents/{id:int}", body=DOCUMENT_PATCH, answers={200: "Document"}, auth=True)
async def patch_document(request: Request) -> Response:
    """Change a document's title or description, or move it to another folder (its uploader or staff)."""
    who = await _writer(request)
    data = await read_small_json(request, DOCUMENT_PATCH)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await update_document(conn, who, path_int(request, "id"), data)
    return JSONResponse(document_json(row))


@api.delete("/api/documents/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_document_endpoint(request: Request) -> Response:
    """Remove a document from the library (its uploader or staff)."""
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await delete_document(conn, who, path_int(request, "id"))
    return Response(status_code=204)


@api.post("/api/documents/{id:int}/versions", answers={201: "Document (its new current version)"}, auth=True)
async def upload_version_endpoint(request: Request) -> Response:
    """Upload a new version (its uploader or staff): multipart/form-data with `file` and optional `note`.

    The same checks as a new document; every earlier version is kept and stays downloadable.
    """
    who = await _writer(request)
    document_id = path_int(request, "id")
    upload = await receive(request)
    try:
        row = await upload_version(runtime(request), who, document_id, upload)
    finally:
        upload.discard()
    async with runtime(request).pool.acquire() as conn:
        version_rows = await versions(conn, row["id"])
    return JSONResponse(document_json(row, version_rows), status_code=201)


@api.get(
    "/api/documents/{id:int}/download",
    answers={200: "The file (Content-Disposition: attachment)"},
    query={"version": "a version number; the current one when absent"},
)
async def download_endpoint(request: Request) -> Response:
    """Download a document's file (counted): its detected type, as an attachment, never sniffed."""
    who = await viewer(request)
    _, served = await open_version(
        runtime(request), who, path_int(request, "id"), _version_param(request), "download", count=counted(request)
    )
    return await send_file(request, served, disposition="attachment")


@api.get(
    "/api/documents/{id:int}/preview",
    answers={200: "The file, inline and sandboxed", 409: "No preview"},
    query={"version": "a version number; the current one when absent"},
)
async def preview_endpoint(request: Request) -> Response:
    """Preview a PDF, image or text file inline in a sandbox (counted); 409 `no_preview` for other kinds."""
    who = await viewer(request)
    rt = runtime(request)
    document_id, version = path_int(request, "id"), _version_param(request)
    async with rt.pool.acquire() as conn:
        document = await readable_document(conn, who, document_id)
        kind = (await version_row(conn, document, version))["kind"]
    if kind not in PREVIEW_CSP:
        raise ApiError(409, "no_preview", "This kind of file cannot be previewed. Download it to open it.")
    _, served = await open_version(rt, who, document_id, version, "preview", count=counted(request))
    return await send_file(request, served, disposition="inline", csp=PREVIEW_CSP[kind])


@api.get(
    "/api/documents/{id:int}/comments", answers={200: "{items: [comment], next}"}, query={"page": "page number, from 1"}
)
async def list_comments(request: Request) -> Response:
    """A document's comments, oldest first."""
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        await readable_document(conn, who, path_int(request, "id"))
        rows, more = await document_comments(conn, path_int(request, "id"), page=page)
        given = await my_reactions(conn, who, [r["id"] for r in rows])
    items = [comment_json(r, who, given.get(r["id"], ())) for r in rows]
    return JSONResponse({"items": items, "next": page + 1 if more else None})


@api.post("/api/documents/{id:int}/comments", body=COMMENT_IN, answers={201: "Comment"}, auth=True)
async def create_comment_endpoint(request: Request) -> Response:
    """Comment on a document (Markdown; @mentions notify)."""
    who = await _writer(request)
    data = await read_small_json(request, COMMENT_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await create_comment(conn, who, path_int(request, "id"), data["body"])
    return JSONResponse(comment_json(row, who), status_code=201)


@api.patch("/api/document-comments/{id:int}", body=COMMENT_IN, answers={200: "Comment"}, auth=True)
async def edit_comment_endpoint(request: Request) -> Response:
    """Edit a comment (its author or staff); the previous text is kept."""
    who = await _writer(request)
    data = await read_json(request, COMMENT_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        row = await edit_comment(conn, who, path_int(request, "id"), data["body"])
        given = await my_reactions(conn, who, [row["id"]])
    return JSONResponse(comment_json(row, who, given.get(row["id"], ())))


@api.delete("/api/document-comments/{id:int}", answers={204: "Deleted"}, auth=True)
async def delete_comment_endpoint(request: Request) -> Response:
    """Delete a comment (its author or staff)."""
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await delete_comment(conn, who, path_int(request, "id"))
    return Response(status_code=204)


@api.post(
    "/api/document-comments/{id:int}/reactions",
    body=REACTION_IN,
    answers={201: "Reaction given", 200: "Already given: nothing changed"},
    auth=True,
)
async def add_comment_reaction_endpoint(request: Request) -> Response:
    """React to a comment: like, heart, hug, lightbulb or clap, as on posts."""
    who = await _writer(request)
    data = await read_json(request, REACTION_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        added, state = await add_reaction(conn, who, path_int(request, "id"), data["kind"])
    return JSONResponse(state, status_code=201 if added else 200)


@api.delete("/api/document-comments/{id:int}/reactions/{kind}", answers={204: "Reaction taken back"}, auth=True)
async def remove_comment_reaction_endpoint(request: Request) -> Response:
    """Take back your reaction of one kind (404 when you had not given it)."""
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await remove_reaction(conn, who, path_int(request, "id"), str(request.path_params.get("kind", "")))
    return Response(status_code=204)


@api.post("/api/document-comments/{id:int}/flags", body=FLAG_IN, answers={201: "Flagged"}, auth=True)
async def flag_comment_endpoint(request: Request) -> Response:
    """Flag a comment for the moderators (off_topic, inappropriate, spam, safeguarding, other)."""
    who = await _writer(request)
    data = await read_json(request, FLAG_IN)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        await flag_comment(
            conn,
            who,
            path_int(request, "id"),
            data["reason"],
            data.get("note"),
            hide_score=rt.settings.flag_hide_score,
            rules=safety.PostingRules.of(rt),
        )
    return JSONResponse({"status": "flagged"}, status_code=201)


# --- export (for the search index rebuild) -------------------------------------------------------------------------

EXPORT_COMMENTS_SQL = """
SELECT c.id, c.document_id, c.status, c.created_at, CASE WHEN c.status = 'visible' THEN c.plain ELSE '' END AS text,
       d.title AS document_title, d.folder_id, f.group_ids, coalesce(p.group_ids, '{}') AS parent_group_ids,
       u.id AS author_id, u.username AS author_username, u.display_name AS author_display_name
FROM forum.document_comments c
JOIN forum.documents d ON d.id = c.document_id
JOIN forum.folders f ON f.id = d.folder_id
LEFT JOIN forum.folders p ON p.id = f.parent_id
JOIN forum.users u ON u.id = c.author_id
WHERE c.id > $1 AND c.status <> 'deleted' AND d.deleted_at IS NULL
ORDER BY c.id LIMIT $2
"""


def export_comment_out(row: asyncpg.Record) -> dict[str, Any]:
    """One document comment as the export API gives it (shape of export.post_out)."""
    return {
        "id": row["id"],
        "document_id": row["document_id"],
        "document_title": row["document_title"],
        "folder_id": row["folder_id"],
        "url": document_url(row["document_id"]) + f"#comment-{row['id']}",
        "author": _person(row["author_id"], row["author_username"], row["author_display_name"]),
        "text": row["text"],
        "status": row["status"],
        "audience": document_audience(row),
        "created_at": row["created_at"].isoformat(),
    }


# --- demo data -------------------------------------------------------------------------------------------------------


def tiny_pdf(title: str, lines: Sequence[str]) -> bytes:
    """A small valid PDF (one page of Helvetica text), made without any library."""

    def esc(text: str) -> str:
        return (
            text.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\\", "\\\\")
            .replace("(", "\\(")
            .replace(")", "\\)")
        )

    text_ops = ["BT", "/F1 18 Tf", "72 740 Td", f"({esc(title)}) Tj", "/F1 11 Tf"]
    for line in lines:
        text_ops += ["0 -20 Td", f"({esc(line)}) Tj"]
    stream = "\n".join([*text_ops, "ET"]).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class DemoDocument:
    folder: str
    title: str
    filename: str
    description: str
    content: bytes


DEMO_FOLDERS = (
    ("Frameworks and guidance", "Frameworks, principles and practice guidance for trauma-informed care.", None),
    ("Evaluation reports", "What we learned: evaluations of the community of action and its projects.", None),
    ("Tools and templates", "Practical tools: checklists, conversation guides and templates.", None),
    ("Reflective practice", "Prompts and exercises for reflective practice sessions.", "Tools and templates"),
)


def demo_documents() -> list[DemoDocument]:
    """The demo library's documents: small PDFs and text files made in code."""
    return [
        DemoDocument(
            "Frameworks and guidance",
            "The five principles of trauma-informed care",
            "five-principles.pdf",
            "A one-page summary: safety, trustworthiness, choice, collaboration and empowerment.",
            tiny_pdf(
                "The five principles of trauma-informed care",
                [
                    "Safety: physical and emotional safety for everyone.",
                    "Trustworthiness: clear expectations, consistent boundaries.",
                    "Choice: people have a say in what happens to them.",
                    "Collaboration: doing with, not doing to.",
                    "Empowerment: building on strengths.",
                ],
            ),
        ),
        DemoDocument(
            "Evaluation reports",
            "Year one evaluation: summary",
            "year-one-evaluation.pdf",
            "The headline findings of our first year, in plain language.",
            tiny_pdf(
                "Year one evaluation: summary",
                [
                    "Members from 42 organisations took part.",
                    "Most said the community helped them change one thing in their practice.",
                ],
            ),
        ),
        DemoDocument(
            "Tools and templates",
            "Checklist for a trauma-informed first appointment",
            "first-appointment.txt",
            "A short checklist to adapt for your service.",
            b"Checklist for a trauma-informed first appointment\n\n"
            b"- Explain who you are and what will happen.\n- Offer choices: where to sit, breaks, who is there.\n"
            b"- Ask what helps the person feel safe.\n- Agree how you will end and what happens next.\n",
        ),
        DemoDocument(
            "Reflective practice",
            "Reflective practice prompts",
            "reflective-prompts.txt",
            "Questions to start a reflective practice session.",
            b"Reflective practice prompts\n\n1. What went well this week, and why?\n"
            b"2. When did you notice your own stress response?\n3. What would you like to try next time?\n",
        ),
    ]


async def seed_library(conn: asyncpg.Connection, settings: Settings, *, uploader: Session) -> None:
    """Demo folders and a few small documents, uploaded by `uploader` (an admin's session), in the caller's
    transaction. Files go to the configured storage.
    """
    files = storage_for(settings)
    folder_ids: dict[str, int] = {}
    for position, (name, description, parent) in enumerate(DEMO_FOLDERS):
        row = await create_folder(
            conn,
            uploader,
            {
                "name": name,
                "description": description,
                "position": position,
                "parent_id": folder_ids.get(parent) if parent else None,
            },
        )
        folder_ids[name] = row["id"]
    scratch = tmp_dir(settings)
    scratch.mkdir(parents=True, exist_ok=True)
    for demo in demo_documents():
        path = scratch / f"demo-{secrets.token_hex(8)}"
        path.write_bytes(demo.content)
        try:
            upload = Upload(
                {"folder_id": str(folder_ids[demo.folder]), "title": demo.title, "description": demo.description},
                path,
                demo.filename,
                len(demo.content),
                hashlib.sha256(demo.content).hexdigest(),
            )
            folder_id, checked = await check_new_document(conn, uploader, upload)
            key = await _store(files, upload, checked.filetype)
            document_id = await conn.fetchval(
                "INSERT INTO forum.documents (folder_id, title, description, uploader_id) VALUES ($1, $2, $3, $4) "
                "RETURNING id",
                folder_id,
                checked.title,
                checked.description,
                uploader.user_id,
            )
            await _insert_version(conn, document_id, 1, checked, upload, key, uploader.user_id, "")
            await _uploaded_event(conn, uploader, document_id)
        finally:
            path.unlink(missing_ok=True)
