"""Badges beside names: a member chooses which of the badges admins gave them to show on their posts
(none until they choose: a lived-experience badge is personal); only badges they hold; the names of a
whole page of authors' chosen badges come from one statement."""

from __future__ import annotations

from services.forum.directory.directory import shown_badges


async def give(admin, member, name: str) -> int:
    badge = await admin.client.post("/api/badges", json={"name": name})
    assert badge.status_code == 201, badge.text
    granted = await admin.client.post(f"/api/users/{member.username}/badges", json={"badge_id": badge.json()["id"]})
    assert granted.status_code == 201, granted.text
    return int(badge.json()["id"])


async def test_no_badge_is_shown_until_the_member_chooses_it(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    lived = await give(admin, sam, "Expert by experience")
    core = await give(admin, sam, "Core Action Group")
    mine = await sam.client.get("/api/me/badges")
    assert mine.status_code == 200
    assert [(b["name"], b["shown"]) for b in mine.json()["items"]] == [
        ("Core Action Group", False),
        ("Expert by experience", False),
    ]
    async with pool.acquire() as conn:
        assert await shown_badges(conn, [sam.id]) == {}

    chosen = await sam.client.put("/api/me/badges", json={"shown": [lived]})
    assert chosen.status_code == 200, chosen.text
    assert [(b["id"], b["shown"]) for b in chosen.json()["items"]] == [(core, False), (lived, True)]
    async with pool.acquire() as conn:
        assert await shown_badges(conn, [sam.id, admin.id]) == {sam.id: ("Expert by experience",)}

    cleared = await sam.client.put("/api/me/badges", json={"shown": []})
    assert [b["shown"] for b in cleared.json()["items"]] == [False, False]


async def test_a_member_can_only_show_badges_they_hold(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    bea = await member_factory("bea")
    theirs = await give(admin, bea, "Core Action Group")
    mine = await give(admin, sam, "Expert by experience")
    refused = await sam.client.put("/api/me/badges", json={"shown": [mine, theirs]})
    assert refused.status_code == 422
    assert "shown" in refused.json()["error"]["fields"]
    for body in ({"shown": "all"}, {"shown": [0]}, {}, {"shown": ["x"]}):
        assert (await sam.client.put("/api/me/badges", json=body)).status_code == 422, body
    mine_now = (await sam.client.get("/api/me/badges")).json()["items"]
    assert [b["shown"] for b in mine_now] == [False]  # nothing changed


async def test_a_taken_back_badge_is_no_longer_shown(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    lived = await give(admin, sam, "Expert by experience")
    assert (await sam.client.put("/api/me/badges", json={"shown": [lived]})).status_code == 200
    assert (await admin.client.delete(f"/api/users/sam/badges/{lived}")).status_code == 204
    async with pool.acquire() as conn:
        assert await shown_badges(conn, [sam.id]) == {}


async def test_visitors_have_no_badges_to_choose(client):
    assert (await client.get("/api/me/badges")).status_code == 401
    assert (await client.put("/api/me/badges", json={"shown": []})).status_code in (401, 403)


async def test_chosen_badges_show_beside_the_name_on_posts_never_on_anonymous_ones(pool, member_factory):
    """The topic page and the post JSON carry the author's chosen badges; an anonymous post has none."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    lived = await give(admin, sam, "Expert by experience")
    await give(admin, sam, "Core Action Group")
    category = (
        await admin.client.post("/api/categories", json={"name": "Peer support", "allow_anonymous": True})
    ).json()
    topic = (
        await sam.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "What helps", "body": "A walk helps me."}
        )
    ).json()
    hidden_name = await sam.client.post(
        f"/api/topics/{topic['id']}/posts", json={"body": "Said without my name.", "anonymous": True}
    )
    assert hidden_name.status_code == 201, hidden_name.text
    page = await admin.client.get(topic["url"])
    assert page.status_code == 200
    assert "tica-post__badges" not in page.text  # nothing chosen yet
    assert (await sam.client.put("/api/me/badges", json={"shown": [lived]})).status_code == 200
    page = await admin.client.get(topic["url"])
    assert page.text.count('<strong class="nhsuk-tag nhsuk-tag--aqua-green">Expert by experience</strong>') == 1
    assert "Core Action Group" not in page.text


async def test_the_account_page_offers_the_choice_and_saves_it(member_factory):
    """/me/edit lists the member's badges unticked; the form saves the choice; a foreign id is refused."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    lived = await give(admin, sam, "Expert by experience")
    page = await sam.client.get("/me/edit")
    assert page.status_code == 200
    assert "Badges beside your name" in page.text
    assert f'value="{lived}">' in page.text  # not ticked
    headers = {"x-csrf-token": sam.session.csrf}
    saved = await sam.client.post("/me/badges", data={"shown": str(lived), "csrf_token": sam.session.csrf})
    assert saved.status_code == 303 and saved.headers["location"] == "/me/edit?done=badges#badges"
    page = await sam.client.get("/me/edit?done=badges")
    assert f'value="{lived}" checked>' in page.text and "Your choice of badges is saved." in page.text
    refused = await sam.client.post("/me/badges", data={"shown": "99999999", "csrf_token": sam.session.csrf})
    assert refused.status_code == 422
    bad = await sam.client.post("/me/badges", data={"shown": "x", "csrf_token": sam.session.csrf}, headers=headers)
    assert bad.status_code == 400
    nobody = await member_factory("bea")
    assert "Badges beside your name" not in (await nobody.client.get("/me/edit")).text


async def test_the_post_json_carries_the_chosen_badges_but_not_on_anonymous_posts(member_factory):
    """GET /api/topics/{id} and GET /api/posts/{id}: an additive `badges` list of names."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    lived = await give(admin, sam, "Expert by experience")
    assert (await sam.client.put("/api/me/badges", json={"shown": [lived]})).status_code == 200
    category = (
        await admin.client.post("/api/categories", json={"name": "Peer support", "allow_anonymous": True})
    ).json()
    topic = (
        await sam.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "What helps", "body": "A walk helps me."}
        )
    ).json()
    assert topic["first_post"]["badges"] == ["Expert by experience"]
    reply = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Unnamed.", "anonymous": True})
    assert reply.json()["badges"] == []
    listed = (await admin.client.get(f"/api/topics/{topic['id']}")).json()["posts"]
    assert [(p["anonymous"], p["badges"]) for p in listed] == [(False, ["Expert by experience"]), (True, [])]
    one = (await admin.client.get(f"/api/posts/{topic['first_post']['id']}")).json()
    assert one["badges"] == ["Expert by experience"]
    assert (await admin.client.get(f"/api/posts/{reply.json()['id']}")).json()["badges"] == []
