"""The index tables and every write to them: documents (topics, posts and comments on
library documents), categories, authors, and the library's documents and folders.

The indexer (from events) and the rebuild (from the forum's export, then from the
journal) both write through these functions, so a row means the same whoever wrote it.
Each write names its tables through `Tables`, which lets a rebuild fill new tables
beside the live ones.

Ordering: a document's fields come in three groups (content, status, placement), each
stamped with the id of the event that last set it. Event ids are UUIDv7, so they order
by time: an event that arrives late, or a second time, never overwrites a newer one.
Rows from the forum's export carry no version (None) and apply as they are: they only
ever go into a rebuild's fresh tables, before its journal is replayed on top of them.

Pseudonymous topics and posts keep no author at all (author_id NULL, `anonymous` set, for
good): nobody finds them with @username, and every result shows "Anonymous member". The
forum reveals such an author only to staff who ask, and audits each reveal; an index that
knew the author would be a way round that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

KINDS = ("topic", "post", "document_comment", "message")
STATUSES = ("visible", "hidden", "deleted")
BODY_MAX_CHARS = 100_000

# Control characters other than tab and newline: never useful in text, and \x02/\x03
# mark highlighted words in snippets (query.py), so no stored text may contain them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str | None, max_chars: int = BODY_MAX_CHARS) -> str:
    """Text as the index keeps it: no control characters, bounded length."""
    return _CONTROL.sub(" ", text or "")[:max_chars]


def newer(current: object, incoming: object) -> bool:
    """Whether an event id `current` is known to be newer than `incoming` (None: unknown)."""
    return current is not None and incoming is not None and str(current) > str(incoming)


@dataclass(frozen=True)
class Tables:
    """Where the index lives: the live tables, or a rebuild's new ones beside them."""

    documents: str = "search.documents"
    categories: str = "search.categories"
    users: str = "search.users"
    folders: str = "search.folders"
    library: str = "search.library_documents"

    def with_suffix(self, suffix: str) -> Tables:
        return Tables(*(table + suffix for table in self.all()))

    def all(self) -> tuple[str, ...]:
        return self.documents, self.categories, self.users, self.folders, self.library


LIVE = Tables()


@dataclass(frozen=True)
class Content:
    """What the document says (searched)."""

    body: str
    content_note: str | None = None
    topic_kind: str | None = None  # discussion, blog, case_study, narrative (topics only)


@dataclass(frozen=True)
class Placement:
    """Where the document is and so who may see it; title and slug are its topic's."""

    category_id: int | None
    audience: list[str]
    title: str | None = None
    slug: str | None = None


@dataclass(frozen=True)
class DocumentWrite:
    """One change to one document: the groups given are set, the others left as they are.

    A document the index has not seen yet is created from what the write knows; `at`
    stands in for its creation time until a write that knows it (`created_at`) comes.
    """

    kind: str
    id: int
    version: str | None
    at: datetime
    topic_id: int | None = None
    post_number: int | None = None
    author_id: int | None = None
    created_at: datetime | None = None
    content: Content | None = None
    status: str | None = None
    placement: Placement | None = None
    placement_version: str | None = None  # default: version
    placement_if_new: bool = False  # only fill the placement of a document not seen before
    document_id: int | None = None  # a comment's library document
    folder_id: int | None = None  # a comment's folder (placement)
    anonymous: bool = False  # posted pseudonymously: no author is kept (see the module's docstring)
    conversation_id: int | None = None  # a private message's conversation
    from_moderators: bool = False  # a message sent from the moderators' inbox: no author is kept


def _newer_sql(column: str, param: str) -> str:
    return f"(d.{column} IS NULL OR {param}::uuid IS NULL OR d.{column} < {param}::uuid)"


_CONTENT_OK = f"($13 AND {_newer_sql('content_version', '$19')})"
_STATUS_OK = f"($14 AND {_newer_sql('status_version', '$19')})"
_PLACE_OK = f"($15 AND $16 AND {_newer_sql('placement_version', '$20')})"

WRITE_DOCUMENT_SQL = f"""
INSERT INTO {{documents}} AS d (kind, id, topic_id, post_number, author_id, created_at, body, content_note, topic_kind,
    status, category_id, audience, title, slug, content_version, status_version, placement_version,
    document_id, folder_id, anonymous, conversation_id, from_moderators)
VALUES ($1::text, $2::bigint, $3::bigint, $4::integer, CASE WHEN NOT ($24::boolean OR $26::boolean) THEN $5::bigint END,
    coalesce($6::timestamptz, $7::timestamptz),
    coalesce($8::text, ''), $9::text, $10::text, coalesce($11::text, 'visible'),
    $12::bigint, coalesce($17::text[], ARRAY[]::text[]), coalesce($18::text, ''), coalesce($21::text, ''),
    CASE WHEN $13::boolean THEN $19::uuid END, CASE WHEN $14::boolean THEN $19::uuid END,
    CASE WHEN $15::boolean THEN $20::uuid END, $22::bigint, $23::bigint, $24::boolean, $25::bigint, $26::boolean)
ON CONFLICT (kind, id) DO UPDATE SET
    topic_id = coalesce(EXCLUDED.topic_id, d.topic_id),
    post_number = coalesce(EXCLUDED.post_number, d.post_number),
    -- Once known to be pseudonymous, always: no later write, whatever it carries, attaches an author.
    author_id = CASE WHEN d.anonymous OR $24::boolean OR d.from_moderators OR $26::boolean THEN NULL
                     ELSE coalesce(EXCLUDED.author_id, d.author_id) END,
    anonymous = d.anonymous OR $24::boolean,
    document_id = coalesce(EXCLUDED.document_id, d.document_id),
    conversation_id = coalesce(EXCLUDED.conversation_id, d.conversation_id),
    from_moderators = d.from_moderators OR $26::boolean,
    folder_id = CASE WHEN {_PLACE_OK} THEN coalesce(EXCLUDED.folder_id, d.folder_id) ELSE d.folder_id END,
    created_at = coalesce($6::timestamptz, d.created_at),
    body = CASE WHEN {_CONTENT_OK} THEN EXCLUDED.body ELSE d.body END,
    content_note = CASE WHEN {_CONTENT_OK} THEN EXCLUDED.content_note ELSE d.content_note END,
    topic_kind = CASE WHEN {_CONTENT_OK} THEN coalesce(EXCLUDED.topic_kind, d.topic_kind) ELSE d.topic_kind END,
    content_version = CASE WHEN {_CONTENT_OK} THEN $19::uuid ELSE d.content_version END,
    status = CASE WHEN {_STATUS_OK} THEN EXCLUDED.status ELSE d.status END,
    status_version = CASE WHEN {_STATUS_OK} THEN $19::uuid ELSE d.status_version END,
    category_id = CASE WHEN {_PLACE_OK} THEN EXCLUDED.category_id ELSE d.category_id END,
    audience = CASE WHEN {_PLACE_OK} THEN EXCLUDED.audience ELSE d.audience END,
    title = CASE WHEN {_PLACE_OK} AND $18 IS NOT NULL THEN $18 ELSE d.title END,
    slug = CASE WHEN {_PLACE_OK} AND coalesce($21, '') <> '' THEN $21 ELSE d.slug END,
    placement_version = CASE WHEN {_PLACE_OK} THEN $20::uuid ELSE d.placement_version END,
    indexed_at = now()
RETURNING content_version, status_version, placement_version
"""


async def write_document(conn: asyncpg.Connection, tables: Tables, write: DocumentWrite) -> asyncpg.Record:
    """Create or update one document, each group only when the write is newer than what is there.

    Returns the document's versions after the write (equal to the write's where it applied).
    """
    row = await conn.fetchrow(WRITE_DOCUMENT_SQL.format(documents=tables.documents), *_document_args(write))
    assert row is not None
    return row


async def write_documents(conn: asyncpg.Connection, tables: Tables, writes: list[DocumentWrite]) -> None:
    """write_document for many documents in one round trip (the rebuild's bulk load)."""
    if writes:
        await conn.executemany(
            WRITE_DOCUMENT_SQL.format(documents=tables.documents), [_document_args(w) for w in writes]
        )


def _document_args(write: DocumentWrite) -> tuple[object, ...]:
    content, placement = write.content, write.placement
    return (
        write.kind,
        write.id,
        write.topic_id,
        write.post_number,
        write.author_id,  # $1-$5
        write.created_at,
        write.at,  # $6, $7
        clean_text(content.body) if content else None,
        content.content_note if content else None,  # $8, $9
        content.topic_kind if content else None,
        write.status,  # $10, $11
        placement.category_id if placement else None,  # $12
        content is not None,
        write.status is not None,
        placement is not None,  # $13-$15
        not write.placement_if_new,  # $16
        _audience(placement.audience) if placement else None,  # $17
        clean_text(placement.title, 500) if placement and placement.title is not None else None,  # $18
        write.version,
        write.placement_version or write.version,  # $19, $20
        placement.slug if placement else None,  # $21
        write.document_id,
        write.folder_id,
        write.anonymous,  # $22-$24
        write.conversation_id,
        write.from_moderators,  # $25, $26
    )


def _audience(audience: list[str]) -> list[str]:
    return sorted({str(a) for a in audience if a})


# The post's topic (when its placement is newer than the write's) and the category that then
# applies, in one round trip.
PLACEMENT_SQL = """
SELECT t.category_id, t.audience, t.title, t.slug, t.placement_version,
       c.audience AS category_audience, c.version AS category_version
FROM (SELECT 1) AS one
LEFT JOIN {documents} t ON t.kind = 'topic' AND t.id = $1::bigint
LEFT JOIN {categories} c ON c.category_id = CASE WHEN t.placement_version > $3::uuid THEN t.category_id
                                                 ELSE $2::bigint END
"""


async def resolve_placement(conn: asyncpg.Connection, tables: Tables, write: DocumentWrite) -> DocumentWrite:
    """The write with the newest placement the index knows: its topic's or category's when newer.

    A post's event says where its topic was when the post was written; if the index has
    since seen the topic move (or the category change who may read it), that wins, so a
    late event can never put a post back where more people may read it.
    """
    placement, version = write.placement, write.placement_version or write.version
    if placement is None:
        return write
    topic_id = write.topic_id if write.kind == "post" else None
    row = await conn.fetchrow(
        PLACEMENT_SQL.format(documents=tables.documents, categories=tables.categories),
        topic_id,
        placement.category_id,
        version,
    )
    assert row is not None
    if row["placement_version"] is not None and newer(row["placement_version"], version):
        placement = Placement(row["category_id"], list(row["audience"]), row["title"], row["slug"])
        version = str(row["placement_version"])
    elif topic_id is not None and row["slug"] and not placement.slug:
        placement = replace(placement, slug=row["slug"])
    if newer(row["category_version"], version):
        placement = replace(placement, audience=list(row["category_audience"]))
        version = str(row["category_version"])
    return replace(write, placement=placement, placement_version=version)


PROPAGATE_TOPIC_SQL = f"""
UPDATE {{documents}} d
SET category_id = $2, audience = $3, title = $4, slug = CASE WHEN $5 <> '' THEN $5 ELSE d.slug END,
    placement_version = $6, indexed_at = now()
WHERE d.kind = 'post' AND d.topic_id = $1 AND {_newer_sql("placement_version", "$6")}
  AND (d.category_id IS DISTINCT FROM $2 OR d.audience IS DISTINCT FROM $3 OR d.title IS DISTINCT FROM $4
       OR ($5 <> '' AND d.slug IS DISTINCT FROM $5))
"""


async def propagate_topic(
    conn: asyncpg.Connection, tables: Tables, topic_id: int, placement: Placement, version: str | None
) -> int:
    """Move a topic's posts with it (category, audience, title, slug); returns how many changed."""
    result = await conn.execute(
        PROPAGATE_TOPIC_SQL.format(documents=tables.documents),
        topic_id,
        placement.category_id,
        _audience(placement.audience),
        clean_text(placement.title or "", 500),
        placement.slug or "",
        version,
    )
    return int(result.split()[-1])


PROPAGATE_CATEGORY_SQL = f"""
UPDATE {{documents}} d SET audience = $2, placement_version = $3, indexed_at = now()
WHERE d.category_id = $1 AND d.audience IS DISTINCT FROM $2 AND {_newer_sql("placement_version", "$3")}
  -- the replies of a hidden topic stay staff-only whatever their category becomes
  AND NOT EXISTS (SELECT 1 FROM {{documents}} t WHERE t.kind = 'topic' AND t.id = d.topic_id AND t.status <> 'visible')
"""


async def propagate_category(
    conn: asyncpg.Connection, tables: Tables, category_id: int, audience: list[str], version: str | None
) -> int:
    """Give every document of a category the category's audience; returns how many changed."""
    result = await conn.execute(
        PROPAGATE_CATEGORY_SQL.format(documents=tables.documents), category_id, _audience(audience), version
    )
    return int(result.split()[-1])


WRITE_CATEGORY_SQL = """
INSERT INTO {categories} AS c (category_id, slug, name, audience, version) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (category_id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name, audience = EXCLUDED.audience,
    version = EXCLUDED.version
WHERE c.version IS NULL OR EXCLUDED.version IS NULL OR c.version < EXCLUDED.version
"""


async def write_category(
    conn: asyncpg.Connection,
    tables: Tables,
    *,
    category_id: int,
    slug: str,
    name: str,
    audience: list[str],
    version: str | None,
) -> bool:
    """Create or update a category (its slug for #filters, its audience); False when a newer one is there."""
    result = await conn.execute(
        WRITE_CATEGORY_SQL.format(categories=tables.categories),
        category_id,
        clean_text(slug, 200),
        clean_text(name, 200),
        _audience(audience),
        version,
    )
    return result.endswith(" 1")


WRITE_USER_SQL = """
INSERT INTO {users} AS u (user_id, username, display_name, version) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO UPDATE SET username = EXCLUDED.username, display_name = EXCLUDED.display_name,
    version = EXCLUDED.version
WHERE u.version IS NULL OR EXCLUDED.version IS NULL OR u.version < EXCLUDED.version
"""
ADD_AUTHOR_SQL = """
INSERT INTO {users} (user_id, username, display_name) VALUES ($1, $2, $2) ON CONFLICT (user_id) DO NOTHING
"""


async def write_user(
    conn: asyncpg.Connection, tables: Tables, *, user_id: int, username: str, display_name: str, version: str | None
) -> None:
    """Create or update a member's name (user.registered, user.updated, or the export)."""
    await conn.execute(
        WRITE_USER_SQL.format(users=tables.users),
        user_id,
        clean_text(username, 100),
        clean_text(display_name, 200),
        version,
    )


async def add_author(conn: asyncpg.Connection, tables: Tables, *, user_id: int, username: str) -> None:
    """Remember an author seen on a topic or post, unless their own events already told us more."""
    await conn.execute(ADD_AUTHOR_SQL.format(users=tables.users), user_id, clean_text(username, 100))


# --- topics that leave for good -------------------------------------------------------------------

ERASE_TOPIC_POSTS_SQL = """
UPDATE {documents} d SET status = 'deleted', body = '', content_note = NULL,
    status_version = greatest(d.status_version, $2::uuid), content_version = greatest(d.content_version, $2::uuid),
    indexed_at = now()
WHERE d.kind = 'post' AND d.topic_id = $1 AND (d.status <> 'deleted' OR d.body <> '')
"""


async def erase_topic_posts(conn: asyncpg.Connection, tables: Tables, topic_id: int, version: str | None) -> int:
    """A deleted topic's posts leave the index with it, text and all (a topic is never brought back)."""
    result = await conn.execute(ERASE_TOPIC_POSTS_SQL.format(documents=tables.documents), topic_id, version)
    return int(result.split()[-1])


# --- the library: where a document's comments belong -------------------------------------------------
# A comment is where its document is (folder, title) and readable by whom its folder is. Document
# events (and comment events, which tell where the document was) set the document's row; folder
# events set the folder's. A comment's audience is the newer of the two words: the document's
# (from when it was last placed) or its folder's (when the folder changed since). Writers take
# the document's row (FOR UPDATE, by the upsert) and then its folder's (FOR SHARE), and a folder
# event takes the folder's row FOR UPDATE, so a folder change and a comment landing in that folder
# never miss each other.


@dataclass(frozen=True)
class LibraryPlace:
    """Where a document's comments belong now (or that the document is gone)."""

    document_id: int
    folder_id: int
    title: str
    audience: list[str]
    deleted: bool
    version: str | None  # the event that decided the audience


NOTE_DOCUMENT_SQL = """
INSERT INTO {library} AS l (document_id, folder_id, title, audience, version) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (document_id) DO UPDATE SET folder_id = EXCLUDED.folder_id, title = EXCLUDED.title,
    audience = EXCLUDED.audience, version = EXCLUDED.version
WHERE l.version IS NULL OR EXCLUDED.version IS NULL OR l.version < EXCLUDED.version
"""
# The document's folder gets a placeholder row (no version: it never wins over the document's own
# word) so there is always a row to lock: a folder event inserting it waits, or is waited for.
ENSURE_FOLDER_SQL = """
INSERT INTO {folders} (folder_id, audience)
SELECT l.folder_id, l.audience FROM {library} l WHERE l.document_id = $1
ON CONFLICT (folder_id) DO NOTHING
"""
PLACE_SQL = """
SELECT l.document_id, l.folder_id, l.title, l.deleted, l.audience, l.version,
       coalesce(f.version > l.version, f.version IS NOT NULL) AS folder_newer,
       f.audience AS folder_audience, f.version AS folder_version
FROM {library} l JOIN {folders} f ON f.folder_id = l.folder_id
WHERE l.document_id = $1
FOR SHARE OF f
"""


async def note_document(
    conn: asyncpg.Connection,
    tables: Tables,
    *,
    document_id: int,
    folder_id: int,
    title: str,
    audience: list[str],
    version: str | None,
) -> LibraryPlace:
    """Remember where a document is (unless the index knows a newer word on it); where its comments belong now."""
    await conn.execute(
        NOTE_DOCUMENT_SQL.format(library=tables.library),
        document_id,
        folder_id,
        clean_text(title, 500),
        _audience(audience),
        version,
    )
    return await library_place(conn, tables, document_id)


async def library_place(conn: asyncpg.Connection, tables: Tables, document_id: int) -> LibraryPlace:
    """Where a document's comments belong, from the newest words on the document and its folder."""
    await conn.execute(ENSURE_FOLDER_SQL.format(library=tables.library, folders=tables.folders), document_id)
    row = await conn.fetchrow(PLACE_SQL.format(library=tables.library, folders=tables.folders), document_id)
    assert row is not None
    folder_newer = bool(row["folder_newer"])
    version = row["folder_version"] if folder_newer else row["version"]
    return LibraryPlace(
        document_id=row["document_id"],
        folder_id=row["folder_id"],
        title=row["title"],
        audience=list(row["folder_audience"] if folder_newer else row["audience"]),
        deleted=row["deleted"],
        version=str(version) if version is not None else None,
    )


PLACE_COMMENTS_SQL = """
UPDATE {documents} d SET folder_id = $2, title = $3, audience = $4, placement_version = $5, indexed_at = now()
WHERE d.kind = 'document_comment' AND d.document_id = $1
  AND (d.folder_id IS DISTINCT FROM $2 OR d.title IS DISTINCT FROM $3 OR d.audience IS DISTINCT FROM $4)
"""


async def place_comments(conn: asyncpg.Connection, tables: Tables, place: LibraryPlace) -> int:
    """Put every comment of a document where the document now is; returns how many moved."""
    result = await conn.execute(
        PLACE_COMMENTS_SQL.format(documents=tables.documents),
        place.document_id,
        place.folder_id,
        place.title,
        place.audience,
        place.version,
    )
    return int(result.split()[-1])


DELETE_DOCUMENT_SQL = """
INSERT INTO {library} AS l (document_id, folder_id, deleted) VALUES ($1, $2, true)
ON CONFLICT (document_id) DO UPDATE SET deleted = true
"""
ERASE_COMMENTS_SQL = """
UPDATE {documents} d SET status = 'deleted', body = '', content_note = NULL,
    status_version = greatest(d.status_version, $2::uuid), content_version = greatest(d.content_version, $2::uuid),
    indexed_at = now()
WHERE d.kind = 'document_comment' AND d.document_id = $1 AND (d.status <> 'deleted' OR d.body <> '')
"""


async def delete_library_document(
    conn: asyncpg.Connection, tables: Tables, *, document_id: int, folder_id: int, version: str | None
) -> int:
    """A document left the library: its comments leave the index, text and all, and any that
    arrive late land as deleted. Returns how many comments were erased."""
    await conn.execute(DELETE_DOCUMENT_SQL.format(library=tables.library), document_id, folder_id)
    result = await conn.execute(ERASE_COMMENTS_SQL.format(documents=tables.documents), document_id, version)
    return int(result.split()[-1])


WRITE_FOLDER_SQL = """
INSERT INTO {folders} AS f (folder_id, audience, version) VALUES ($1, $2, $3)
ON CONFLICT (folder_id) DO UPDATE SET audience = EXCLUDED.audience, version = EXCLUDED.version
WHERE f.version IS NULL OR EXCLUDED.version IS NULL OR f.version < EXCLUDED.version
"""
# Only comments whose document was last placed before this folder event: a newer document event
# (say, a move into this folder) already brought the newer audience.
PROPAGATE_FOLDER_SQL = """
UPDATE {documents} d SET audience = $2, placement_version = $3, indexed_at = now()
FROM {library} l
WHERE d.kind = 'document_comment' AND d.folder_id = $1 AND l.document_id = d.document_id AND l.folder_id = $1
  AND (l.version IS NULL OR $3::uuid IS NULL OR l.version < $3::uuid) AND d.audience IS DISTINCT FROM $2
"""


async def write_folder(
    conn: asyncpg.Connection, tables: Tables, *, folder_id: int, audience: list[str], version: str | None
) -> int:
    """A folder's audience (folder.updated), given to the comments in it; returns how many changed.

    Nothing changes when the index already has a newer word on the folder.
    """
    audience = _audience(audience)
    result = await conn.execute(WRITE_FOLDER_SQL.format(folders=tables.folders), folder_id, audience, version)
    if not result.endswith(" 1"):
        return 0
    result = await conn.execute(
        PROPAGATE_FOLDER_SQL.format(documents=tables.documents, library=tables.library), folder_id, audience, version
    )
    return int(result.split()[-1])


# --- private messages: who is in each conversation ----------------------------------------------------

WRITE_CONVERSATION_SQL = """
INSERT INTO search.conversations AS c (conversation_id, member_ids, with_moderators, version)
VALUES ($1, $2, $3, $4)
ON CONFLICT (conversation_id) DO UPDATE SET
    member_ids = EXCLUDED.member_ids, with_moderators = EXCLUDED.with_moderators, version = EXCLUDED.version
WHERE c.version IS NULL OR c.version < EXCLUDED.version
"""


async def write_conversation(
    conn: asyncpg.Connection, *, conversation_id: int, member_ids: list[int], with_moderators: bool, version: str
) -> None:
    """Who is in a conversation now: each event carries the whole list, so the newest one wins."""
    await conn.execute(WRITE_CONVERSATION_SQL, conversation_id, sorted(set(member_ids)), with_moderators, version)


# The forum's export has no messages yet: a rebuild carries the live index's messages over into its
# new tables (after it started journaling, so a message indexed meanwhile is replayed on top).
CARRY_MESSAGES_SQL = """
INSERT INTO {new} (kind, id, topic_id, post_number, category_id, author_id, title, slug, body, content_note,
    topic_kind, audience, status, created_at, content_version, status_version, placement_version, indexed_at,
    document_id, folder_id, anonymous, conversation_id, from_moderators)
SELECT kind, id, topic_id, post_number, category_id, author_id, title, slug, body, content_note,
    topic_kind, audience, status, created_at, content_version, status_version, placement_version, indexed_at,
    document_id, folder_id, anonymous, conversation_id, from_moderators
FROM {live} WHERE kind = 'message'
ON CONFLICT (kind, id) DO NOTHING
"""


CARRY_AUTHORS_SQL = """
INSERT INTO {new} (user_id, username, display_name, version)
SELECT u.user_id, u.username, u.display_name, u.version FROM {live} u
WHERE u.user_id IN (SELECT author_id FROM {messages} WHERE kind = 'message' AND author_id IS NOT NULL)
ON CONFLICT (user_id) DO NOTHING
"""


async def carry_messages(conn: asyncpg.Connection, live: Tables, new: Tables) -> int:
    """Copy the messages of the live index, and their authors, into a rebuild's tables; how many messages."""
    status = await conn.execute(CARRY_MESSAGES_SQL.format(new=new.documents, live=live.documents))
    await conn.execute(CARRY_AUTHORS_SQL.format(new=new.users, live=live.users, messages=live.documents))
    return int(status.rsplit(" ", 1)[-1])
