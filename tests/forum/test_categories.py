"""Categories API: listing by visibility, admin-only creation and changes, slugs."""

from __future__ import annotations

import pytest

from services.forum.topics.categories import slugify

pytestmark = pytest.mark.usefixtures("numbered_groups")  # private categories name groups 1-10


async def test_list_is_empty_at_first(client):
    """With no categories the list is empty, for anyone."""
    response = await client.get("/api/categories")
    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_admin_creates_category_with_generated_slug(member_factory, client):
    """An admin's category gets a slug from its name and shows in the public list."""
    admin = await member_factory(roles=("member", "admin"))
    response = await admin.client.post(
        "/api/categories",
        json={"name": "Lived experience", "description": "Stories and support", "colour": "#AE2573", "position": 2},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "lived-experience"
    assert body["colour"] == "ae2573"
    assert body["topics_count"] == 0
    assert body["group_ids"] == []
    listed = (await client.get("/api/categories")).json()["items"]
    assert [c["name"] for c in listed] == ["Lived experience"]
    assert "group_ids" not in listed[0]  # only staff see groups


async def test_categories_ordered_by_position(member_factory, client):
    """Categories list by position, then name."""
    admin = await member_factory(roles=("admin",))
    for name, position in (("Zeta", 1), ("Alpha", 2), ("Beta", 1)):
        assert (
            await admin.client.post("/api/categories", json={"name": name, "position": position})
        ).status_code == 201
    names = [c["name"] for c in (await client.get("/api/categories")).json()["items"]]
    assert names == ["Beta", "Zeta", "Alpha"]


async def test_slug_taken_is_409(member_factory):
    """A slug already used, given or generated, is a conflict."""
    admin = await member_factory(roles=("admin",))
    assert (await admin.client.post("/api/categories", json={"name": "Leadership"})).status_code == 201
    again = await admin.client.post("/api/categories", json={"name": "Leadership!"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "slug_taken"
    given = await admin.client.post("/api/categories", json={"name": "Other", "slug": "leadership"})
    assert given.status_code == 409


async def test_create_requires_admin(member_factory, client):
    """Anonymous: 401; members and moderators: 403."""
    assert (await client.post("/api/categories", json={"name": "X"})).status_code == 401
    member = await member_factory()
    assert (await member.client.post("/api/categories", json={"name": "X"})).status_code == 403
    moderator = await member_factory(roles=("moderator",))
    assert (await moderator.client.post("/api/categories", json={"name": "X"})).status_code == 403


async def test_create_requires_csrf(member_factory):
    """A cookie-authenticated write without the CSRF header is refused."""
    admin = await member_factory(roles=("admin",))
    del admin.client.headers["X-CSRF-Token"]
    response = await admin.client.post("/api/categories", json={"name": "Webinars"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"name": "Ok", "slug": "Not A Slug"}, "slug"),
        ({"name": "Ok", "colour": "red"}, "colour"),
        ({"name": "Ok", "position": -1}, "position"),
        ({"name": "Ok", "group_ids": ["a"]}, "group_ids"),
        ({"name": "Ok", "group_ids": [0]}, "group_ids"),
        ({"name": "Ok", "surprise": 1}, "surprise"),
    ],
)
async def test_create_invalid_is_422(member_factory, body, field):
    """Each bad field is named in a 422."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post("/api/categories", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_create_bad_json_is_400(member_factory):
    """A body that is not a JSON object is a 400."""
    admin = await member_factory(roles=("admin",))
    assert (await admin.client.post("/api/categories", content=b"{nope")).status_code == 400
    assert (await admin.client.post("/api/categories", json=[1])).status_code == 400


async def test_too_large_body_is_413(member_factory, settings):
    """A body over the configured limit is refused before it is read."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post(
        "/api/categories", content=b"x" * (settings.max_body_bytes + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_private_category_visible_to_group_and_staff(member_factory, client):
    """A category with groups is listed only to their members and staff."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post("/api/categories", json={"name": "Facilitators", "group_ids": [7]})
    assert response.status_code == 201
    assert response.json()["group_ids"] == [7]
    await admin.client.post("/api/categories", json={"name": "Open"})
    outsider = await member_factory()
    insider = await member_factory(group_ids=(7,))
    moderator = await member_factory(roles=("moderator",))
    assert [c["name"] for c in (await client.get("/api/categories")).json()["items"]] == ["Open"]
    assert [c["name"] for c in (await outsider.client.get("/api/categories")).json()["items"]] == ["Open"]
    assert len((await insider.client.get("/api/categories")).json()["items"]) == 2
    assert len((await moderator.client.get("/api/categories")).json()["items"]) == 2


async def test_admin_updates_category(member_factory):
    """PATCH changes name, description, colour and position; the slug stays."""
    admin = await member_factory(roles=("admin",))
    created = (await admin.client.post("/api/categories", json={"name": "Research"})).json()
    response = await admin.client.patch(
        f"/api/categories/{created['id']}",
        json={"name": "Research and evaluation", "description": "Evidence", "colour": "00A499", "position": 4},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["colour"], body["position"], body["slug"]) == (
        "Research and evaluation",
        "Evidence",
        "00a499",
        4,
        "research",
    )


async def test_update_errors(member_factory):
    """PATCH: 403 for non-admins, 404 for a missing or non-integer id, 422 for bad fields."""
    admin = await member_factory(roles=("admin",))
    member = await member_factory()
    created = (await admin.client.post("/api/categories", json={"name": "Webinars"})).json()
    assert (await member.client.patch(f"/api/categories/{created['id']}", json={"name": "X"})).status_code == 403
    assert (await admin.client.patch("/api/categories/999999", json={"name": "X"})).status_code == 404
    assert (await admin.client.patch("/api/categories/abc", json={"name": "X"})).status_code == 404
    bad = await admin.client.patch(f"/api/categories/{created['id']}", json={"slug": "x"})
    assert bad.status_code == 422


async def test_topics_count(member_factory):
    """topics_count counts the category's topics."""
    admin = await member_factory(roles=("admin",))
    category = (await admin.client.post("/api/categories", json={"name": "Older people"})).json()
    for title in ("First topic here", "Second topic here"):
        response = await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": title, "body": "Hello"}
        )
        assert response.status_code == 201
    listed = (await admin.client.get("/api/categories")).json()["items"]
    assert listed[0]["topics_count"] == 2


@pytest.mark.parametrize(
    "text, slug",
    [
        ("Hello, World!", "hello-world"),
        ("  Café au lait  ", "cafe-au-lait"),
        ("!!!", "topic"),
        ("", "topic"),
        ("日本語", "topic"),
        ("word " * 30, "-".join(["word"] * 12)),
        ("x" * 80, "x" * 60),
    ],
)
def test_slugify(text, slug):
    """Slugs are lowercase ASCII words joined by '-', at most 60 characters."""
    assert slugify(text) == slug
    assert len(slugify(text)) <= 60


async def test_category_changes_are_events_with_their_audience(member_factory, pool):
    """Creating a category and changing its groups record category.created/updated with the audience."""
    from shared.events import Envelope

    admin = await member_factory(roles=("admin",))
    created = (await admin.client.post("/api/categories", json={"name": "Circle"})).json()
    response = await admin.client.patch(f"/api/categories/{created['id']}", json={"group_ids": [3, 2, 3]})
    assert response.status_code == 200, response.text
    assert response.json()["group_ids"] == [2, 3]
    rows = await pool.fetch("SELECT payload::text AS p FROM forum.outbox WHERE type LIKE 'category.%' ORDER BY id")
    events = [Envelope.from_json(row["p"]).event() for row in rows]
    assert [(e.type, e.audience) for e in events] == [
        ("category.created", ["public"]),
        ("category.updated", ["group:2", "group:3"]),
    ]
    unknown = await admin.client.patch(f"/api/categories/{created['id']}", json={"group_ids": [99]})
    assert unknown.status_code == 422 and "group_ids" in unknown.json()["error"]["fields"]
