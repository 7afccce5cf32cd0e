"""`tica search reindex`: rebuild the whole index from the forum's export API, beside the
live index, then swap it in, while searches go on and events keep flowing.

1. Start: under the exclusive rebuild lock (which waits for indexer transactions in
   flight), mark the rebuild as building and create empty tables beside the live ones.
   From then on the indexer also journals every event it applies (indexer.py).
2. Pull every category, topic, post and comment on a library document from the forum's
   export API (HTTP, authenticated as a service) into the new tables; then build their
   indexes and statistics. Private messages are not exported (yet): the live index's are
   carried over, and who is in each conversation (search.conversations) is kept as it is.
3. Replay the journal onto the new tables, with the same code the indexer uses.
4. Swap: under the exclusive rebuild lock again, replay what the journal gained
   meanwhile, then rename the new tables into place, in one transaction. Searches wait
   for the rename (milliseconds), never fail.

Nothing is lost: an event applied before the start is in the forum's state that the
export reads; one applied after it is in the journal; one applied after the swap goes to
the new live tables. Nothing is doubled: documents are keyed by (kind, id), and replaying
an event is idempotent (store.py's versions).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from services.search import indexer, store
from services.search.store import Content, DocumentWrite, Placement, Tables
from shared import db
from shared.events import Envelope
from shared.service_auth import service_headers
from shared.settings import Settings

log = logging.getLogger("tica.search.reindex")

SUFFIX = "_rebuild"
OLD_SUFFIX = "_old"
NEW = store.LIVE.with_suffix(SUFFIX)
OLD = store.LIVE.with_suffix(OLD_SUFFIX)
# Held (session level) for the whole run: one rebuild at a time.
RUN_LOCK_KEY = 0x7469_6372
PAGE_SIZE = 500
JOURNAL_BATCH = 1000
RETRIES = 4


class ReindexError(Exception):
    """The rebuild cannot go on; the live index is untouched."""


@dataclass
class Report:
    """What a rebuild did."""

    categories: int = 0
    topics: int = 0
    posts: int = 0
    comments: int = 0
    messages: int = 0  # carried over from the live index: the forum's export has none yet
    replayed: int = 0
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"search index rebuilt: {self.categories} categories, {self.topics} topics, {self.posts} posts, "
            f"{self.comments} document comments from the forum, {self.messages} private messages kept, "
            f"{self.replayed} events replayed, "
            f"in {self.seconds:.1f}s"
        )


# --- tables beside the live ones ------------------------------------------------------------

_INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (?:ONLY )?(\S+) (USING .*)$")
INDEXES_SQL = """
SELECT pg_get_indexdef(i.indexrelid) AS definition, i.indisprimary AS is_primary
FROM pg_index i WHERE i.indrelid = $1::regclass ORDER BY i.indisprimary DESC, i.indexrelid
"""


async def _indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str, bool, str]]:
    """(name, unique, primary, rest of the definition) of each index of a table."""
    found = []
    for row in await conn.fetch(INDEXES_SQL, table):
        match = _INDEX_DEF.match(row["definition"])
        if match is None:
            raise ReindexError(f"cannot copy index definition: {row['definition']}")
        unique, name, _, rest = match.groups()
        found.append((name, unique or "", row["is_primary"], rest))
    return found


async def _drop_tables(conn: asyncpg.Connection, tables: Tables) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {', '.join(tables.all())}")


async def create_new_tables(conn: asyncpg.Connection) -> None:
    """Empty tables like the live ones (columns, defaults, generated vector, checks, storage)
    with only their primary keys: the other indexes are built after loading, faster."""
    for live, new in zip(store.LIVE.all(), NEW.all(), strict=True):
        await conn.execute(f"CREATE TABLE {new} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)")
        for name, unique, primary, rest in await _indexes(conn, live):
            if primary:
                await conn.execute(f"CREATE {unique}INDEX {name}{SUFFIX} ON {new} {rest}")
                await conn.execute(
                    f"ALTER TABLE {new} ADD CONSTRAINT {name}{SUFFIX} PRIMARY KEY USING INDEX {name}{SUFFIX}"
                )


async def finish_new_tables(conn: asyncpg.Connection) -> None:
    """Build the new tables' other indexes and their planner statistics."""
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for live, new in zip(store.LIVE.all(), NEW.all(), strict=True):
        for name, unique, primary, rest in await _indexes(conn, live):
            if not primary:
                await conn.execute(f"CREATE {unique}INDEX {name}{SUFFIX} ON {new} {rest}")
        await conn.execute(f"ANALYZE {new}")
    await conn.execute("RESET maintenance_work_mem")


async def _rename_indexes(conn: asyncpg.Connection, table: str, old_suffix: str, new_suffix: str) -> None:
    schema = table.split(".")[0]
    for name, _, _, _ in await _indexes(conn, table):
        base = name[: -len(old_suffix)] if old_suffix and name.endswith(old_suffix) else name
        await conn.execute(f"ALTER INDEX {schema}.{name} RENAME TO {base}{new_suffix}")


# --- the rebuild's states ----------------------------------------------------------------------

# The rebuild's row, locked FOR UPDATE: waits for indexer transactions in flight (they hold it
# FOR SHARE) and holds back new ones until commit, so no event falls between tables and journal.
LOCK_SQL = """
INSERT INTO search.rebuild (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
"""
LOCK_ROW_SQL = "SELECT state FROM search.rebuild WHERE id = 1 FOR UPDATE"
BUILDING_SQL = """
INSERT INTO search.rebuild (id, state, suffix, started_at) VALUES (1, 'building', $1, now())
ON CONFLICT (id) DO UPDATE SET state = 'building', suffix = $1, started_at = now(), finished_at = NULL
"""
IDLE_SQL = """
INSERT INTO search.rebuild (id, state, finished_at) VALUES (1, 'idle', now())
ON CONFLICT (id) DO UPDATE SET state = 'idle', finished_at = now()
"""


async def lock_rebuild_row(conn: asyncpg.Connection) -> None:
    await conn.execute(LOCK_SQL)
    await conn.execute(LOCK_ROW_SQL)


async def begin(conn: asyncpg.Connection) -> None:
    """Mark the rebuild as started (the indexer journals from now on) with empty new tables."""
    async with conn.transaction():
        await lock_rebuild_row(conn)
        await _drop_tables(conn, NEW)
        await _drop_tables(conn, OLD)
        await create_new_tables(conn)
        await conn.execute("TRUNCATE search.rebuild_journal")
        await conn.execute(BUILDING_SQL, SUFFIX)


async def abort(conn: asyncpg.Connection) -> None:
    """Give up a rebuild: the live index stays as it is."""
    async with conn.transaction():
        await lock_rebuild_row(conn)
        await conn.execute(IDLE_SQL)
        await conn.execute("TRUNCATE search.rebuild_journal")
        await _drop_tables(conn, NEW)


async def replay(conn: asyncpg.Connection, after_seq: int) -> tuple[int, int]:
    """Apply journaled events after `after_seq` to the new tables; (count, last seq)."""
    count = 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, envelope::text AS envelope FROM search.rebuild_journal WHERE seq > $1 ORDER BY seq LIMIT $2",
            after_seq,
            JOURNAL_BATCH,
        )
        for row in rows:
            async with conn.transaction():
                await indexer.apply_event(conn, NEW, Envelope.from_json(row["envelope"]))
            after_seq = row["seq"]
        count += len(rows)
        if len(rows) < JOURNAL_BATCH:
            return count, after_seq


async def swap(conn: asyncpg.Connection, after_seq: int) -> int:
    """Replay the rest of the journal and put the new tables in place, atomically; returns events replayed."""
    async with conn.transaction():
        # Waits for indexer transactions in flight; new ones wait for the swap to commit.
        await lock_rebuild_row(conn)
        count, _ = await replay(conn, after_seq)
        for live, new, old in zip(store.LIVE.all(), NEW.all(), OLD.all(), strict=True):
            await _rename_indexes(conn, live, "", OLD_SUFFIX)
            await conn.execute(f"ALTER TABLE {live} RENAME TO {old.split('.')[1]}")
            await conn.execute(f"ALTER TABLE {new} RENAME TO {live.split('.')[1]}")
            await _rename_indexes(conn, live, SUFFIX, "")
        await conn.execute(IDLE_SQL)
        await conn.execute("TRUNCATE search.rebuild_journal")
    await _drop_tables(conn, OLD)
    return count


# --- pulling the forum's export ------------------------------------------------------------------


async def fetch_page(client: httpx.AsyncClient, path: str, after: int, limit: int) -> dict[str, Any]:
    """One page of the export, retried a few times on network trouble."""
    for attempt in range(RETRIES):
        try:
            response = await client.get(path, params={"after": after, "limit": limit})
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                raise ReindexError(f"cannot reach the forum at {client.base_url}: {exc}") from None
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        if response.status_code == 401:
            raise ReindexError("the forum refused the service token: is TICA_SECRET_KEY the same for both services?")
        if response.status_code >= 500 and attempt < RETRIES - 1:
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        if response.status_code != 200:
            raise ReindexError(f"the forum answered {response.status_code} for {path}")
        page: dict[str, Any] = response.json()
        return page
    raise ReindexError(f"the forum kept failing for {path}")


async def pull(client: httpx.AsyncClient, path: str, page_size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of one export, page by page."""
    after = 0
    while True:
        page = await fetch_page(client, path, after, page_size)
        yield page["items"]
        if page.get("next") is None:
            return
        after = int(page["next"])


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _status(row: dict[str, Any]) -> str:
    status = row.get("status", "visible")
    return status if status in store.STATUSES else "hidden"


def _forum_write(
    row: dict[str, Any], *, kind: str, topic_id: int, content: Content, placement: Placement, post_number: int | None
) -> DocumentWrite:
    """A topic or post row as a write: a pseudonymous one keeps no author (as the indexer does)."""
    created = _time(row["created_at"])
    anonymous = bool(row.get("anonymous"))
    return DocumentWrite(
        kind=kind,
        id=row["id"],
        version=None,
        at=created,
        topic_id=topic_id,
        post_number=post_number,
        author_id=None if anonymous else row["author"]["id"],
        anonymous=anonymous,
        created_at=created,
        content=content,
        status=_status(row),
        placement=placement,
    )


def topic_write(row: dict[str, Any]) -> DocumentWrite:
    return _forum_write(
        row,
        kind="topic",
        topic_id=row["id"],
        content=Content("", row["content_note"], row["kind"]),
        placement=Placement(row["category_id"], row["audience"], row["title"], row["slug"]),
        post_number=None,
    )


def post_write(row: dict[str, Any]) -> DocumentWrite:
    return _forum_write(
        row,
        kind="post",
        topic_id=row["topic_id"],
        content=Content(row["text"] or "", row["content_note"]),
        placement=Placement(row["category_id"], row["audience"], row["topic_title"], row["topic_slug"]),
        post_number=row["post_number"],
    )


def comment_write(row: dict[str, Any]) -> DocumentWrite:
    created = _time(row["created_at"])
    return DocumentWrite(
        kind="document_comment",
        id=row["id"],
        version=None,
        at=created,
        author_id=row["author"]["id"],
        created_at=created,
        content=Content(row["text"] or ""),
        status=_status(row),
        placement=Placement(None, row["audience"], row["document_title"]),
        document_id=row["document_id"],
        folder_id=row["folder_id"],
    )


async def _load_rows(
    conn: asyncpg.Connection, rows: list[dict[str, Any]], to_write: Callable[[dict[str, Any]], DocumentWrite]
) -> None:
    async with conn.transaction():
        # A pseudonymous author comes as "Anonymous member", without an id: nobody to remember.
        authors = {row["author"]["id"]: row["author"] for row in rows if row["author"]["id"] is not None}
        for author in authors.values():
            await store.write_user(
                conn,
                NEW,
                user_id=author["id"],
                username=author["username"],
                display_name=author["display_name"],
                version=None,
            )
        await store.write_documents(conn, NEW, [to_write(row) for row in rows])


async def _load_comments(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """Comments, and where their documents are (so the journal's folder and document events find them)."""
    documents = {row["document_id"]: row for row in rows}
    async with conn.transaction():
        for row in documents.values():
            await store.note_document(
                conn,
                NEW,
                document_id=row["document_id"],
                folder_id=row["folder_id"],
                title=row["document_title"],
                audience=row["audience"],
                version=None,
            )
    await _load_rows(conn, rows, comment_write)


async def load_export(conn: asyncpg.Connection, client: httpx.AsyncClient, report: Report, page_size: int) -> None:
    """Everything the forum exports, into the new tables."""
    async for rows in pull(client, "/api/export/categories", page_size):
        async with conn.transaction():
            for row in rows:
                await store.write_category(
                    conn,
                    NEW,
                    category_id=row["id"],
                    slug=row["slug"],
                    name=row["name"],
                    audience=row["audience"],
                    version=None,
                )
        report.categories += len(rows)
    async for rows in pull(client, "/api/export/topics", page_size):
        await _load_rows(conn, rows, topic_write)
        report.topics += len(rows)
    async for rows in pull(client, "/api/export/posts", page_size):
        await _load_rows(conn, rows, post_write)
        report.posts += len(rows)
        if report.posts % (page_size * 20) == 0:
            log.info("reindex: %d posts loaded", report.posts)
    async for rows in pull(client, "/api/export/document-comments", page_size):
        await _load_comments(conn, rows)
        report.comments += len(rows)
    report.messages = await store.carry_messages(conn, store.LIVE, NEW)


# --- the whole rebuild ----------------------------------------------------------------------------


async def rebuild(
    conn: asyncpg.Connection,
    client: httpx.AsyncClient,
    *,
    page_size: int = PAGE_SIZE,
    before_swap: Callable[[], Any] | None = None,
) -> Report:
    """Rebuild the index from the forum's export on this (dedicated) connection.

    `before_swap` is awaited, if given, just before the swap (tests use it to write
    while the rebuild is about to swap).
    """
    started = time.monotonic()
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RUN_LOCK_KEY):
        raise ReindexError("another reindex is running; try again when it has finished")
    report = Report()
    try:
        await begin(conn)
        try:
            await load_export(conn, client, report, page_size)
            await finish_new_tables(conn)
            replayed, seq = await replay(conn, 0)
            if before_swap is not None:
                await before_swap()
            report.replayed = replayed + await swap(conn, seq)
        except BaseException:
            await asyncio.shield(abort(conn))
            raise
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RUN_LOCK_KEY)
    report.seconds = time.monotonic() - started
    return report


async def run(settings: Settings, *, forum_url: str, page_size: int = PAGE_SIZE) -> Report:
    """`tica search reindex`: connect to the search database and the forum, and rebuild."""
    assert settings.database_url
    try:
        conn = await db.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ReindexError(f"cannot connect to the database: {exc}") from None
    try:
        async with httpx.AsyncClient(base_url=forum_url, headers=service_headers(settings), timeout=60) as client:
            return await rebuild(conn, client, page_size=page_size)
    finally:
        await conn.close()
