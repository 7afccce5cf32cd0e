"""Reactions: supportive kinds only, idempotent, counted on the post and topic, with events."""

from __future__ import annotations

import pytest

from shared.events import Envelope


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def topic(admin):
    category = (await admin.client.post("/api/categories", json={"name": "General"})).json()
    response = await admin.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Hello there", "body": "Opening post"}
    )
    return response.json()


async def topic_reactions(pool, topic_id):
    return await pool.fetchval("SELECT reactions_count FROM forum.topics WHERE id = $1", topic_id)


async def test_react_is_idempotent_and_counted(topic, member_factory, pool):
    """201 the first time, 200 after; counts per kind on the post and in total on the topic."""
    sam, priya = await member_factory("sam"), await member_factory("priya")
    url = f"/api/posts/{topic['first_post']['id']}/reactions"
    first = await sam.client.post(url, json={"kind": "hug"})
    assert first.status_code == 201
    assert first.json() == {"reactions": {"hug": 1}, "my_reactions": ["hug"]}
    again = await sam.client.post(url, json={"kind": "hug"})
    assert again.status_code == 200 and again.json()["reactions"] == {"hug": 1}
    await priya.client.post(url, json={"kind": "hug"})
    both = await priya.client.post(url, json={"kind": "lightbulb"})
    assert both.json() == {"reactions": {"hug": 2, "lightbulb": 1}, "my_reactions": ["hug", "lightbulb"]}
    assert await topic_reactions(pool, topic["id"]) == 3
    post = (await sam.client.get(f"/api/posts/{topic['first_post']['id']}")).json()
    assert post["reactions"] == {"hug": 2, "lightbulb": 1} and post["my_reactions"] == ["hug"]


async def test_remove_reaction(topic, member_factory, pool):
    """DELETE takes a reaction back (204), then 404; the kind disappears at zero."""
    sam = await member_factory("sam")
    base = f"/api/posts/{topic['first_post']['id']}/reactions"
    await sam.client.post(base, json={"kind": "clap"})
    assert (await sam.client.delete(f"{base}/clap")).status_code == 204
    assert (await sam.client.delete(f"{base}/clap")).status_code == 404
    assert (await sam.client.delete(f"{base}/frown")).status_code == 404
    post = (await sam.client.get(f"/api/posts/{topic['first_post']['id']}")).json()
    assert post["reactions"] == {} and post["my_reactions"] == []
    assert await topic_reactions(pool, topic["id"]) == 0


async def test_own_post_reaction_allowed(topic, admin):
    """Reacting to your own post is allowed."""
    response = await admin.client.post(f"/api/posts/{topic['first_post']['id']}/reactions", json={"kind": "like"})
    assert response.status_code == 201


@pytest.mark.parametrize("body", [{"kind": "dislike"}, {"kind": "angry"}, {}, {"kind": 1}, {"kind": "like", "x": 1}])
async def test_unknown_kinds_are_422(topic, member_factory, body):
    """Only the supportive kinds exist."""
    sam = await member_factory("sam")
    response = await sam.client.post(f"/api/posts/{topic['first_post']['id']}/reactions", json=body)
    assert response.status_code == 422


async def test_reaction_errors(topic, member_factory, client):
    """401 anonymous, 403 without CSRF, 404 for a missing post or bad id."""
    sam = await member_factory("sam")
    url = f"/api/posts/{topic['first_post']['id']}/reactions"
    assert (await client.post(url, json={"kind": "like"})).status_code == 401
    assert (await client.delete(f"{url}/like")).status_code == 401
    assert (await sam.client.post("/api/posts/99999/reactions", json={"kind": "like"})).status_code == 404
    assert (await sam.client.post("/api/posts/x/reactions", json={"kind": "like"})).status_code == 404
    assert (await sam.client.delete("/api/posts/x/reactions/like")).status_code == 404
    del sam.client.headers["X-CSRF-Token"]
    assert (await sam.client.post(url, json={"kind": "like"})).status_code == 403


async def test_deleted_post_takes_no_reactions(topic, member_factory, pool):
    """A deleted post loses its reactions from the topic total and accepts no new ones."""
    sam = await member_factory("sam")
    reply = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "reply"})).json()
    await sam.client.post(f"/api/posts/{reply['id']}/reactions", json={"kind": "heart"})
    await sam.client.post(f"/api/posts/{topic['first_post']['id']}/reactions", json={"kind": "heart"})
    assert await topic_reactions(pool, topic["id"]) == 2
    await sam.client.delete(f"/api/posts/{reply['id']}")
    assert await topic_reactions(pool, topic["id"]) == 1
    assert (await sam.client.post(f"/api/posts/{reply['id']}/reactions", json={"kind": "hug"})).status_code == 404


async def test_reaction_events(topic, member_factory, pool):
    """ReactionAdded and ReactionRemoved name the post's author and the reacting member, once each."""
    sam = await member_factory("sam")
    url = f"/api/posts/{topic['first_post']['id']}/reactions"
    await sam.client.post(url, json={"kind": "hug"})
    await sam.client.post(url, json={"kind": "hug"})
    await sam.client.delete(f"{url}/hug")
    rows = await pool.fetch("SELECT payload FROM forum.outbox WHERE type LIKE 'reaction.%' ORDER BY id")
    found = [Envelope(**row["payload"]).event() for row in rows]
    assert [e.type for e in found] == ["reaction.added", "reaction.removed"]
    for event in found:
        assert (event.user_id, event.kind, event.audience) == (sam.id, "hug", ["public"])
        assert event.post_author_id == topic["author"]["id"]


async def test_concurrent_reactions_count_correctly(topic, member_factory, pool):
    """Reactions sent at once all count."""
    import asyncio

    members = [await member_factory() for _ in range(6)]
    url = f"/api/posts/{topic['first_post']['id']}/reactions"
    responses = await asyncio.gather(*(m.client.post(url, json={"kind": "heart"}) for m in members))
    assert {r.status_code for r in responses} == {201}
    counts = await pool.fetchval("SELECT reactions FROM forum.posts WHERE id = $1", topic["first_post"]["id"])
    assert counts == {"heart": 6}
    assert await topic_reactions(pool, topic["id"]) == 6
