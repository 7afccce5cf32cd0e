"""Posts API: editing with kept revisions, the revision list, deleting, and their events."""

from __future__ import annotations

import pytest

from shared.events import Envelope


async def events(pool, type_):
    rows = await pool.fetch("SELECT payload FROM forum.outbox WHERE type = $1 ORDER BY id", type_)
    return [Envelope(**row["payload"]).event() for row in rows]


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def topic(admin):
    category = (await admin.client.post("/api/categories", json={"name": "General"})).json()
    response = await admin.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Hello there", "body": "Opening post"}
    )
    assert response.status_code == 201
    return response.json()


@pytest.fixture
async def sam(member_factory):
    return await member_factory("sam")


async def reply(member, topic, body="My reply", **extra):
    response = await member.client.post(f"/api/topics/{topic['id']}/posts", json={"body": body, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_get_post(topic, client, sam):
    """GET /api/posts/{id} answers the post; can_edit only for its author."""
    post = await reply(sam, topic)
    anonymous = (await client.get(f"/api/posts/{post['id']}")).json()
    assert anonymous["raw"] == "My reply" and anonymous["can_edit"] is False
    assert (await sam.client.get(f"/api/posts/{post['id']}")).json()["can_edit"] is True
    assert (await client.get("/api/posts/0")).status_code == 404
    assert (await client.get("/api/posts/x")).status_code == 404


async def test_author_edits_and_revision_is_kept(topic, sam, pool):
    """An edit keeps the previous version with who, when and why, and records PostEdited."""
    post = await reply(sam, topic, "First words")
    response = await sam.client.patch(
        f"/api/posts/{post['id']}", json={"body": "Better **words**", "edit_reason": "clearer"}
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["raw"] == "Better **words**" and edited["cooked"] == "<p>Better <strong>words</strong></p>"
    assert edited["revision"] == 2
    assert await pool.fetchval("SELECT plain FROM forum.posts WHERE id = $1", post["id"]) == "Better words"
    stored = await pool.fetchrow("SELECT revision, raw, editor_id, reason FROM forum.post_revisions")
    assert dict(stored) == {"revision": 1, "raw": "First words", "editor_id": sam.id, "reason": "clearer"}
    [event] = await events(pool, "post.edited")
    assert (event.post_id, event.revision, event.text, event.author_username) == (post["id"], 2, "Better words", "sam")


async def test_revisions_list_every_version(topic, sam, admin, client):
    """Revisions: every version oldest first, the current last, each with who made it and why."""
    post = await reply(sam, topic, "v1")
    await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "v2", "edit_reason": "typo"})
    await admin.client.patch(
        f"/api/posts/{post['id']}", json={"body": "v3", "content_note": "grief", "edit_reason": "added a note"}
    )
    response = await client.get(f"/api/posts/{post['id']}/revisions")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["revision"], i["raw"], i["content_note"], i["editor"]["username"], i["reason"]) for i in items] == [
        (1, "v1", None, "sam", None),
        (2, "v2", None, "sam", "typo"),
        (3, "v3", "grief", "ada", "added a note"),
    ]
    assert all(i["created_at"] for i in items)


async def test_edit_without_change_makes_no_revision(topic, sam, pool):
    """Saving the same text changes nothing."""
    post = await reply(sam, topic, "Same")
    response = await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "Same"})
    assert response.status_code == 200 and response.json()["revision"] == 1
    assert await pool.fetchval("SELECT count(*) FROM forum.post_revisions") == 0


async def test_content_note_kept_changed_or_removed(topic, sam):
    """Absent: the note stays; a new one replaces it; empty or null removes it."""
    post = await reply(sam, topic, "Body", content_note="loss")
    url = f"/api/posts/{post['id']}"
    assert (await sam.client.patch(url, json={"body": "Body 2"})).json()["content_note"] == "loss"
    assert (await sam.client.patch(url, json={"body": "Body 2", "content_note": "bereavement"})).json()[
        "content_note"
    ] == "bereavement"
    assert (await sam.client.patch(url, json={"body": "Body 2", "content_note": ""})).json()["content_note"] is None
    assert (await sam.client.patch(url, json={"body": "Body 3", "content_note": None})).json()["content_note"] is None


async def test_first_post_note_follows_to_topic(topic, admin, client, pool):
    """A content note added to the first post is shown on the topic too, with TopicUpdated."""
    url = f"/api/posts/{topic['first_post']['id']}"
    assert (await admin.client.patch(url, json={"body": "Opening post", "content_note": "abuse"})).status_code == 200
    assert (await client.get(f"/api/topics/{topic['id']}")).json()["content_note"] == "abuse"
    [event] = await events(pool, "topic.updated")
    assert event.content_note == "abuse"


async def test_edit_errors(topic, sam, member_factory, client, pool):
    """401 anonymous, 403 someone else's post or no CSRF, 404 missing, 422 bad body, 403 silenced author."""
    post = await reply(sam, topic)
    url = f"/api/posts/{post['id']}"
    other = await member_factory()
    assert (await client.patch(url, json={"body": "x"})).status_code == 401
    assert (await other.client.patch(url, json={"body": "x"})).status_code == 403
    assert (await sam.client.patch("/api/posts/999999", json={"body": "x"})).status_code == 404
    assert (await sam.client.patch("/api/posts/abc", json={"body": "x"})).status_code == 404
    assert (await sam.client.patch(url, json={"body": ""})).status_code == 422
    assert (await sam.client.patch(url, json={})).status_code == 422
    assert (await sam.client.patch(url, json={"body": "x", "edit_reason": "r" * 201})).status_code == 422
    assert (await sam.client.patch(url, content=b"[")).status_code == 400
    token = sam.client.headers.pop("X-CSRF-Token")
    assert (await sam.client.patch(url, json={"body": "x"})).status_code == 403
    sam.client.headers["X-CSRF-Token"] = token
    await pool.execute("UPDATE forum.users SET silenced_until = now() + interval '1 day' WHERE id = $1", sam.id)
    assert (await sam.client.patch(url, json={"body": "x"})).json()["error"]["code"] == "silenced"


async def test_staff_edit_others_posts(topic, sam, member_factory):
    """Moderators may edit anyone's post, giving a reason its author sees (422 without one)."""
    moderator = await member_factory(roles=("moderator",))
    post = await reply(sam, topic)
    response = await moderator.client.patch(f"/api/posts/{post['id']}", json={"body": "Edited by a moderator"})
    assert response.status_code == 422 and "edit_reason" in response.json()["error"]["fields"]
    response = await moderator.client.patch(
        f"/api/posts/{post['id']}", json={"body": "Edited by a moderator", "edit_reason": "removed a phone number"}
    )
    assert response.status_code == 200


async def test_delete_post(topic, sam, client, pool):
    """Deleting empties the text everywhere, keeps a placeholder and decrements the count."""
    post = await reply(sam, topic, "Something I regret")
    await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "Something I regret, edited"})
    response = await sam.client.delete(f"/api/posts/{post['id']}")
    assert response.status_code == 204
    row = await pool.fetchrow("SELECT raw, cooked, plain, status FROM forum.posts WHERE id = $1", post["id"])
    assert dict(row) == {"raw": "", "cooked": "", "plain": "", "status": "deleted"}
    shown = (await client.get(f"/api/topics/{topic['id']}")).json()
    assert shown["posts_count"] == 1
    placeholder = shown["posts"][1]
    assert (placeholder["raw"], placeholder["cooked"], placeholder["status"]) == ("", "", "deleted")
    assert "regret" not in (await client.get(f"/api/topics/{topic['id']}")).text
    assert (await client.get(f"/api/posts/{post['id']}/revisions")).status_code == 404
    assert (await sam.client.get(f"/api/posts/{post['id']}/revisions")).status_code == 404
    [event] = await events(pool, "post.deleted")
    assert (event.post_id, event.post_number, event.author_id) == (post["id"], 2, sam.id)


async def test_staff_see_revisions_of_deleted_post(topic, sam, admin):
    """Staff can still read the kept versions of a deleted post."""
    post = await reply(sam, topic, "v1")
    await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "v2"})
    await sam.client.delete(f"/api/posts/{post['id']}")
    items = (await admin.client.get(f"/api/posts/{post['id']}/revisions")).json()["items"]
    assert [i["raw"] for i in items] == ["v1", ""]


async def test_delete_errors(topic, sam, member_factory, client, admin):
    """401, 403 for others, 404 missing or already deleted, 409 for the first post."""
    post = await reply(sam, topic)
    other = await member_factory()
    url = f"/api/posts/{post['id']}"
    assert (await client.delete(url)).status_code == 401
    assert (await other.client.delete(url)).status_code == 403
    assert (await sam.client.delete("/api/posts/999999")).status_code == 404
    first = await admin.client.delete(f"/api/posts/{topic['first_post']['id']}")
    assert first.status_code == 409
    assert (
        first.json()["error"]["code"] == "first_post" and "delete the topic instead" in first.json()["error"]["message"]
    )
    token = sam.client.headers.pop("X-CSRF-Token")
    assert (await sam.client.delete(url)).status_code == 403
    sam.client.headers["X-CSRF-Token"] = token
    assert (await sam.client.delete(url)).status_code == 204
    assert (await sam.client.delete(url)).status_code == 404
    assert (await sam.client.patch(url, json={"body": "back"})).status_code == 404


async def test_staff_delete_others_posts(topic, sam, member_factory):
    """Moderators may delete anyone's reply."""
    moderator = await member_factory(roles=("moderator",))
    post = await reply(sam, topic)
    assert (await moderator.client.delete(f"/api/posts/{post['id']}")).status_code == 204


async def test_reply_to_deleted_post_is_422(topic, sam):
    """You cannot reply to a deleted post."""
    post = await reply(sam, topic)
    await sam.client.delete(f"/api/posts/{post['id']}")
    response = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x", "reply_to": post["id"]})
    assert response.status_code == 422


async def test_every_event_matches_its_definition(topic, sam, pool):
    """Every envelope written so far parses into its event type."""
    post = await reply(sam, topic)
    await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "edit"})
    await sam.client.post(f"/api/posts/{post['id']}/reactions", json={"kind": "hug"})
    await sam.client.delete(f"/api/posts/{post['id']}/reactions/hug")
    await sam.client.delete(f"/api/posts/{post['id']}")
    rows = await pool.fetch("SELECT type, payload FROM forum.outbox ORDER BY id")
    types = []
    for row in rows:
        envelope = Envelope(**row["payload"])
        assert envelope.event().type == row["type"] == envelope.type
        assert envelope.actor_id is not None
        types.append(row["type"])
    # Around these: the category's creation and the members' activity (user.seen).
    assert [t for t in types if not t.startswith(("category.", "user."))] == [
        "topic.created",
        "post.created",
        "post.created",
        "post.edited",
        "reaction.added",
        "reaction.removed",
        "post.deleted",
    ]
