"""Demo data: a small community to look around in on first start.

Everything is written through the same functions the API uses (accounts, categories, topics,
posts, reactions, the library, groups, webinars), in one transaction, so the events flow as
for real activity; then it is spread over the past months, events included (times.py). A
marker row in forum.meta makes seeding happen once, even with several replicas starting.

content.py: the people and conversations; discussions.py: writing them; library.py: folders
and documents; community.py: groups and webinars.
"""

from __future__ import annotations

import asyncpg

from services.forum.demo.community import seed_community
from services.forum.demo.content import DEMO_LOGINS
from services.forum.demo.discussions import create_people, seed_discussions
from services.forum.demo.library import DEMO_FOLDERS, demo_documents, seed_library, tiny_pdf
from services.forum.demo.times import align_event_times, last_event_id
from shared import db
from shared.settings import Settings

__all__ = ["DEMO_FOLDERS", "DEMO_LOGINS", "demo_documents", "seed", "seed_demo", "seed_library", "tiny_pdf"]

SEEDED_KEY = "demo_seeded"


async def seed_demo(conn: asyncpg.Connection, settings: Settings) -> None:
    """Write the demo community (people, discussions, library, groups and webinars) in the caller's
    transaction, at the times it happened."""
    since_id = await last_event_id(conn)
    people = await create_people(conn)
    await seed_discussions(conn, people)
    document_ids = await seed_library(conn, settings, uploader=people["ada"])
    await seed_community(conn, people, document_ids)
    await align_event_times(conn, since_id)


async def seed(settings: Settings, *, force: bool = False) -> bool:
    """Seed the demo community once; returns False when it was already seeded.

    The marker is always respected, `force` (from `tica seed-demo`) included: seeding twice
    never duplicates anything.
    """
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    try:
        async with conn.transaction():
            # A second replica waits here for the first one's transaction, then finds the marker.
            marked = await conn.fetchval(
                "INSERT INTO forum.meta (key, value) VALUES ($1, 'true'::jsonb) ON CONFLICT (key) DO NOTHING "
                "RETURNING key",
                SEEDED_KEY,
            )
            if marked is None:
                return False
            await seed_demo(conn, settings)
        return True
    finally:
        await conn.close()
