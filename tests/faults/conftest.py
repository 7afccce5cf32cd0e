"""Fixtures of the fault test: a database and a Redis of its own, tica's processes, a small community.

The database is created on the test PostgreSQL server (TICA_TEST_DATABASE_URL, or the embedded
one tests/conftest.py starts) and dropped at the end. Redis is never the shared one: the test
stops and starts its Redis, so it runs a redis-server of its own on a free port. Mail goes to a
real SMTP server (aiosmtpd) in the test process. Everything lives in one temporary folder,
removed at the end with every process stopped, also when a test fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from notify_helpers import MailSink, smtp_server

from faults.cluster import ROOT, Cluster, RedisServer, service, worker
from faults.community import Community, seed
from services.cli import apply_migrations
from shared.settings import Settings

SECRET_KEY = "fault-secret-" + "x" * 40
# How long an event may wait, unacknowledged by a consumer that died, before another takes it over.
RECLAIM_IDLE_S = 5


@pytest.fixture(scope="module")
def fault_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="tica-faults-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fault_database(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database of the fault run's own on the test server, migrated, dropped at the end."""
    server_url = servers[0]
    name = f"tica_faults_{secrets.token_hex(4)}"
    await _admin(server_url, f"CREATE DATABASE {name}")
    try:
        url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
        await apply_migrations(Settings.from_env({}).replace(database_url=url))
        yield url
    finally:
        await _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[MailSink, int]]:
    with smtp_server() as running:
        yield running


def environment(database_url: str, redis_url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    """What every process of the run reads: this run's servers, and no posting limits in the way."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TICA_") and key not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "PORT", "DATA_DIR")
    }
    return {
        **inherited,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the virtualenv points at
        "TICA_SECRET_KEY": SECRET_KEY,
        "TICA_LOG_LEVEL": "INFO",  # the access log lines
        "TICA_RECLAIM_IDLE_S": str(RECLAIM_IDLE_S),
        "TICA_POSTS_PER_MINUTE": "100000",
        "TICA_NEW_MEMBER_POSTS_PER_MINUTE": "100000",
        "TICA_NEW_MEMBER_DAYS": "0",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(fault_folder: Path, fault_database: str, smtp: tuple[MailSink, int]) -> AsyncIterator[Cluster]:
    """Redis, `tica serve forum|notify|search` and `tica worker`, each its own process, all ready."""
    redis = RedisServer(fault_folder / "redis")
    env = environment(fault_database, redis.url, smtp[1], fault_folder / "data")
    logs = fault_folder / "logs"
    logs.mkdir()
    running = Cluster(
        redis,
        service("forum", env, logs),
        service("notify", env, logs),
        service("search", env, logs),
        worker(env, logs),
    )
    try:
        redis.spawn()
        await redis.wait_answering()
        for process in running.processes:
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in running.services))
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def community(cluster: Cluster, fault_database: str) -> Community:
    """Members, a category and a watched topic, made through the APIs of the running processes."""
    return await seed(cluster, fault_database)
