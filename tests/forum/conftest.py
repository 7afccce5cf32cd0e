"""Fixtures for the forum: the all-in-one app in process, clients, members."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest_asyncio

from services.allinone import AllInOne
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, Session, SessionStore
from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def app(migrated: Settings, pool: asyncpg.Pool, redis) -> AsyncIterator[AllInOne]:
    """The three services behind one ASGI app, lifespans running, no background loops."""
    allinone = AllInOne(migrated, background=False)
    async with allinone.running():
        yield allinone


def _client(app: AllInOne) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                             follow_redirects=False)


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
async def member_factory(app: AllInOne, pool: asyncpg.Pool, redis, settings: Settings
                         ) -> AsyncIterator[MemberFactory]:
    """Make a verified member (roles and groups as given) with a logged-in client."""
    clients: list[httpx.AsyncClient] = []
    store = SessionStore(redis, settings.redis_prefix)
    counter = 0

    async def make(username: str | None = None, *, roles: tuple[str, ...] = ("member",),
                   group_ids: tuple[int, ...] = ()) -> Member:
        nonlocal counter
        counter += 1
        username = username or f"member{counter}"
        user_id = await pool.fetchval(
            "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
            "VALUES ($1, $2, 'no-login', $3, $4, now()) RETURNING id",
            username, f"{username}@example.org", username.title(), list(roles),
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
