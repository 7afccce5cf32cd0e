"""Test fixtures: real PostgreSQL and Redis, a fresh database and key prefix per run.

TICA_TEST_DATABASE_URL / TICA_TEST_REDIS_URL point at servers to use; when unset,
embedded servers start under a temporary folder. Each run creates its own database
(dropped at the end) and its own Redis key prefix (deleted at the end), so two runs
never collide. Each test starts with empty tables and no keys under the prefix.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from private_redis import PrivateRedis

from services.allinone import AllInOne
from services.cli import apply_migrations
from shared import db, embedded, logs
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, Session, SessionStore
from shared.settings import Settings

RUN_ID = secrets.token_hex(4)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(database server URL, redis URL): configured ones, or embedded ones for this run."""
    database_url = os.environ.get("TICA_TEST_DATABASE_URL") or None
    redis_url = os.environ.get("TICA_TEST_REDIS_URL") or None
    if database_url and redis_url:
        yield database_url, redis_url
        return
    folder = Path(tempfile.mkdtemp(prefix="tica-test-"))
    running = embedded.resolve(folder, database_url, redis_url)
    try:
        assert running.database_url and running.redis_url
        yield running.database_url, running.redis_url
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _admin_execute(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database of this run's own, dropped at the end."""
    server_url = servers[0]
    name = f"tica_test_{RUN_ID}"
    await _admin_execute(server_url, f"CREATE DATABASE {name}")
    try:
        yield _with_database(server_url, name)
    finally:
        await _admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"tica-test-{RUN_ID}:"


@pytest.fixture(scope="session")
def settings(
    database_url: str, servers: tuple[str, str], redis_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of the test run (no SMTP: mail goes to the development mailbox)."""
    data_dir = tmp_path_factory.mktemp("data")
    base = Settings.from_env({})
    return base.replace(
        database_url=database_url,
        redis_url=servers[1],
        redis_prefix=redis_prefix,
        secret_key="test-secret-" + "x" * 40,
        data_dir=data_dir,
        base_url="http://testserver",
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated(settings: Settings) -> Settings:
    await apply_migrations(settings)
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(migrated: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert migrated.database_url
    pool = await db.create_pool(migrated.database_url, max_size=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    yield client
    await _delete_prefix(client, settings.redis_prefix)
    await client.aclose()


async def _delete_prefix(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    keys += [key async for key in client.scan_iter(match=f"arq:*:{prefix}*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])


_TABLES_SQL = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname IN ('forum', 'notify', 'search') AND tablename <> 'schema_migrations'
"""


@pytest_asyncio.fixture(loop_scope="session")
async def empty_state(pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings) -> None:
    """Empty every service table and every key under the run's prefix."""
    tables = [row[0] for row in await pool.fetch(_TABLES_SQL)]
    if tables:
        await pool.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    await _delete_prefix(redis, settings.redis_prefix)


@pytest.fixture(autouse=True)
def logging_as_found() -> Iterator[None]:
    """A test that runs a `tica` command in this process configures tica's JSON logging; it ends
    with the test, so servers run by later tests (threads included) do not write log lines into
    the run's output."""
    root = logging.getLogger()
    level = root.level
    yield
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, logs.StderrHandler)]
    root.setLevel(level)


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> None:
    """Every test that touches the database or Redis starts from empty tables and keys."""
    if "pool" in request.fixturenames or "redis" in request.fixturenames:
        request.getfixturevalue("empty_state")


# --- the app in process, clients and members -------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def app(migrated: Settings, pool: asyncpg.Pool, redis) -> AsyncIterator[AllInOne]:
    """The three services behind one ASGI app, lifespans running, no background loops."""
    allinone = AllInOne(migrated, background=False)
    async with allinone.running():
        yield allinone


def _client(app: AllInOne) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", follow_redirects=False
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: AllInOne) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client."""
    async with _client(app) as http:
        yield http


@dataclass
class Member:
    """A signed-in member: their row, session, and a client that sends cookie + CSRF header."""

    id: int
    username: str
    session: Session
    client: httpx.AsyncClient


MemberFactory = Callable[..., Awaitable[Member]]


@pytest_asyncio.fixture(loop_scope="session")
async def member_factory(app: AllInOne, pool: asyncpg.Pool, redis, settings: Settings) -> AsyncIterator[MemberFactory]:
    """Make a verified member (roles and groups as given) with a logged-in client."""
    clients: list[httpx.AsyncClient] = []
    store = SessionStore(redis, settings.redis_prefix)
    counter = 0

    async def make(
        username: str | None = None, *, roles: tuple[str, ...] = ("member",), group_ids: tuple[int, ...] = ()
    ) -> Member:
        nonlocal counter
        counter += 1
        username = username or f"member{counter}"
        user_id = await pool.fetchval(
            "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
            "VALUES ($1, $2, 'no-login', $3, $4, now()) RETURNING id",
            username,
            f"{username}@example.org",
            username.title(),
            list(roles),
        )
        session = await store.create(user_id=user_id, username=username, roles=list(roles), group_ids=list(group_ids))
        http = _client(app)
        http.cookies.set(SESSION_COOKIE, session.id)
        http.cookies.set(CSRF_COOKIE, session.csrf)
        http.headers[CSRF_HEADER] = session.csrf
        clients.append(http)
        return Member(user_id, username, session, http)

    yield make
    for http in clients:
        await http.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def numbered_groups(pool: asyncpg.Pool) -> list[int]:
    """Groups with ids 1 to 10, for tests that name private categories' groups by number."""
    await pool.execute(
        "INSERT INTO forum.groups (id, name, slug, access) OVERRIDING SYSTEM VALUE "
        "SELECT n, 'Group ' || n, 'group-' || n, 'private' FROM generate_series(1, 10) n"
    )
    await pool.execute("SELECT setval(pg_get_serial_sequence('forum.groups', 'id'), 10)")
    return list(range(1, 11))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, started; to kill and start again (tests/private_redis.py)."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
