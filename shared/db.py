"""PostgreSQL: the asyncpg pool and the migration runner every service uses.

Each service owns one schema and a folder of numbered plain SQL files
(`migrations/0001_init.sql`). `migrate()` applies the missing ones in order under a
PostgreSQL advisory lock, so several replicas may start at once, and records each
file with a SHA-256 checksum; a changed applied file stops start-up.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

# One advisory lock key for all migrations: a schema's files may refer to another
# schema's objects (never its tables, but e.g. extensions), so they run one at a time.
MIGRATION_LOCK_KEY = 0x7469_6361  # "tica"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The migrations on disk and in the database disagree."""


@dataclass(frozen=True)
class Migration:
    schema: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Nothing beyond what asyncpg always does on release (roll back a transaction left open,
    as by a cancelled request; drop listener callbacks).

    Pool connections carry no session state: advisory locks, LISTEN and session-wide SET are
    used only on dedicated connections (db.connect), and SET LOCAL ends with its transaction.
    So asyncpg's default full reset (RESET ALL and friends: a round trip on every release, a
    tenth of a topic page's time) has nothing to undo.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb to Python objects."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset_connection
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (for listeners and scripts)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


def load_migrations(schema: str, folder: Path) -> list[Migration]:
    """The migration files of one schema, in order; a badly named file is an error."""
    migrations: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lowercase_words.sql")
        if migrations and migrations[-1].name[:4] == match.group(1):
            # Two branches that each added the next number: the order between them is an accident.
            raise MigrationError(f"{path}: number {match.group(1)} is also used by {migrations[-1].name}")
        migrations.append(Migration(schema, path.name, path.read_text()))
    return migrations


_CREATE_LEDGER = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


async def _applied(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations")
    if exists is None:
        return {}
    rows = await conn.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
    return {row["name"]: row["checksum"] for row in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[str, str]) -> list[Migration]:
    """The migrations still to apply; raises if an applied file was changed or removed."""
    on_disk = {m.name for m in migrations}
    for name in applied:
        if name not in on_disk:
            raise MigrationError(f"applied migration {name} is missing from disk")
    pending = []
    for migration in migrations:
        checksum = applied.get(migration.name)
        if checksum is None:
            pending.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.schema}/{migration.name} was changed after it was applied; "
                "add a new migration instead"
            )
    return pending


async def migrate(conn: asyncpg.Connection, plan: dict[str, list[Migration]]) -> list[str]:
    """Apply every pending migration of every schema; returns the names applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        for schema, migrations in plan.items():
            await conn.execute(_CREATE_LEDGER.format(schema=schema))
            pending = _check_unchanged(migrations, await _applied(conn, schema))
            for migration in pending:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"INSERT INTO {schema}.schema_migrations (name, checksum) VALUES ($1, $2)",
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(f"{schema}/{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def pending_migrations(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    """Names not yet applied (raises MigrationError if an applied one changed): for /readyz."""
    return [m.name for m in _check_unchanged(migrations, await _applied(conn, schema))]


def record_to_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(record) if record is not None else None
