"""Results never include what the viewer may not see: private categories (by group, for
cookie and API-token viewers), hidden and deleted posts, topics moved to a private
category, and categories that become private."""

from __future__ import annotations

import httpx
import pytest
from search_helpers import found, unique

from shared.sessions import SessionStore, token_digest


@pytest.fixture
async def people(member_factory):
    return {
        "member": await member_factory("plain_member"),
        "insider": await member_factory("insider", group_ids=(3,)),
        "other_group": await member_factory("outsider", group_ids=(4,)),
        "moderator": await member_factory("mod", roles=("member", "moderator")),
    }


async def test_private_category_is_searchable_only_by_its_groups_and_staff(forum, index, search, people, client):
    """A group's category: its members and staff find it; anonymous people and other members do not."""
    word = unique()
    author = await forum.user("writer")
    private = await forum.category("Group room", group_ids=(3,))
    public = await forum.category("Open room")
    topic, post = await forum.topic(private, author, f"Private {word}", f"only for the group {word}")
    _, open_post = await forum.topic(public, author, "Open", f"everyone {word}")
    await index.sync()
    everyone = {("post", open_post)}
    insiders = everyone | {("post", post), ("topic", topic)}
    assert set(found(await search(word))) == everyone
    assert set(found(await search(word, who=people["member"].client))) == everyone
    assert set(found(await search(word, who=people["other_group"].client))) == everyone
    assert set(found(await search(word, who=people["insider"].client))) == insiders
    assert set(found(await search(word, who=people["moderator"].client))) == insiders
    # Filters do not open a way round it.
    assert (await search(f"#group-room {word}"))["items"] == []
    assert [i["title"] for i in (await search("@writer kind:topic"))["items"]] == ["Open"]


async def test_api_token_viewer_gets_their_groups(forum, index, search, redis, settings, app):
    """A personal API token (Bearer) searches with its owner's groups; a bad token is a 401."""
    word = unique()
    author = await forum.user("tokenwriter")
    private = await forum.category("Token room", group_ids=(7,))
    _, post = await forum.topic(private, author, "Token", f"secret {word}")
    await index.sync()
    await SessionStore(redis, settings.redis_prefix).store_token(
        token_digest("tok-123"), user_id=author, username="tokenwriter", roles=["member"], group_ids=[7]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": "Bearer tok-123"},
    ) as bot:
        assert found(await search(word, who=bot)) == [("post", post)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={"Authorization": "Bearer wrong"}
    ) as stranger:
        response = await stranger.get("/api/search", params={"q": word})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_hidden_post_leaves_the_index_and_comes_back_when_restored(forum, index, search, people):
    """Hidden: nobody finds it (not even staff); restored: found again, with its text."""
    word = unique()
    author = await forum.user("hider")
    cat = await forum.category("Hiding")
    topic, _ = await forum.topic(cat, author, "Hide me", "first")
    post = await forum.reply(topic, author, f"a flagged reply {word}")
    await index.sync()
    assert found(await search(word)) == [("post", post)]
    await forum.set_status(post, "hidden")
    await index.sync()
    assert (await search(word))["items"] == []
    assert (await search(word, who=people["moderator"].client))["items"] == []
    await forum.set_status(post, "visible")
    await index.sync()
    assert found(await search(word)) == [("post", post)]


async def test_deleted_post_leaves_the_index_and_its_text_is_gone(forum, index, search, pool, people):
    """Deleted: nobody finds it, and the index no longer holds its text (even after a restore)."""
    word = unique()
    author = await forum.user("deleter")
    cat = await forum.category("Deleting")
    topic, _ = await forum.topic(cat, author, "Delete me", "first")
    post = await forum.reply(topic, author, f"regretted words {word}")
    await index.sync()
    await forum.set_status(post, "deleted")
    await index.sync()
    assert (await search(word, who=people["moderator"].client))["items"] == []
    row = await pool.fetchrow("SELECT status, body FROM search.documents WHERE kind = 'post' AND id = $1", post)
    assert (row["status"], row["body"]) == ("deleted", "")
    await forum.set_status(post, "visible")
    await index.sync()
    assert (await search(word))["items"] == []


async def test_topic_moved_to_a_private_category_takes_its_posts_with_it(forum, index, search, people):
    """Moving a topic into a group's category hides it and its posts from everyone else; moving back shows them."""
    word = unique()
    author = await forum.user("mover")
    public = await forum.category("Public hall")
    private = await forum.category("Quiet room", group_ids=(3,))
    topic, first = await forum.topic(public, author, f"Moving {word}", f"first {word}")
    reply = await forum.reply(topic, author, f"reply {word}")
    await index.sync()
    everything = {("topic", topic), ("post", first), ("post", reply)}
    assert set(found(await search(word))) == everything
    await forum.move_topic(topic, private)
    await index.sync()
    assert (await search(word))["items"] == []
    assert set(found(await search(word, who=people["insider"].client))) == everything
    await forum.move_topic(topic, public, title=f"Moved back {word}")
    await index.sync()
    assert set(found(await search(word))) == everything
    assert {i["title"] for i in (await search(word))["items"]} == {f"Moved back {word}"}


async def test_category_made_private_hides_what_is_in_it(forum, index, search, people):
    """When a category gets groups, everything already in it becomes theirs (and staff's) only."""
    word = unique()
    author = await forum.user("closer")
    cat = await forum.category("Was open")
    topic, post = await forum.topic(cat, author, f"Open then closed {word}", f"body {word}")
    await index.sync()
    assert len((await search(word))["items"]) == 2
    await forum.set_groups(cat, (3,))
    await index.sync()
    assert (await search(word))["items"] == []
    assert set(found(await search(word, who=people["insider"].client))) == {("topic", topic), ("post", post)}
    assert set(found(await search(word, who=people["moderator"].client))) == {("topic", topic), ("post", post)}
