"""Migrations: each file applied once even by concurrent runners, applied files never
change, file names are checked, and readiness reports what is pending."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from services.cli import migration_plan
from shared import db
from shared.sessions import SessionStore
from shared.web import Runtime, readiness

TICA = str(Path(sys.executable).parent / "tica")


@pytest_asyncio.fixture
async def fresh_database(servers) -> AsyncIterator[str]:
    """A database of this test's own, dropped afterwards."""
    name = f"tica_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(servers[0])
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(urlsplit(servers[0])._replace(path="/" + name))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def test_two_concurrent_migrates_apply_each_file_once(fresh_database, servers):
    """Two `tica migrate` started at once apply each migration file exactly once between them."""
    environ = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "REDIS_URL": servers[1],
        "TICA_SECRET_KEY": "k" * 40,
        "TICA_LOG_LEVEL": "WARNING",
    }
    runs = [
        subprocess.Popen([TICA, "migrate"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    files = sorted(f"{schema}/{m.name}" for schema, ms in migration_plan().items() for m in ms)
    applied_by = [_applied_names(stdout) for stdout, _ in outputs]
    assert sorted(applied_by[0] + applied_by[1]) == files  # each file by exactly one of the two
    assert sorted(_ledger(fresh_database)) == files


def _applied_names(stdout: str) -> list[str]:
    match = re.fullmatch(r"applied (\d+) migration\(s\)(?:: (.*))?", stdout.strip())
    assert match, stdout
    names = match.group(2).split(", ") if match.group(2) else []
    assert len(names) == int(match.group(1))
    return names


def _ledger(database_url: str) -> list[str]:
    import asyncio

    async def read() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            return [
                f"{schema}/{row['name']}"
                for schema in migration_plan()
                for row in await conn.fetch(f"SELECT name FROM {schema}.schema_migrations")
            ]
        finally:
            await conn.close()

    return asyncio.run(read())


@pytest_asyncio.fixture
async def scratch(pool) -> AsyncIterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    schema = f"scratch_{secrets.token_hex(4)}"
    yield schema
    await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql)


async def run_migrate(pool: asyncpg.Pool, schema: str, folder: Path) -> list[str]:
    async with pool.acquire() as conn:
        return await db.migrate(conn, {schema: db.load_migrations(schema, folder)})


async def test_migrate_applies_in_order_once(pool, scratch, tmp_path):
    """Pending files are applied in number order and recorded; a second run applies nothing."""
    write(tmp_path, "0002_add_column.sql", f"ALTER TABLE {scratch}.t ADD COLUMN b int;")
    write(tmp_path, "0001_create.sql", f"CREATE TABLE {scratch}.t (a int);")
    assert await run_migrate(pool, scratch, tmp_path) == [
        f"{scratch}/0001_create.sql",
        f"{scratch}/0002_add_column.sql",
    ]
    assert await run_migrate(pool, scratch, tmp_path) == []
    assert await pool.fetchval(f"SELECT count(*) FROM {scratch}.schema_migrations") == 2


async def test_changed_applied_migration_is_refused(pool, scratch, tmp_path):
    """Once applied, a file that was edited (or removed) makes migrate and the pending check refuse."""
    write(tmp_path, "0001_create.sql", f"CREATE TABLE {scratch}.t (a int);")
    await run_migrate(pool, scratch, tmp_path)

    write(tmp_path, "0001_create.sql", f"CREATE TABLE {scratch}.t (a bigint);")
    with pytest.raises(db.MigrationError, match=r"0001_create\.sql was changed after it was applied"):
        await run_migrate(pool, scratch, tmp_path)
    async with pool.acquire() as conn:
        with pytest.raises(db.MigrationError, match="changed"):
            await db.pending_migrations(conn, scratch, db.load_migrations(scratch, tmp_path))

    (tmp_path / "0001_create.sql").unlink()
    with pytest.raises(db.MigrationError, match=r"0001_create\.sql is missing"):
        await run_migrate(pool, scratch, tmp_path)


async def test_failed_migration_leaves_nothing_behind(pool, scratch, tmp_path):
    """A file that fails is rolled back, not recorded, and the migration lock is released."""
    write(tmp_path, "0001_create.sql", f"CREATE TABLE {scratch}.t (a int);")
    write(tmp_path, "0002_broken.sql", f"CREATE TABLE {scratch}.u (a int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await run_migrate(pool, scratch, tmp_path)
    assert await pool.fetchval("SELECT to_regclass($1)", f"{scratch}.u") is None
    assert [r["name"] for r in await pool.fetch(f"SELECT name FROM {scratch}.schema_migrations")] == ["0001_create.sql"]
    held = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        db.MIGRATION_LOCK_KEY,
    )
    assert held == 0


@pytest.mark.parametrize("name", ["1_create.sql", "0001-create.sql", "0001_Create.sql", "0001_.sql", "init.sql"])
def test_badly_named_migration_file_is_refused(tmp_path, name):
    """A migration file not named NNNN_lowercase_words.sql is an error naming it."""
    write(tmp_path, "0001_create.sql", "SELECT 1;")
    write(tmp_path, name, "SELECT 1;")
    with pytest.raises(db.MigrationError, match=re.escape(name)):
        db.load_migrations("scratch", tmp_path)


def test_two_files_with_one_number_are_refused(tmp_path):
    """Two files sharing a number (say, from two branches) are refused rather than both applied."""
    write(tmp_path, "0001_create.sql", "SELECT 1;")
    write(tmp_path, "0002_add_users.sql", "SELECT 1;")
    write(tmp_path, "0002_add_posts.sql", "SELECT 1;")
    with pytest.raises(db.MigrationError, match="0002"):
        db.load_migrations("scratch", tmp_path)


async def test_readiness_reports_pending_migrations(pool, redis, settings, scratch, tmp_path):
    """A service whose migrations are not all applied is not ready, and says which ones are missing."""
    write(tmp_path, "0001_create.sql", f"CREATE TABLE {scratch}.t (a int);")
    await run_migrate(pool, scratch, tmp_path)
    write(tmp_path, "0002_add_column.sql", f"ALTER TABLE {scratch}.t ADD COLUMN b int;")
    async with pool.acquire() as conn:
        assert await db.pending_migrations(conn, scratch, db.load_migrations(scratch, tmp_path)) == [
            "0002_add_column.sql"
        ]

    rt = Runtime(settings, pool, redis, SessionStore(redis, settings.redis_prefix))
    assert (await readiness(rt, scratch, tmp_path))["problems"] == ["migrations not applied: 0002_add_column.sql"]
    await run_migrate(pool, scratch, tmp_path)
    assert (await readiness(rt, scratch, tmp_path))["problems"] == []
