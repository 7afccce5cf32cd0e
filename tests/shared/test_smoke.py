"""The fixtures give a migrated database and a Redis of the run's own."""


async def test_database_is_migrated(pool):
    """Every service schema has its migrations recorded."""
    names = {
        row["n"]
        for row in await pool.fetch(
            "SELECT 'forum' AS n FROM forum.schema_migrations UNION SELECT 'notify' FROM notify.schema_migrations "
            "UNION SELECT 'search' FROM search.schema_migrations"
        )
    }
    assert names == {"forum", "notify", "search"}


async def test_redis_answers(redis, settings):
    """Redis is reachable and keys live under the run's prefix."""
    await redis.set(settings.redis_prefix + "x", "1")
    assert await redis.get(settings.redis_prefix + "x") == b"1"
