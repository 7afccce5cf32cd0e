"""Demo data: a small community to look around in on first start."""

from __future__ import annotations

from shared import db
from shared.settings import Settings

SEEDED_KEY = "demo_seeded"
DEMO_LOGINS: list[tuple[str, str, str]] = []


async def seed(settings: Settings, *, force: bool = False) -> bool:
    """Seed the demo community once; returns False when it was already seeded."""
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    try:
        async with conn.transaction():
            seeded = await conn.fetchval("SELECT value FROM forum.meta WHERE key = $1 FOR UPDATE", SEEDED_KEY)
            if seeded is not None:
                return False
            await conn.execute("INSERT INTO forum.meta (key, value) VALUES ($1, 'true'::jsonb)", SEEDED_KEY)
        return True
    finally:
        await conn.close()
