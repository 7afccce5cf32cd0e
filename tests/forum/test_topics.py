"""Topics API: starting topics, replying, lists (sort, kind, pinned, pages), visibility,
read state, and the events written with each change."""

from __future__ import annotations

import pytest

from shared.events import Envelope, PostCreated, TopicCreated

pytestmark = pytest.mark.usefixtures("numbered_groups")  # private categories name groups 1-10


async def new_category(admin, name="General", **extra):
    response = await admin.client.post("/api/categories", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def new_topic(member, category_id, title="A topic to talk about", body="Hello everyone", **extra):
    response = await member.client.post(
        "/api/topics", json={"category_id": category_id, "title": title, "body": body, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def events(pool, type_=None):
    rows = await pool.fetch("SELECT type, payload FROM forum.outbox ORDER BY id")
    found = [Envelope(**row["payload"]).event() for row in rows]
    return [e for e in found if type_ is None or e.type == type_]


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def category(admin):
    return await new_category(admin)


# --- starting topics ------------------------------------------------------------------------------


async def test_create_topic_returns_topic_with_first_post(admin, category, pool):
    """A new topic answers 201 with its shape and first post, and records both events."""
    topic = await new_topic(
        admin,
        category["id"],
        title="  Grounding   techniques that help  ",
        body="What **works** for you?",
        kind="blog",
        content_note=" panic attacks ",
    )
    assert topic["title"] == "Grounding techniques that help"
    assert topic["slug"] == "grounding-techniques-that-help"
    assert topic["kind"] == "blog"
    assert topic["content_note"] == "panic attacks"
    assert topic["posts_count"] == 1
    assert topic["url"] == f"/t/grounding-techniques-that-help/{topic['id']}"
    assert topic["author"] == {"id": admin.id, "username": "ada", "display_name": "Ada"}
    assert (topic["pinned"], topic["closed"]) == (False, False)
    assert topic["unread"] == 0 and topic["new"] is False  # the author has read their own topic
    post = topic["first_post"]
    assert post["post_number"] == 1
    assert post["cooked"] == "<p>What <strong>works</strong> for you?</p>"
    assert post["raw"] == "What **works** for you?"
    assert post["content_note"] == "panic attacks"
    assert (post["status"], post["revision"], post["can_edit"], post["reactions"]) == ("visible", 1, True, {})
    stored = await pool.fetchrow("SELECT plain, cooked FROM forum.posts WHERE id = $1", post["id"])
    assert stored["plain"] == "What works for you?"
    created = [e for e in await events(pool) if e.type.startswith(("topic.", "post."))]
    assert [e.type for e in created] == ["topic.created", "post.created"]
    assert isinstance(created[0], TopicCreated) and created[0].audience == ["public"]
    assert created[0].title == "Grounding techniques that help" and created[0].author_username == "ada"
    assert (
        isinstance(created[1], PostCreated) and created[1].post_number == 1 and created[1].text == "What works for you?"
    )


async def test_kind_defaults_to_discussion(admin, category):
    """Without a kind a topic is a discussion."""
    assert (await new_topic(admin, category["id"]))["kind"] == "discussion"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "Long enough", "body": "x"}, "category_id"),
        ({"category_id": "1", "title": "Long enough", "body": "x"}, "category_id"),
        ({"category_id": 1, "title": "abcd", "body": "x"}, "title"),
        ({"category_id": 1, "title": "  a    b  ", "body": "x"}, "title"),
        ({"category_id": 1, "title": "t" * 201, "body": "x"}, "title"),
        ({"category_id": 1, "title": "Long enough", "body": ""}, "body"),
        ({"category_id": 1, "title": "Long enough", "body": "  \n\n  "}, "body"),
        ({"category_id": 1, "title": "Long enough", "body": "b" * 50_001}, "body"),
        ({"category_id": 1, "title": "Long enough", "body": "x", "kind": "rant"}, "kind"),
        ({"category_id": 1, "title": "Long enough", "body": "x", "content_note": "n" * 101}, "content_note"),
        ({"category_id": 1, "title": "Long enough", "body": "x", "extra": True}, "extra"),
        ({"category_id": 1, "title": "Long\x00enough", "body": "x"}, "title"),
    ],
)
async def test_create_topic_invalid_is_422(admin, category, body, field):
    """Each invalid field is named in a 422 and nothing is written."""
    body = {**body, "category_id": category["id"]} if body.get("category_id") == 1 else body
    response = await admin.client.post("/api/topics", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_create_topic_errors(admin, category, member_factory, client, pool):
    """401 anonymous, 403 without CSRF, 400 bad JSON, 404 unknown category, 413 too large."""
    payload = {"category_id": category["id"], "title": "Long enough", "body": "x"}
    assert (await client.post("/api/topics", json=payload)).status_code == 401
    member = await member_factory()
    token = member.client.headers.pop("X-CSRF-Token")
    assert (await member.client.post("/api/topics", json=payload)).status_code == 403
    member.client.headers["X-CSRF-Token"] = token
    assert (await member.client.post("/api/topics", content=b"not json")).status_code == 400
    assert (await member.client.post("/api/topics", json={**payload, "category_id": 99999})).status_code == 404
    huge = await member.client.post(
        "/api/topics", content=b"{" + b" " * 1_000_001 + b"}", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    assert await pool.fetchval("SELECT count(*) FROM forum.topics") == 0


async def test_unverified_email_cannot_post(admin, category, member_factory, pool):
    """A member without a confirmed email gets a kind 403 email_not_verified."""
    member = await member_factory()
    await pool.execute("UPDATE forum.users SET email_verified_at = NULL WHERE id = $1", member.id)
    response = await member.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Long enough", "body": "x"}
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "email_not_verified" and "confirm your email" in error["message"]
    topic = await new_topic(admin, category["id"])
    reply = await member.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "hi"})
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "email_not_verified"


async def test_silenced_member_cannot_post(admin, category, member_factory, pool):
    """A silenced member gets 403 silenced until the silence ends."""
    member = await member_factory()
    await pool.execute("UPDATE forum.users SET silenced_until = now() + interval '1 day' WHERE id = $1", member.id)
    payload = {"category_id": category["id"], "title": "Long enough", "body": "x"}
    response = await member.client.post("/api/topics", json=payload)
    assert response.status_code == 403 and response.json()["error"]["code"] == "silenced"
    await pool.execute("UPDATE forum.users SET silenced_until = now() - interval '1 day' WHERE id = $1", member.id)
    assert (await member.client.post("/api/topics", json=payload)).status_code == 201


async def test_bearer_token_needs_no_csrf(admin, category, member_factory, client, redis, settings):
    """A personal API token authenticates writes without a CSRF header."""
    from shared.sessions import SessionStore, token_digest

    member = await member_factory()
    store = SessionStore(redis, settings.redis_prefix)
    await store.store_token(
        token_digest("secret-token-1"), user_id=member.id, username=member.username, roles=["member"], group_ids=[]
    )
    response = await client.post(
        "/api/topics",
        json={"category_id": category["id"], "title": "From a script", "body": "x"},
        headers={"Authorization": "Bearer secret-token-1"},
    )
    assert response.status_code == 201, response.text


# --- replies ---------------------------------------------------------------------------------------


async def test_reply_bumps_topic_and_emits_event(admin, category, member_factory, pool):
    """A reply gets the next number, bumps the topic and records PostCreated with who to tell."""
    sam = await member_factory("sam")
    await member_factory("priya")
    topic = await new_topic(admin, category["id"])
    first_id = topic["first_post"]["id"]
    quote = f'[quote="ada, post:{first_id}, topic:{topic["id"]}"]\nHello everyone\n[/quote]\n'
    response = await sam.client.post(
        f"/api/topics/{topic['id']}/posts",
        json={"body": quote + "Thanks @ada and @priya and @nobody and @sam", "reply_to": first_id},
    )
    assert response.status_code == 201, response.text
    post = response.json()
    assert post["post_number"] == 2 and post["reply_to"] == first_id
    assert '<a href="/u/priya" class="mention" rel="nofollow ugc noopener">@priya</a>' in post["cooked"]
    assert "@nobody" in post["cooked"] and 'href="/u/nobody"' not in post["cooked"]
    row = await pool.fetchrow(
        "SELECT posts_count, highest_post_number, last_posted_at > created_at AS bumped "
        "FROM forum.topics WHERE id = $1",
        topic["id"],
    )
    assert (row["posts_count"], row["highest_post_number"]) == (2, 2)
    created = (await events(pool, "post.created"))[-1]
    priya_id = await pool.fetchval("SELECT id FROM forum.users WHERE username = 'priya'")
    assert created.reply_to_post_id == first_id and created.reply_to_user_id == admin.id
    assert created.mentioned_user_ids == [admin.id, priya_id]  # not @nobody, not the author
    assert created.quoted_user_ids == [admin.id]


async def test_reply_errors(admin, category, member_factory, client):
    """401, 404 (missing topic, bad id), 422 (reply_to elsewhere, empty body), 403 closed."""
    member = await member_factory()
    topic = await new_topic(admin, category["id"])
    other = await new_topic(admin, category["id"], title="Another topic here")
    url = f"/api/topics/{topic['id']}/posts"
    assert (await client.post(url, json={"body": "x"})).status_code == 401
    assert (await member.client.post("/api/topics/999999/posts", json={"body": "x"})).status_code == 404
    assert (await member.client.post("/api/topics/abc/posts", json={"body": "x"})).status_code == 404
    wrong = await member.client.post(url, json={"body": "x", "reply_to": other["first_post"]["id"]})
    assert wrong.status_code == 422 and "reply_to" in wrong.json()["error"]["fields"]
    assert (await member.client.post(url, json={"body": "x", "reply_to": 999999})).status_code == 422
    assert (await member.client.post(url, json={"body": ""})).status_code == 422
    assert (await member.client.post(url, json={"body": "x", "reply_to": "1"})).status_code == 422


async def test_closed_topic_refuses_replies_except_staff(admin, category, member_factory, pool):
    """A closed topic answers 403 topic_closed to members; staff may still reply."""
    member = await member_factory()
    topic = await new_topic(admin, category["id"])
    await pool.execute("UPDATE forum.topics SET closed = true WHERE id = $1", topic["id"])
    response = await member.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "topic_closed"
    assert (await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x"})).status_code == 201


# --- reading and lists -----------------------------------------------------------------------------


async def test_get_topic_pages_posts(admin, category, client):
    """GET a topic: 20 posts a page by number, next page number or null."""
    topic = await new_topic(admin, category["id"])
    for n in range(24):
        response = await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": f"reply {n}"})
        assert response.status_code == 201
    first = (await client.get(f"/api/topics/{topic['id']}")).json()
    assert [p["post_number"] for p in first["posts"]] == list(range(1, 21))
    assert first["next"] == 2 and first["posts_count"] == 25
    assert "unread" not in first and "my_reactions" not in first["posts"][0]
    second = (await client.get(f"/api/topics/{topic['id']}?page=2")).json()
    assert [p["post_number"] for p in second["posts"]] == [21, 22, 23, 24, 25]
    assert second["next"] is None
    assert (await client.get(f"/api/topics/{topic['id']}?page=3")).json()["posts"] == []


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page=-1", "page=1.5"])
async def test_bad_page_is_400(admin, category, client, query):
    """Pages are whole numbers from 1."""
    topic = await new_topic(admin, category["id"])
    assert (await client.get(f"/api/topics/{topic['id']}?{query}")).status_code == 400
    assert (await client.get(f"/api/topics?{query}")).status_code == 400


async def test_missing_topic_is_404(client):
    """Unknown and non-integer topic ids are 404."""
    assert (await client.get("/api/topics/424242")).status_code == 404
    assert (await client.get("/api/topics/nope")).status_code == 404
    assert (await client.get("/api/topics/99999999999999999999999")).status_code == 404


@pytest.mark.parametrize("query", ["sort=new", "kind=poem", "category_id=x", "category_id=0"])
async def test_bad_list_query_is_400(client, query):
    """Unknown sorts and kinds and malformed category ids are 400."""
    assert (await client.get(f"/api/topics?{query}")).status_code == 400


async def test_list_latest_pinned_first_and_filters(admin, category, client, pool):
    """Latest order with pinned first; filters by category and kind."""
    other = await new_category(admin, "Webinars")
    a = await new_topic(admin, category["id"], title="Topic A here")
    b = await new_topic(admin, category["id"], title="Topic B here", kind="narrative")
    c = await new_topic(admin, other["id"], title="Topic C here")
    await admin.client.post(f"/api/topics/{a['id']}/posts", json={"body": "bump"})
    assert [t["id"] for t in (await client.get("/api/topics")).json()["items"]] == [a["id"], c["id"], b["id"]]
    await pool.execute("UPDATE forum.topics SET pinned = true WHERE id = $1", b["id"])
    assert [t["id"] for t in (await client.get("/api/topics")).json()["items"]] == [b["id"], a["id"], c["id"]]
    in_category = (await client.get(f"/api/topics?category_id={category['id']}")).json()["items"]
    assert [t["id"] for t in in_category] == [b["id"], a["id"]]
    narratives = (await client.get("/api/topics?kind=narrative")).json()["items"]
    assert [t["id"] for t in narratives] == [b["id"]]
    assert (await client.get("/api/topics?category_id=99999")).status_code == 404


async def test_list_top_by_reactions_then_posts(admin, category, client, member_factory):
    """Top: most reactions first, then most posts."""
    member = await member_factory()
    quiet = await new_topic(admin, category["id"], title="Quiet topic here")
    busy = await new_topic(admin, category["id"], title="Busy topic here")
    loved = await new_topic(admin, category["id"], title="Loved topic here")
    await admin.client.post(f"/api/topics/{busy['id']}/posts", json={"body": "more"})
    r = await member.client.post(f"/api/posts/{loved['first_post']['id']}/reactions", json={"kind": "heart"})
    assert r.status_code == 201
    top = (await client.get("/api/topics?sort=top")).json()["items"]
    assert [t["id"] for t in top] == [loved["id"], busy["id"], quiet["id"]]


async def test_list_pagination(admin, category, client, pool):
    """Thirty topics a page; next is the following page number, then null."""
    user_id, category_id = admin.id, category["id"]
    await pool.execute(
        "INSERT INTO forum.topics (category_id, title, slug, author_id, last_posted_at) "
        "SELECT $1, 'Topic ' || n, 'topic-' || n, $2, now() - n * interval '1 minute' FROM generate_series(1, 31) n",
        category_id,
        user_id,
    )
    first = (await client.get("/api/topics")).json()
    assert len(first["items"]) == 30 and first["next"] == 2
    assert first["items"][0]["title"] == "Topic 1"
    second = (await client.get("/api/topics?page=2")).json()
    assert [t["title"] for t in second["items"]] == ["Topic 31"] and second["next"] is None


# --- visibility ----------------------------------------------------------------------------------


async def test_private_category_topics_invisible_to_outsiders(admin, member_factory, client):
    """Topics in a group's category: hidden from lists and 404 for outsiders; readable by the group and staff."""
    private = await new_category(admin, "Facilitators", group_ids=[5])
    secret = await new_topic(admin, private["id"], title="Facilitators only")
    outsider = await member_factory()
    insider = await member_factory(group_ids=(5,))
    moderator = await member_factory(roles=("moderator",))
    post_id = secret["first_post"]["id"]
    for who in (client, outsider.client):
        assert (await who.get("/api/topics")).json()["items"] == []
        assert (await who.get(f"/api/topics?category_id={private['id']}")).status_code == 404
        assert (await who.get(f"/api/topics/{secret['id']}")).status_code == 404
        assert (await who.get(f"/api/posts/{post_id}")).status_code == 404
        assert (await who.get(f"/api/posts/{post_id}/revisions")).status_code == 404
    assert (await outsider.client.post(f"/api/topics/{secret['id']}/posts", json={"body": "x"})).status_code == 404
    assert (
        await outsider.client.post(
            "/api/topics", json={"category_id": private["id"], "title": "Sneaking in", "body": "x"}
        )
    ).status_code == 404
    assert (await outsider.client.post(f"/api/posts/{post_id}/reactions", json={"kind": "like"})).status_code == 404
    assert (await outsider.client.patch(f"/api/posts/{post_id}", json={"body": "x"})).status_code == 404
    assert (await outsider.client.delete(f"/api/posts/{post_id}")).status_code == 404
    for who in (insider, moderator):
        assert [t["id"] for t in (await who.client.get("/api/topics")).json()["items"]] == [secret["id"]]
        assert (await who.client.get(f"/api/topics/{secret['id']}")).status_code == 200
    reply = await insider.client.post(f"/api/topics/{secret['id']}/posts", json={"body": "Hello"})
    assert reply.status_code == 201


async def test_private_events_carry_group_audience(admin, pool):
    """Events from a private category carry its groups as audience."""
    private = await new_category(admin, "Facilitators", group_ids=[5, 3])
    await new_topic(admin, private["id"])
    for event in await events(pool):
        if hasattr(event, "audience"):
            assert event.audience == ["group:3", "group:5"]


# --- read state --------------------------------------------------------------------------------


async def test_unread_and_new(admin, category, member_factory, pool):
    """Never opened: unread null and new; reading moves forward; later replies count as unread."""
    reader = await member_factory()
    await pool.execute("UPDATE forum.users SET previous_visit_at = now() - interval '1 hour' WHERE id = $1", reader.id)
    topic = await new_topic(admin, category["id"])
    old = await new_topic(admin, category["id"], title="An older topic")
    await pool.execute("UPDATE forum.topics SET created_at = now() - interval '2 days' WHERE id = $1", old["id"])

    def by_id(items):
        return {t["id"]: t for t in items}

    listed = by_id((await reader.client.get("/api/topics")).json()["items"])
    assert (listed[topic["id"]]["unread"], listed[topic["id"]]["new"]) == (None, True)
    assert (listed[old["id"]]["unread"], listed[old["id"]]["new"]) == (None, False)

    assert (await reader.client.get(f"/api/topics/{topic['id']}")).status_code == 200
    listed = by_id((await reader.client.get("/api/topics")).json()["items"])
    assert (listed[topic["id"]]["unread"], listed[topic["id"]]["new"]) == (0, False)

    for n in range(3):
        await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": f"more {n}"})
    listed = by_id((await reader.client.get("/api/topics")).json()["items"])
    assert listed[topic["id"]]["unread"] == 3


async def test_reading_only_moves_forward(admin, category, member_factory, pool):
    """Opening page 1 after page 2 does not move read state back."""
    reader = await member_factory()
    topic = await new_topic(admin, category["id"])
    for n in range(21):
        await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": f"r{n}"})
    await reader.client.get(f"/api/topics/{topic['id']}?page=2")
    await reader.client.get(f"/api/topics/{topic['id']}?page=1")
    last = await pool.fetchval("SELECT last_read_post_number FROM forum.topic_reads WHERE user_id = $1", reader.id)
    assert last == 22


async def test_replying_marks_read_for_author(admin, category, member_factory, pool):
    """Your own reply leaves nothing unread for you."""
    member = await member_factory()
    topic = await new_topic(admin, category["id"])
    await member.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "me too"})
    items = (await member.client.get("/api/topics")).json()["items"]
    assert items[0]["unread"] == 0


async def test_concurrent_replies_get_distinct_numbers(admin, category, member_factory, pool):
    """Replies sent at once get consecutive post numbers."""
    import asyncio

    topic = await new_topic(admin, category["id"])
    members = [await member_factory() for _ in range(5)]
    responses = await asyncio.gather(
        *(m.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "hi"}) for m in members)
    )
    assert sorted(r.json()["post_number"] for r in responses) == [2, 3, 4, 5, 6]


async def test_unstorable_input_is_422_not_500(admin, category):
    """Lone surrogates and ids beyond bigint are refused as input, never reaching the database."""
    raw = b'{"category_id": %d, "title": "Hello \\ud800 there", "body": "x"}' % category["id"]
    response = await admin.client.post("/api/topics", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "title" in response.json()["error"]["fields"]
    too_big = await admin.client.post("/api/topics", json={"category_id": 2**70, "title": "Hello there", "body": "x"})
    assert too_big.status_code == 422
    topic = await new_topic(admin, category["id"])
    reply = await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x", "reply_to": 2**70})
    assert reply.status_code == 422
    groups = await admin.client.post("/api/categories", json={"name": "Big", "group_ids": [2**70]})
    assert groups.status_code == 422
