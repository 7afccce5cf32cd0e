"""Results never include what the viewer may not see: private categories (by group, for
cookie and API-token viewers), hidden and deleted posts, topics moved to a private
category, and categories that become private; pseudonymous authors, hidden and deleted topics."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from search_helpers import found, unique

from services.search import indexer
from shared.events import (
    CategoryUpdated,
    Envelope,
    PostCreated,
    PostHidden,
    PostRestored,
    TopicCreated,
    TopicUpdated,
    UserRegistered,
)
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


# --- what moderation adds: pseudonymous posts, hidden and deleted topics ----------------------------------


def _topic_created(topic_id: int, title: str, *, author_id: int, anonymous: bool = False) -> Envelope:
    return Envelope.wrap(
        TopicCreated(
            topic_id=topic_id,
            category_id=1,
            title=title,
            slug="a-topic",
            kind="narrative",
            author_id=author_id,
            author_username="anonymous" if anonymous else "teller",
            audience=["public"],
            content_note=None,
            created_at=datetime.now(UTC).isoformat(),
            anonymous=anonymous,
        ),
        actor_id=None if anonymous else author_id,
    )


def _topic_updated(topic_id: int, title: str, status: str, *, anonymous: bool = False) -> Envelope:
    return Envelope.wrap(
        TopicUpdated(
            topic_id=topic_id,
            category_id=1,
            title=title,
            slug="a-topic",
            kind="narrative",
            author_id=41,
            audience=["public"],
            content_note=None,
            pinned=False,
            closed=False,
            anonymous=anonymous,
            status=status,
        ),
        actor_id=2,
    )


def _post_created(post_id: int, topic_id: int, text: str, *, anonymous: bool = False) -> Envelope:
    return Envelope.wrap(
        PostCreated(
            post_id=post_id,
            topic_id=topic_id,
            post_number=post_id,
            category_id=1,
            topic_title="A topic",
            author_id=41,
            author_username="anonymous" if anonymous else "teller",
            text=text,
            content_note=None,
            audience=["public"],
            reply_to_post_id=None,
            reply_to_user_id=None,
            mentioned_user_ids=[],
            quoted_user_ids=[],
            created_at=datetime.now(UTC).isoformat(),
            anonymous=anonymous,
        ),
        actor_id=None if anonymous else 41,
    )


async def test_pseudonymous_posts_never_show_or_match_their_author(pool, search, people, client):
    """Everyone, staff too, sees "Anonymous member"; @username never finds the post, whatever events come later
    (status changes carry the real author's id) or earlier (a restore handled before the creation)."""
    handler = indexer.Indexer(pool)
    word = unique()
    await handler.handle(
        Envelope.wrap(UserRegistered(user_id=41, username="teller", display_name="Teller"), actor_id=41)
    )
    restored_early = Envelope.wrap(PostRestored(post_id=903, topic_id=90, category_id=1, author_id=41), actor_id=2)
    await handler.handle(restored_early)
    for envelope in (
        _topic_created(90, f"My story {word}", author_id=41, anonymous=True),
        _post_created(901, 90, f"told without my name {word}", anonymous=True),
        _post_created(902, 90, f"signed reply {word}"),
        _post_created(903, 90, f"another unsigned reply {word}", anonymous=True),
        Envelope.wrap(PostHidden(post_id=901, topic_id=90, category_id=1, author_id=41, reason="x"), actor_id=2),
        Envelope.wrap(PostRestored(post_id=901, topic_id=90, category_id=1, author_id=41), actor_id=2),
        _topic_updated(90, f"My story {word}", "visible", anonymous=True),
    ):
        await handler.handle(envelope)
    anonymous = {"id": None, "username": "anonymous", "display_name": "Anonymous member"}
    for who in (client, people["moderator"].client):
        items = {(i["kind"], i["id"]): i["author"] for i in (await search(word, who=who))["items"]}
        assert set(items) == {("topic", 90), ("post", 901), ("post", 902), ("post", 903)}
        assert items[("post", 902)]["username"] == "teller"
        assert all(items[key] == anonymous for key in (("topic", 90), ("post", 901), ("post", 903)))
        assert found(await search(f"@teller {word}", who=who)) == [("post", 902)]
        assert (await search(f"@anonymous {word}", who=who))["items"] == []
    rows = await pool.fetch("SELECT author_id, anonymous FROM search.documents WHERE id IN (90, 901, 903)")
    assert {(r["author_id"], r["anonymous"]) for r in rows} == {(None, True)}
    assert await pool.fetchval("SELECT count(*) FROM search.users WHERE username = 'anonymous'") == 0
    page = await client.get("/search", params={"q": f"My story {word}", "kind": "topic"})
    assert "By Anonymous member" in page.text and "/u/anonymous" not in page.text


async def test_hidden_and_deleted_topics_leave_the_index(pool, search, people):
    """A topic hidden by moderators: its title is found by nobody; shown again: found; deleted: the topic and
    all its posts are gone, text and all."""
    handler = indexer.Indexer(pool)
    word = unique()
    await handler.handle(_topic_created(95, f"Moderated {word}", author_id=41))
    await handler.handle(_post_created(951, 95, f"first {word}"))
    await handler.handle(_post_created(952, 95, f"reply {word}"))
    await handler.handle(_topic_updated(95, f"Moderated {word}", "hidden"))
    assert ("topic", 95) not in found(await search(word, who=people["moderator"].client))
    assert found(await search(word)) == []  # its replies are for staff only while it is hidden
    await handler.handle(
        Envelope.wrap(CategoryUpdated(category_id=1, slug="c", name="C", audience=["public"]), actor_id=2)
    )
    assert found(await search(word)) == []  # a category change does not bring them back
    assert ("post", 952) in found(await search(word, who=people["moderator"].client))
    await handler.handle(_topic_updated(95, f"Moderated {word}", "visible"))
    assert ("topic", 95) in found(await search(word))
    assert ("post", 952) in found(await search(word))
    await handler.handle(_topic_updated(95, f"Moderated {word}", "deleted"))
    assert (await search(word, who=people["moderator"].client))["items"] == []
    rows = await pool.fetch("SELECT kind, status, body FROM search.documents WHERE id IN (95, 951, 952)")
    assert {(r["status"], r["body"]) for r in rows} == {("deleted", "")}
