"""Demo data: seeded once, quickly, through the real functions (so events flow)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher

from services.forum import demo
from services.forum.library.storage import LocalStorage, storage_for
from shared.events import Envelope


async def test_seed_creates_a_community_once(migrated, pool):
    """The first seed writes people, categories, topics, the library, groups and webinars; the second
    changes nothing. (How long it takes is not asserted here: a busy machine is no defect.)"""
    assert await demo.seed(migrated) is True
    counts = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM forum.users) AS users, (SELECT count(*) FROM forum.categories) AS categories, "
        "(SELECT count(*) FROM forum.topics) AS topics, (SELECT count(*) FROM forum.posts) AS posts, "
        "(SELECT count(*) FROM forum.outbox) AS events, (SELECT count(*) FROM forum.groups) AS groups, "
        "(SELECT count(*) FROM forum.webinars) AS webinars, (SELECT count(*) FROM forum.documents) AS documents"
    )
    assert await demo.seed(migrated) is False
    again = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM forum.users) AS users, (SELECT count(*) FROM forum.categories) AS categories, "
        "(SELECT count(*) FROM forum.topics) AS topics, (SELECT count(*) FROM forum.posts) AS posts, "
        "(SELECT count(*) FROM forum.outbox) AS events, (SELECT count(*) FROM forum.groups) AS groups, "
        "(SELECT count(*) FROM forum.webinars) AS webinars, (SELECT count(*) FROM forum.documents) AS documents"
    )
    assert dict(again) == dict(counts)
    assert counts["users"] == 5 and counts["categories"] == 8 and counts["topics"] >= 12
    assert counts["posts"] > counts["topics"]
    assert counts["groups"] >= 2 and counts["webinars"] == 2 and counts["documents"] >= 5


async def test_concurrent_seeds_write_once(migrated, pool):
    """Two replicas starting together seed once between them."""
    results = await asyncio.gather(demo.seed(migrated), demo.seed(migrated))
    assert sorted(results) == [False, True]
    assert await pool.fetchval("SELECT count(*) FROM forum.categories") == 8


async def test_demo_logins_work_with_their_passwords(migrated, pool):
    """Each listed login exists with its role, a verified email and an argon2 hash of its password."""
    await demo.seed(migrated)
    hasher = PasswordHasher()
    for username, password, role in demo.DEMO_LOGINS:
        row = await pool.fetchrow(
            "SELECT password_hash, roles, email_verified_at FROM forum.users WHERE username = $1", username
        )
        assert row is not None and row["email_verified_at"] is not None
        assert role in row["roles"]
        assert len(password) >= 10 and hasher.verify(row["password_hash"], password)
    assert {role for _, _, role in demo.DEMO_LOGINS} == {"admin", "moderator", "member"}


async def test_demo_content_uses_every_feature(migrated, pool):
    """Kinds, a pinned topic, a content note, quotes, mentions, reactions and a revision are all there."""
    await demo.seed(migrated)
    kinds = {row[0] for row in await pool.fetch("SELECT DISTINCT kind FROM forum.topics")}
    assert kinds == {"discussion", "blog", "case_study", "narrative"}
    assert await pool.fetchval("SELECT count(*) FROM forum.topics WHERE pinned") == 1
    assert await pool.fetchval("SELECT count(*) FROM forum.topics WHERE content_note IS NOT NULL") >= 1
    assert await pool.fetchval("SELECT count(*) FROM forum.posts WHERE cooked LIKE '%<aside class=\"quote\"%'") >= 1
    assert await pool.fetchval("SELECT count(*) FROM forum.posts WHERE cooked LIKE '%class=\"mention\"%'") >= 1
    assert await pool.fetchval("SELECT count(*) FROM forum.reactions") >= 20
    assert await pool.fetchval("SELECT count(*) FROM forum.post_revisions") >= 1
    spread = await pool.fetchval("SELECT max(last_posted_at) - min(created_at) FROM forum.topics")
    assert spread.days >= 7  # activity spread over weeks, not one instant


async def test_demo_events_match_their_definitions(migrated, pool):
    """Every event the seed wrote parses into its type; mentions and quotes name people."""
    await demo.seed(migrated)
    rows = await pool.fetch("SELECT payload FROM forum.outbox ORDER BY id")
    found = [Envelope(**row["payload"]).event() for row in rows]
    types = {event.type for event in found}
    assert {"user.registered", "topic.created", "post.created", "reaction.added", "post.edited"} <= types
    created = [e for e in found if e.type == "post.created"]
    assert any(e.mentioned_user_ids for e in created)
    assert any(e.quoted_user_ids for e in created)


async def test_demo_pages_render(migrated, pool, client):
    """The home page and every demo topic render."""
    await demo.seed(migrated)
    home = await client.get("/")
    assert home.status_code == 200 and "Welcome to tica" in home.text
    for row in await pool.fetch("SELECT id, slug FROM forum.topics"):
        assert (await client.get(f"/t/{row['slug']}/{row['id']}")).status_code == 200
    assert (await client.get("/categories")).status_code == 200


async def test_demo_library_has_folders_and_documents(migrated, pool):
    """The demo seeds the document library: folders, and documents whose files are stored."""
    await demo.seed(migrated)
    assert await pool.fetchval("SELECT count(*) FROM forum.folders") >= 3
    assert await pool.fetchval("SELECT count(*) FROM forum.documents") >= 3


async def test_demo_library_seeds_folders_and_documents(member_factory, pool, settings):
    """seed_library makes folders, a subfolder and small PDF and text documents that download."""
    admin = await member_factory("ada", roles=("admin",))
    async with pool.acquire() as conn, conn.transaction():
        await demo.seed_library(conn, settings, uploader=admin.session)
    tree = (await admin.client.get("/api/folders")).json()["items"]
    assert [f["name"] for f in tree] == [name for name, _, parent in demo.DEMO_FOLDERS if parent is None]
    assert sum(f["documents_count"] for f in tree) == len(demo.demo_documents())
    first = (await admin.client.get(f"/api/folders/{tree[0]['id']}")).json()["documents"][0]
    pdf = await admin.client.get(first["download_url"])
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert isinstance(storage_for(settings), LocalStorage)
