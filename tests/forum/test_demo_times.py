"""The demo's activity is spread over weeks, and every service learns the same times: its events
carry the times of the rows they are about, not the instant the demo was seeded."""

from __future__ import annotations

from datetime import datetime

from services.forum import demo
from services.forum.outbox import OUTBOX
from services.notify import writer
from services.search import indexer
from shared.events import Consumer, Envelope, Relay, stream_name

FORUM_TIMES_SQL = """
SELECT 'topic' AS kind, id, created_at FROM forum.topics
UNION ALL SELECT 'post', id, created_at FROM forum.posts
"""


async def _deliver(pool, redis, settings, consumer: Consumer) -> None:
    """The real event path: outbox -> relay -> stream -> a consumer group, until nothing is left."""
    await consumer.ensure_group()
    await Relay(pool, redis, stream_name(settings.redis_prefix), OUTBOX).publish_all()
    while await consumer.read_once() > 0:
        pass


async def test_demo_events_carry_the_times_of_their_rows(migrated, pool):
    """topic.created and post.created say when the topic or post was written, as the forum's rows do."""
    await demo.seed(migrated)
    forum = {(row["kind"], row["id"]): row["created_at"] for row in await pool.fetch(FORUM_TIMES_SQL)}
    checked = 0
    for row in await pool.fetch("SELECT payload FROM forum.outbox WHERE type IN ('topic.created', 'post.created')"):
        envelope = Envelope(**row["payload"])
        event = envelope.event()
        key = ("topic", event.topic_id) if envelope.type == "topic.created" else ("post", event.post_id)
        assert datetime.fromisoformat(event.created_at) == forum[key]
        assert datetime.fromisoformat(envelope.occurred_at) == forum[key]
        checked += 1
    assert checked == len(forum)
    joined = await pool.fetchval("SELECT min(created_at) FROM forum.users")
    oldest = await pool.fetchval("SELECT min((payload->>'occurred_at')::timestamptz) FROM forum.outbox")
    assert oldest == joined  # the first member joining is the first thing that happened


async def test_demo_search_results_show_when_topics_were_written(migrated, pool, redis, app, client):
    """After the events reach search, a demo topic's result carries the topic's own created_at."""
    await demo.seed(migrated)
    await _deliver(pool, redis, migrated, indexer.indexer_consumer(pool, redis, migrated.redis_prefix, "demo-test"))
    topic = await pool.fetchrow(
        "SELECT id, created_at FROM forum.topics WHERE title = 'Paying experts by experience fairly'"
    )
    body = (await client.get("/api/search", params={"q": "paying experts fairly"})).json()
    found = {(item["kind"], item["id"]): item for item in body["items"]}
    assert datetime.fromisoformat(found[("topic", topic["id"])]["created_at"]) == topic["created_at"]
    dates = {
        item["created_at"][:10] for item in (await client.get("/api/search", params={"q": "trauma"})).json()["items"]
    }
    assert len(dates) > 1  # not one seeding day for every result


async def test_demo_times_reach_notify(migrated, pool, redis, app):
    """notify's projections (what digests are made from) hold the forum's times for topics, posts and members."""
    await demo.seed(migrated)
    rt = app.apps["notify"].state.runtime
    await _deliver(pool, redis, migrated, writer.consumer(rt, name="demo-test"))
    different = await pool.fetchval(
        "SELECT count(*) FROM forum.topics f JOIN notify.topics n USING (id) WHERE f.created_at <> n.created_at"
    )
    assert different == 0 and await pool.fetchval("SELECT count(*) FROM notify.topics") > 0
    different = await pool.fetchval(
        "SELECT count(*) FROM forum.posts f JOIN notify.posts n USING (id) WHERE f.created_at <> n.created_at"
    )
    assert different == 0 and await pool.fetchval("SELECT count(*) FROM notify.posts") > 0
    different = await pool.fetchval(
        "SELECT count(*) FROM forum.users f JOIN notify.users n USING (id) WHERE f.created_at <> n.registered_at"
    )
    assert different == 0 and await pool.fetchval("SELECT count(*) FROM notify.users") == len(demo.DEMO_LOGINS)


async def test_seeding_beside_existing_content_moves_only_the_demos_rows(migrated, pool, member_factory):
    """`tica seed-demo` on a forum in use: what was there keeps its times, and its events too."""
    admin = await member_factory("organiser", roles=("member", "admin"))
    made = await admin.client.post("/api/categories", json={"name": "Our own category"})
    assert made.status_code == 201, made.text
    folder = await admin.client.post("/api/folders", json={"name": "Our own folder"})
    assert folder.status_code == 201, folder.text
    before = await pool.fetch("SELECT id, payload FROM forum.outbox ORDER BY id")
    times = await pool.fetchrow(
        "SELECT (SELECT created_at FROM forum.categories) AS category, (SELECT created_at FROM forum.folders) AS folder"
    )
    await demo.seed(migrated)
    assert dict(
        await pool.fetchrow(
            "SELECT (SELECT created_at FROM forum.categories WHERE id = $1) AS category, "
            "(SELECT created_at FROM forum.folders WHERE id = $2) AS folder",
            made.json()["id"],
            folder.json()["id"],
        )
    ) == dict(times)
    after = await pool.fetch("SELECT id, payload FROM forum.outbox WHERE id <= $1 ORDER BY id", before[-1]["id"])
    assert [dict(r) for r in after] == [dict(r) for r in before]
