"""Schemathesis over /api/openapi.json: the three services, under real uvicorn against the test
PostgreSQL and Redis with the demo community in them, get generated requests (valid ones and
ones that break the document) anonymously and as a member with an API token. No answer may be a
server error, and every answer must be one the document describes: its status, content type and
JSON shape; the server must refuse what the document forbids and take what it allows.

Bounded: a few examples an operation, deterministic (the same requests every run).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as aioredis
import schemathesis
import uvicorn
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from services import openapi
from services.allinone import AllInOne
from services.forum import demo
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore
from shared.settings import Settings

MAX_EXAMPLES = 8
# What a valid request may still get: a thing that is not there (404), a rule about the data
# the document cannot say (409, 422: a title too short once trimmed, a date in the past), a
# permission (401, 403) or a rate limit (429).
ACCEPTED_VALID = {401, 403, 404, 409, 422, 429}


TABLES_SQL = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname IN ('forum', 'notify', 'search') AND tablename <> 'schema_migrations'
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """The product under uvicorn, and a member's API token for it."""

    base_url: str
    token: str


async def _community(settings: Settings) -> int:
    """Empty tables, then the demo community and an ordinary member; the member's id."""
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        tables = [row[0] for row in await conn.fetch(TABLES_SQL)]
        await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        await demo.seed(settings)
        user_id: int = await conn.fetchval(
            "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
            "VALUES ('schemamember', 'schemamember@example.org', 'no-login', 'Schema Member', '{member}', now()) "
            "RETURNING id"
        )
    finally:
        await conn.close()
    return user_id


async def _token(settings: Settings, base_url: str, user_id: int) -> str:
    """A personal API token, asked for as the member would (a session, then POST /api/me/tokens)."""
    assert settings.redis_url
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = SessionStore(redis, settings.redis_prefix)
        session = await store.create(user_id=user_id, username="schemamember", roles=["member"], group_ids=[])
    finally:
        await redis.aclose()
    cookies = {SESSION_COOKIE: session.id, CSRF_COOKIE: session.csrf}
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies) as http:
        response = await http.post("/api/me/tokens", json={"name": "schemathesis"}, headers={CSRF_HEADER: session.csrf})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(migrated: Settings) -> AsyncIterator[Served]:
    """The three services under uvicorn, in a thread with an event loop of its own (schemathesis
    calls synchronously, so the server cannot share the tests' loop), over the demo community.

    It asks for neither `pool` nor `redis`, so the suite does not empty the tables between the
    operations tested here."""
    user_id = await _community(migrated)
    port = _free_port()
    app = AllInOne(migrated.replace(port=port), background=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    base_url = f"http://127.0.0.1:{port}"
    try:
        yield Served(base_url, await _token(migrated, base_url, user_id))
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)


DOCUMENT = openapi.document()


def _accepted_valid(case: schemathesis.Case) -> set[int]:
    """What a valid request to this operation may get: ACCEPTED_VALID and the refusals its document
    names (400 `invalid_token` for a link no mail carried, 415 for a file of another type...)."""
    operation = DOCUMENT["paths"][case.operation.path][case.method.lower()]
    named = {int(status) for status in operation["responses"] if status.isdigit() and int(status) >= 400}
    return set(range(200, 300)) | ACCEPTED_VALID | named


def _call(case: schemathesis.Case, served: Served, headers: dict[str, str] | None = None) -> None:
    """Send the case and run every check; schemathesis's own check of valid requests would take
    only one list of statuses for all operations, so that one is made here, per operation."""
    response = case.call_and_validate(
        base_url=served.base_url, headers=headers, excluded_checks=[checks.positive_data_acceptance]
    )
    if case.meta is not None and case.meta.generation.mode.is_positive:
        assert response.status_code in _accepted_valid(case), f"a valid request was refused: {response.text[:300]}"


def _schema(*, with_auth_parameters: bool) -> schemathesis.BaseSchema:
    generation = {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all", "database": "none"}
    config = {
        "generation": {**generation, "with-security-parameters": with_auth_parameters},
    }
    return schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(config))


# Anonymously, schemathesis also makes up cookies and tokens (to see them refused); the member's
# requests carry the member's own token, which schemathesis takes away to see each refused.
anonymous_schema = _schema(with_auth_parameters=True)
member_schema = _schema(with_auth_parameters=False)


@anonymous_schema.parametrize()
def test_api_anonymously(case: schemathesis.Case, served: Served) -> None:
    """Every operation, as a visitor: no server error, every answer as documented."""
    _call(case, served)


@member_schema.parametrize()
def test_api_as_a_member(case: schemathesis.Case, served: Served) -> None:
    """Every operation, as a member with an API token: no server error, every answer as documented."""
    _call(case, served, {"Authorization": f"Bearer {served.token}"})


def test_the_server_serves_the_document_tested(served: Served) -> None:
    """The document tested here is the one the forum serves."""
    assert httpx.get(f"{served.base_url}/api/openapi.json").json() == json.loads(json.dumps(DOCUMENT))
