"""notify's JSON API: notifications, marking read, preferences, watch levels, with their error paths."""

from __future__ import annotations

import pytest
from notify_helpers import category, post, topic
from openapi_spec_validator import validate


async def _with_notifications(world, member_factory, count: int = 3):
    alice = await member_factory("alice")
    bob = await member_factory("bob")
    await world.join(alice.id, "alice")
    await world.join(bob.id, "bob")
    await world.emit(
        category(1),
        topic(10, author_id=alice.id, title="Grounding techniques"),
        post(100, topic_id=10, number=1, author_id=alice.id),
    )
    for i in range(count):
        await world.emit(
            post(101 + i, topic_id=10, number=2 + i, author_id=bob.id, author_username="bob", reply_to_user_id=alice.id)
        )
    return alice, bob


async def test_notifications_need_a_login(client):
    for method, path in (
        ("GET", "/api/notifications"),
        ("POST", "/api/notifications/read"),
        ("GET", "/api/me/preferences"),
        ("PUT", "/api/me/preferences"),
        ("GET", "/api/watch"),
        ("PUT", "/api/watch"),
    ):
        response = await client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"


async def test_list_is_newest_first_with_unread_filter_and_pages(world, member_factory):
    alice, _ = await _with_notifications(world, member_factory, count=3)
    response = await alice.client.get("/api/notifications")
    assert response.status_code == 200
    body = response.json()
    assert [item["post_number"] for item in body["items"]] == [4, 3, 2]
    assert body["next"] is None and body["unread"] == 3
    item = body["items"][0]
    assert item["kind"] == "replied" and item["read"] is False
    assert item["text"] == "bob replied to your post in “Grounding techniques”"
    assert item["url"] == "/p/103"
    assert item["actor"] == {"id": item["actor"]["id"], "username": "bob"}


async def test_pagination_answers_next(world, member_factory, monkeypatch):
    alice, _ = await _with_notifications(world, member_factory, count=3)
    from services.notify import notifications

    monkeypatch.setattr(notifications, "PAGE_SIZE", 2)
    first = (await alice.client.get("/api/notifications")).json()
    assert len(first["items"]) == 2 and first["next"] == 2
    second = (await alice.client.get("/api/notifications?page=2")).json()
    assert len(second["items"]) == 1 and second["next"] is None


async def test_mark_some_then_all_read(world, member_factory):
    alice, bob = await _with_notifications(world, member_factory, count=3)
    items = (await alice.client.get("/api/notifications")).json()["items"]
    response = await alice.client.post("/api/notifications/read", json={"ids": [items[0]["id"]]})
    assert response.status_code == 204
    unread = (await alice.client.get("/api/notifications?unread=1")).json()
    assert [i["id"] for i in unread["items"]] == [items[1]["id"], items[2]["id"]]
    # Someone else's ids are ignored, not marked.
    assert (await bob.client.post("/api/notifications/read", json={"ids": [items[1]["id"]]})).status_code == 204
    assert (await alice.client.get("/api/notifications?unread=1")).json()["unread"] == 2
    assert (await alice.client.post("/api/notifications/read", json={"all": True})).status_code == 204
    assert (await alice.client.get("/api/notifications?unread=1")).json() == {"items": [], "next": None, "unread": 0}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "ids"),
        ({"ids": [1], "all": True}, "ids"),
        ({"all": False}, "ids"),
        ({"ids": "1"}, "ids"),
        ({"ids": [0]}, "ids"),
        ({"ids": [True]}, "ids"),
        ({"every": True}, "every"),
        ({"ids": list(range(1, 1002))}, "ids"),
    ],
)
async def test_mark_read_rejects_bad_bodies(member_factory, body, field):
    alice = await member_factory("alice")
    response = await alice.client.post("/api/notifications/read", json=body)
    assert response.status_code == 422
    assert field in response.json()["error"]["fields"]


async def test_mark_read_needs_the_csrf_token_with_a_cookie(member_factory):
    alice = await member_factory("alice")
    del alice.client.headers["X-CSRF-Token"]
    response = await alice.client.post("/api/notifications/read", json={"all": True})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


async def test_bad_json_and_bad_query(member_factory):
    alice = await member_factory("alice")
    response = await alice.client.post(
        "/api/notifications/read", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert (await alice.client.get("/api/notifications?unread=maybe")).status_code == 400
    assert (await alice.client.get("/api/notifications?page=0")).status_code == 400
    assert (await alice.client.get("/api/notifications?page=x")).status_code == 400


async def test_notifications_about_what_the_member_can_no_longer_see_are_left_out(world, member_factory):
    """A topic whose category became private disappears from the list of those outside it."""
    alice, _ = await _with_notifications(world, member_factory, count=1)
    from shared.events import CategoryUpdated

    await world.emit(CategoryUpdated(category_id=1, slug="c1", name="Private now", audience=["group:9"]))
    assert (await alice.client.get("/api/notifications")).json()["items"] == []


async def test_preferences_default_update_and_validate(member_factory):
    alice = await member_factory("alice")
    defaults = (await alice.client.get("/api/me/preferences")).json()
    assert defaults == {
        "digest": "weekly",
        "email_on_reply": "away",
        "email_on_mention": "away",
        "email_on_watched": "never",
        "email_on_message": "away",
        "watch_on_start": "watching",
        "watch_on_reply": "tracking",
    }
    response = await alice.client.put(
        "/api/me/preferences", json={"digest": "daily", "email_on_mention": "always", "email_on_message": "never"}
    )
    assert response.status_code == 200
    assert response.json() == {**defaults, "digest": "daily", "email_on_mention": "always", "email_on_message": "never"}
    assert (await alice.client.get("/api/me/preferences")).json()["digest"] == "daily"
    bad = await alice.client.put("/api/me/preferences", json={"digest": "hourly", "colour": "red"})
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"digest", "colour"}
    del alice.client.headers["X-CSRF-Token"]
    assert (await alice.client.put("/api/me/preferences", json={"digest": "never"})).status_code == 403


async def test_watch_levels_by_api(world, member_factory):
    alice = await member_factory("alice")
    outsider = await member_factory("outsider")
    await world.emit(
        category(1),
        category(2, audience=["group:4"]),
        topic(10, author_id=99),
        topic(20, author_id=99, category_id=2, audience=["group:4"]),
    )
    assert (await alice.client.get("/api/watch?target=topic:10")).json() == {
        "target": "topic:10",
        "level": None,
        "effective_level": "normal",
    }
    response = await alice.client.put("/api/watch", json={"target": "category:1", "level": "watching"})
    assert response.status_code == 200
    assert response.json() == {"target": "category:1", "level": "watching", "effective_level": "watching"}
    assert (await alice.client.get("/api/watch?target=topic:10")).json()["effective_level"] == "watching"
    await alice.client.put("/api/watch", json={"target": "topic:10", "level": "muted"})
    assert (await alice.client.get("/api/watch?target=topic:10")).json()["effective_level"] == "muted"
    listing = (await alice.client.get("/api/watch")).json()
    assert {(w["target"], w["level"]) for w in listing["items"]} == {("category:1", "watching"), ("topic:10", "muted")}
    # What the viewer cannot see is "not found", like what does not exist.
    for target in ("topic:20", "category:2", "topic:404"):
        response = await outsider.client.put("/api/watch", json={"target": target, "level": "watching"})
        assert response.status_code == 404, target
        assert (await outsider.client.get(f"/api/watch?target={target}")).status_code == 404
    for body in (
        {"target": "post:1", "level": "watching"},
        {"target": "topic:10", "level": "loud"},
        {"target": "topic:0", "level": "muted"},
        {},
    ):
        assert (await alice.client.put("/api/watch", json=body)).status_code == 422, body
    assert (await alice.client.get("/api/watch?target=nonsense")).status_code == 400


async def test_the_api_document_lists_notifys_endpoints(client):
    """The whole API's OpenAPI document (served at /api/openapi.json) has notify's operations."""
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert set(document["paths"]["/api/notifications"]) == {"get"}
    assert set(document["paths"]["/api/notifications/read"]) == {"post"}
    assert set(document["paths"]["/api/me/preferences"]) == {"get", "put"}
    assert set(document["paths"]["/api/watch"]) == {"get", "put"}
