"""The connection pool: a connection given back comes out clean for its next user, though the
pool skips the full session reset (a round trip) on release."""

from __future__ import annotations

import asyncpg
import pytest

from shared import db


@pytest.fixture
async def small_pool(database_url: str):
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    yield pool
    await pool.close()


async def test_a_connection_given_back_inside_a_transaction_is_rolled_back(small_pool: asyncpg.Pool):
    """As after a request cancelled mid-transaction: the next user of the connection starts clean."""
    async with small_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SET LOCAL statement_timeout = '1234ms'")
        await conn.execute("CREATE TEMP TABLE left_behind (id int) ON COMMIT DROP")
        assert conn.is_in_transaction()
    async with small_pool.acquire() as conn:  # the same connection: the pool holds one
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW statement_timeout") == "0"
        assert await conn.fetchval("SELECT to_regclass('left_behind')") is None
        async with conn.transaction():  # and it can start a transaction again
            assert await conn.fetchval("SELECT 1") == 1


async def test_a_connection_given_back_idle_keeps_working(small_pool: asyncpg.Pool):
    for _ in range(3):
        async with small_pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            assert await conn.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}
