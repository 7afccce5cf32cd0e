"""The indexer: each event applied once, late or repeated events never undo newer ones,
only the search-indexer group writes the index, and its freshness on /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
from search_helpers import found, unique

from services import allinone
from services.search import indexer
from shared.events import (
    STREAM_FIELD,
    Envelope,
    PostCreated,
    PostEdited,
    PostHidden,
    ReactionAdded,
    TopicCreated,
    TopicRead,
    TopicUpdated,
    stream_name,
)
from shared.web import Runtime


def post_created(post_id: int, text: str, *, topic_id: int = 1, audience: list[str] | None = None) -> Envelope:
    return Envelope.wrap(
        PostCreated(
            post_id=post_id,
            topic_id=topic_id,
            post_number=post_id,
            category_id=1,
            topic_title="A topic",
            author_id=1,
            author_username="someone",
            text=text,
            content_note=None,
            audience=audience or ["public"],
            reply_to_post_id=None,
            reply_to_user_id=None,
            mentioned_user_ids=[],
            quoted_user_ids=[],
            created_at=datetime.now(UTC).isoformat(),
        ),
        actor_id=1,
    )


def post_edited(post_id: int, text: str) -> Envelope:
    return Envelope.wrap(
        PostEdited(
            post_id=post_id,
            topic_id=1,
            post_number=post_id,
            category_id=1,
            author_id=1,
            author_username="someone",
            text=text,
            content_note=None,
            audience=["public"],
            revision=2,
        ),
        actor_id=1,
    )


async def document(pool, post_id: int):
    return await pool.fetchrow("SELECT * FROM search.documents WHERE kind = 'post' AND id = $1", post_id)


async def test_an_event_handled_twice_changes_nothing(pool, search, app):
    """The same envelope handled twice: one application, the row identical to the byte."""
    handler = indexer.Indexer(pool)
    word = unique()
    envelope = post_created(501, f"once only {word}")
    await handler.handle(envelope)
    first = await document(pool, 501)
    await handler.handle(envelope)
    assert await document(pool, 501) == first
    assert await pool.fetchval("SELECT count(*) FROM search.applied_events") == 1
    assert found(await search(word)) == [("post", 501)]


async def test_an_entry_delivered_twice_on_the_stream_is_applied_once(pool, redis, settings, index, search):
    """Two stream entries carrying one event (a relay retried after a crash): indexed once."""
    word = unique()
    envelope = post_created(502, f"published twice {word}")
    stream = stream_name(settings.redis_prefix)
    for _ in range(2):
        await redis.xadd(stream, {STREAM_FIELD: envelope.to_json()})
    assert await index.sync() == 2
    assert await pool.fetchval("SELECT count(*) FROM search.applied_events WHERE event_id = $1", envelope.id) == 1
    assert found(await search(word)) == [("post", 502)]


async def test_a_late_older_event_never_undoes_a_newer_one(pool, search):
    """An edit, then the creation again (redelivered after its id was forgotten): the edit stays."""
    handler = indexer.Indexer(pool)
    created = post_created(503, "first draft words")
    edited = post_edited(503, "second version words")
    await handler.handle(created)
    await handler.handle(edited)
    await pool.execute("DELETE FROM search.applied_events")  # as if pruned long ago
    await handler.handle(created)
    assert (await document(pool, 503))["body"] == "second version words"
    assert (await search("draft"))["items"] == []


async def test_events_out_of_order_end_in_the_right_state(pool, search):
    """Hidden before created (two replicas racing): the post stays hidden once created arrives."""
    handler = indexer.Indexer(pool)
    word = unique()
    created = post_created(504, f"raced {word}")
    hidden = Envelope.wrap(PostHidden(post_id=504, topic_id=1, category_id=1, author_id=1, reason="x"), actor_id=2)
    await handler.handle(hidden)
    await handler.handle(created)
    row = await document(pool, 504)
    assert row["status"] == "hidden" and row["body"] == f"raced {word}"
    assert (await search(word))["items"] == []


async def test_a_late_post_follows_its_topic_into_a_private_category(pool, search):
    """A topic moved to a group's category before its reply's (older) event is handled: the reply is private."""
    handler = indexer.Indexer(pool)
    word = unique()
    topic = TopicCreated(
        topic_id=9,
        category_id=1,
        title="Moving",
        slug="moving",
        kind="discussion",
        author_id=1,
        author_username="someone",
        audience=["public"],
        content_note=None,
        created_at=datetime.now(UTC).isoformat(),
    )
    await handler.handle(Envelope.wrap(topic, actor_id=1))
    reply = post_created(505, f"late reply {word}", topic_id=9)  # drawn before the move
    moved = Envelope.wrap(
        TopicUpdated(
            topic_id=9,
            category_id=2,
            title="Moving",
            slug="moving",
            kind="discussion",
            author_id=1,
            audience=["group:3"],
            content_note=None,
            pinned=False,
            closed=False,
        ),
        actor_id=1,
    )
    await handler.handle(moved)
    await handler.handle(reply)
    row = await document(pool, 505)
    assert (row["audience"], row["category_id"]) == (["group:3"], 2)
    assert (await search(word))["items"] == []


async def test_events_search_does_not_use_are_ignored(pool):
    """reaction.added and friends (topic.read: how far a member read) leave no trace in the index."""
    handler = indexer.Indexer(pool)
    await handler.handle(
        Envelope.wrap(
            ReactionAdded(post_id=1, topic_id=1, post_author_id=1, user_id=2, kind="like", audience=["public"]),
            actor_id=2,
        )
    )
    await handler.handle(
        Envelope.wrap(TopicRead(user_id=2, topic_id=1, post_number=3, audience=["user:2"]), actor_id=2)
    )
    assert await pool.fetchval("SELECT count(*) FROM search.applied_events") == 0


async def test_the_background_indexer_keeps_the_index_fresh(forum, app, search, index):
    """The search service's own background task (what create_app(background=True) runs) indexes new posts."""
    rt: Runtime = app.apps["search"].state.runtime
    stop = asyncio.Event()
    task = asyncio.create_task(indexer.run_indexer(rt, stop))
    try:
        word = unique()
        author = await forum.user("live")
        cat = await forum.category("Live")
        _, post = await forum.topic(cat, author, "Live", f"fresh {word}")
        await index.relay.publish_all()
        deadline = time.monotonic() + 10
        while not (await search(word))["items"]:
            assert time.monotonic() < deadline, "the background indexer did not index the post"
            await asyncio.sleep(0.05)
        assert found(await search(word)) == [("post", post)]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        rt.extras.pop("indexer", None)


async def test_freshness_on_readyz_and_metrics(forum, index, app, pool):
    """The search service's /readyz detail and /metrics show the group's lag and the newest event's age."""
    search_app = app.apps["search"]
    rt: Runtime = search_app.state.runtime
    author = await forum.user("fresh")
    cat = await forum.category("Fresh")
    await forum.topic(cat, author, "Fresh", "news")
    await index.relay.publish_all()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=search_app), base_url="http://testserver") as http:
        behind = (await http.get("/readyz")).json()["detail"]["index"]
        assert behind["lag_events"] == 4 and behind["group"] == "search-indexer"
        assert behind["rebuild"]["state"] == "idle"
        await index.sync()
        rt.extras["indexer"] = index.consumer
        try:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            detail = ready.json()["detail"]["index"]
            assert detail["lag_events"] == 0 and detail["pending_events"] == 0
            assert 0 <= detail["last_event_age_seconds"] < 60
            metrics = await http.get("/metrics")
        finally:
            rt.extras.pop("indexer", None)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = dict(line.rsplit(" ", 1) for line in metrics.text.splitlines() if not line.startswith("#"))
    assert lines["tica_search_index_lag_events"] == "0"
    assert 0 <= float(lines["tica_search_index_last_event_age_seconds"]) < 60
    assert lines["tica_search_rebuild_in_progress"] == "0"
    assert "# TYPE tica_search_index_lag_events gauge" in metrics.text


async def test_lag_is_counted_on_redis_without_a_lag_field(redis, settings, index, forum, monkeypatch):
    """Redis 6.2 (the embedded one) has no lag in XINFO GROUPS: it is counted from the stream instead."""
    author = await forum.user("counted")
    await forum.category("Counted")
    await index.relay.publish_all()
    stream = stream_name(settings.redis_prefix)
    counted = await indexer.stream_lag(redis, stream, indexer.GROUP)
    assert counted["lag"] == 2 and author
    original = indexer.group_lag

    async def without_lag(*args):
        return {**(await original(*args)), "lag": None}

    monkeypatch.setattr(indexer, "group_lag", without_lag)
    assert (await indexer.stream_lag(redis, stream, indexer.GROUP))["lag"] == 2


async def test_a_bad_event_in_a_batch_does_not_hold_back_the_others(pool, redis, settings, index, search):
    """One read of three events, the middle one failing: the other two apply; the bad one stays pending."""
    word = unique()
    stream = stream_name(settings.redis_prefix)
    good = [post_created(601, f"first {word}"), post_created(603, f"third {word}")]
    broken = post_created(602, f"second {word}")
    broken = Envelope(
        broken.id,
        broken.type,
        broken.version,
        broken.occurred_at,
        broken.actor_id,
        {**broken.data, "created_at": "not a time"},
    )
    for envelope in (good[0], broken, good[1]):
        await redis.xadd(stream, {STREAM_FIELD: envelope.to_json()})
    assert await index.consumer.read_once() == 3
    assert set(found(await search(word))) == {("post", 601), ("post", 603)}
    assert await pool.fetchval("SELECT count(*) FROM search.applied_events") == 2
    pending = await redis.xpending(stream, indexer.GROUP)
    assert pending["pending"] == 1


async def test_metrics_reach_search_in_the_all_in_one_run(client):
    """/metrics on the one port of `tica run` is the search index's freshness (the forum has none)."""
    assert allinone.service_for("/metrics") == "search"
    assert allinone.service_for("/metricsfoo") == "forum"
    response = await client.get("/metrics")
    assert response.status_code == 200 and "tica_search_index_lag_events" in response.text
